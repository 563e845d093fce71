"""dsprep: turn raw object-detection data into training-ready data."""
import os as _os

_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 42))

__version__ = "0.2.0"  # the one version number (pyproject.toml reads it)

_PUBLIC = ("DsprepError", "ImageRecord", "Problem")  # the public model, from dsprep.core


def __getattr__(name):
    # imported on first use, so that the program's entry point (dsprep.program) starts without numpy
    if name in _PUBLIC:
        from . import core
        return getattr(core, name)
    raise AttributeError(f"module 'dsprep' has no attribute '{name}'")


__all__ = list(_PUBLIC) + ["__version__"]
