"""File I/O at the edges: reading images and image headers, atomic writes, output-folder safety."""
from __future__ import annotations

import io
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Optional, Tuple, Union

import cv2
import numpy as np

from .core import ImageError, OutputError

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


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary name beside ``path``, then rename: never a half-written file at ``path``."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        _unlink(tmp)
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e
    except BaseException:
        _unlink(tmp)
        raise


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


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def prepare_output_dir(path: PathLike, overwrite: bool = False, allow_existing: bool = False) -> Path:
    """Create ``path``; refuse a non-empty one unless ``overwrite`` (files inside may then be replaced).

    ``allow_existing`` accepts a non-empty folder without being told (for commands that only add files).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: output exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not (overwrite or allow_existing):
        raise OutputError(f"{path}: output folder is not empty (use --overwrite to write into it)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{path}: cannot create output folder ({e.strerror or e})") from e
    return path


def safe_name(name: str, fallback: str = "_") -> str:
    """A single path component made from untrusted text (a class name, an id from an XML file).

    Separators, NULs and control characters become ``_``; ``.``/``..`` and leading dots cannot escape the folder.
    """
    out = "".join("_" if (c in "/\\:\0" or ord(c) < 32) else c for c in str(name)).strip()
    out = out.lstrip(".")
    return out or fallback


def inside(root: PathLike, path: PathLike) -> bool:
    root_r = os.path.realpath(str(root))
    path_r = os.path.realpath(str(path))
    return os.path.commonpath([root_r, path_r]) == root_r


class TemporaryPath:
    """Context manager for a whole output file: yields a temp path beside ``target``; renames on success.

    On any exception (including Ctrl-C) the temporary file is removed and ``target`` is left as it was.
    """

    def __init__(self, target: PathLike, overwrite: bool = False):
        self.target = Path(target)
        if self.target.exists() and not overwrite:
            raise OutputError(f"{self.target}: already exists (use --overwrite to replace it)")
        if not self.target.parent.exists():
            raise OutputError(f"{self.target.parent}: output folder does not exist")

    def __enter__(self) -> Path:
        # created on entry, so a temporary file always has an __exit__ that removes or renames it
        fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".partial", dir=self.target.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            os.replace(self.tmp, self.target)
        else:
            _unlink(self.tmp)
        return False


def copy_file(src: PathLike, dst: PathLike) -> None:
    """Place ``src`` at ``dst``: a hard link when possible (instant, no space), else an atomic copy."""
    dst = Path(dst)
    tmp = _tmp_name(dst)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        _unlink(tmp)
        raise OutputError(f"{dst}: cannot write ({e.strerror or e})") from e
