import os
from pathlib import Path

# as dsprep/__init__.py does for its users: OpenCV reads the variable when it is loaded, and test modules import cv2
# before dsprep
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 42))

import pytest

SHARED = Path(os.environ.get("DSPREP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def shared():
    """The real conformance data beside the project root; tests using it skip cleanly on a user's fresh clone."""
    if not SHARED.is_dir():
        pytest.skip(f"shared conformance data not found at {SHARED}")
    return SHARED
