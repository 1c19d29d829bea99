"""Inference algorithms Pyro lacks, one module per algorithm family.

* :mod:`pyrogen.infer.ais` — annealed importance sampling (:func:`pyrogen.infer.ais.ais`) and
  its reverse, RAISE (:func:`pyrogen.infer.ais.reverse_ais`), with the Salakhutdinov & Murray
  base-rate path for RBMs and a generic geometric path.

Import from the submodules (``from pyrogen.infer.ais import ais``): the package namespace does
not re-export them, so that a module and a function of the same name never shadow each other.
"""
