"""dsprep: turn raw object-detection data (PASCAL VOC, DOTA) into training-ready data."""
__version__ = "0.1.0"

from .core import DsprepError, ImageRecord, Problem  # noqa: E402,F401  (the public model)

__all__ = ["DsprepError", "ImageRecord", "Problem", "__version__"]
