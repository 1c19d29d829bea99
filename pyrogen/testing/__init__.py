"""Test helpers shipped with pyrogen: the model registry that the generic tests run over."""

from .registry import MODEL_SPECS, ModelSpec

__all__ = ["MODEL_SPECS", "ModelSpec"]
