"""Per-image work of ``info --check-images``: decode one image through the one decoder, report what fails."""
from __future__ import annotations


def check_one(args) -> dict:
    """``(path, orient)`` -> ``{"error": None, "warnings": [benign decoder warnings]}`` or the decoder's complaint
    (empty, truncated, corrupt, too big).

    A decode failure is a finding here, not an error of the run, so it is returned rather than raised."""
    from ..core import ImageError
    from ..images import read_image
    path, orient = args
    warnings: list = []
    try:
        read_image(path, "unchanged", orient=orient, warnings=warnings)
    except ImageError as e:
        text = str(e).split(": ", 1)[-1]
        kind = "truncated_image" if "truncated" in text else ("empty_image" if "empty" in text else
                                                              "corrupt_image" if "corrupt JPEG" in text else
                                                              "image_unreadable")
        return {"error": text, "kind": kind}
    return {"error": None, "warnings": warnings}
