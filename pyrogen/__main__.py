"""``python -m pyrogen``: the command line (see :mod:`pyrogen.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
