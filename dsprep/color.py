"""Illumination correction, the public face: reference white (Hsu, Abdel-Mottaleb & Jain 2002) and relatives.

    from dsprep.color import correct
    fixed, changed = correct(image_bgr, "reference-white")   # a new uint8 image, same shape; alpha passed through

:func:`correct` applies one of :data:`METHODS` by name; :func:`reference_white`, :func:`channel_white`,
:func:`two_point`, :func:`gray_world` and :func:`shades_of_gray` are the methods themselves, :func:`luma`,
:func:`histogram`, :func:`top_threshold` and :func:`bottom_threshold` the statistics they share.  How each works (ties,
gates, gains, flat images) is in :mod:`dsprep.ops.color`, the implementation.
"""
from .ops.color import (METHODS, bottom_threshold, channel_white, correct, gray_world, histogram, luma,
                        reference_white, reference_white_gains, shades_of_gray, top_threshold, two_point)

__all__ = ["METHODS", "bottom_threshold", "channel_white", "correct", "gray_world", "histogram", "luma",
           "reference_white", "reference_white_gains", "shades_of_gray", "top_threshold", "two_point"]
