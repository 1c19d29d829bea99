"""Tour steps: one module per model family, each with ``step(ctx) -> list[dict]``."""
