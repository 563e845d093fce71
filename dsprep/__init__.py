"""dsprep: turn raw object-detection data into training-ready data."""
import os as _os

# OpenCV reads its pixel limit (2^30 by default) once, when it is loaded: lift it before anything imports cv2.
# dsprep checks the memory an image needs itself (dsprep.images).
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 42))

__version__ = "0.2.0"

from .core import DsprepError, ImageRecord, Problem  # noqa: E402,F401  (the public model)

__all__ = ["DsprepError", "ImageRecord", "Problem", "__version__"]
