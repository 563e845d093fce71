"""The one image decoder (and encoder) every command uses: bytes in, checked pixels out."""
from __future__ import annotations

import io
import os
import struct
from typing import Optional, Tuple, Union

import cv2
import numpy as np

from .core import ImageError, OutputError
from .outputs import atomic_write_bytes

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
PathLike = Union[str, os.PathLike]


def is_image(path: PathLike) -> bool:
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTS


def read_image(path: PathLike, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode an image file (BGR uint8 by default); raise :class:`ImageError` naming the file on failure.

    ``cv2.imread`` returns ``None`` silently on a missing or corrupt file and only warns on a truncated JPEG, so we
    read the bytes ourselves (paths with non-ASCII characters work too) and check the JPEG end marker.
    """
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise ImageError(f"{path}: cannot read image ({e.strerror or e})") from e
    return decode_image(data, str(path), flags)


def decode_image(data: np.ndarray, name: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    check_complete(data, name)
    img = cv2.imdecode(data, flags)
    if img is None:
        raise ImageError(f"{name}: not a readable image (corrupt or unsupported format)")
    return img


def check_complete(data: np.ndarray, name: str) -> None:
    if data.size == 0:
        raise ImageError(f"{name}: image file is empty")
    if data[:2].tobytes() == b"\xff\xd8" and data[-2:].tobytes() != b"\xff\xd9":
        # Allow trailing padding after EOI, which some cameras write.
        if b"\xff\xd9" not in data[-1024:].tobytes():
            raise ImageError(f"{name}: truncated JPEG (no end-of-image marker)")


def image_size(path: PathLike, data: Optional[np.ndarray] = None) -> Tuple[int, int, int]:
    """``(width, height, depth)`` from the file header, without decoding pixels (PNG, JPEG, BMP, GIF).

    ``data``: the file's bytes when already in memory.  Other formats fall back to a full decode.  Raises
    :class:`ImageError` when unreadable.
    """
    path = str(path)
    try:
        with (io.BytesIO(data[: 1 << 18].tobytes()) if data is not None else open(path, "rb")) as f:
            head = f.read(32)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                w, h = struct.unpack(">II", head[16:24])
                color_type = head[25]
                depth = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(color_type, 3)
                return w, h, depth
            if head[:2] == b"\xff\xd8":
                f.seek(2)
                size = _jpeg_size(f)
                if size is not None:
                    return size
            if head[:2] == b"BM" and len(head) >= 26:
                w, h = struct.unpack("<ii", head[18:26])
                bpp = struct.unpack("<H", head[28:30])[0] if len(head) >= 30 else 24
                return w, abs(h), 4 if bpp == 32 else (1 if bpp <= 8 else 3)
            if head[:6] in (b"GIF87a", b"GIF89a"):
                w, h = struct.unpack("<HH", head[6:10])
                return w, h, 3
    except OSError as e:
        raise ImageError(f"{path}: cannot read image ({e.strerror or e})") from e
    img = decode_image(data, path, cv2.IMREAD_UNCHANGED) if data is not None else read_image(path, cv2.IMREAD_UNCHANGED)
    return img.shape[1], img.shape[0], 1 if img.ndim == 2 else img.shape[2]


def _jpeg_size(f) -> Optional[Tuple[int, int, int]]:
    while True:
        b = f.read(1)
        while b and b != b"\xff":
            b = f.read(1)
        while b == b"\xff":
            b = f.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        seg = f.read(2)
        if len(seg) < 2:
            return None
        length = struct.unpack(">H", seg)[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            data = f.read(6)
            if len(data) < 6:
                return None
            h, w = struct.unpack(">HH", data[1:5])
            return w, h, data[5]
        f.seek(length - 2, 1)


def encode_image(img: np.ndarray, ext: str, jpeg_quality: int = 95, png_compression: int = 1) -> bytes:
    ext = ext.lower()
    params = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    elif ext == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:
        raise OutputError(f"cannot encode image as {ext}")
    return buf.tobytes()


def write_image(path: PathLike, img: np.ndarray, jpeg_quality: int = 95, png_compression: int = 1) -> None:
    """Encode by the path's extension and write atomically."""
    atomic_write_bytes(path, encode_image(img, os.path.splitext(str(path))[1] or ".png",
                                          jpeg_quality, png_compression))


