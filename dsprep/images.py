"""The one image decoder (and encoder) every command uses.

Reading pixels always goes through :func:`read_image`, which applies one set of rules:

* **complete files only**: an empty file, a JPEG without an end-of-image marker after its first scan, or a PNG
  without its ``IEND`` chunk is an :class:`~dsprep.core.ImageError` (OpenCV would return gray filler pixels for a
  truncated JPEG and only print a warning);
* **one orientation policy**: pixels are decoded as stored (OpenCV's own EXIF handling is switched off) and the
  EXIF orientation tag is applied only when the caller says so (``orient=True``).  Which it is for a record is
  decided once, when the data set is read, by :func:`decide_orientation` from ``--exif auto|apply|ignore``;
* **big images**: OpenCV's default limit of 2^30 pixels is lifted; instead the memory the decoded image needs is
  compared with the memory available *before* decoding, and a clear error says how much is needed.

Headers are read without decoding by :func:`probe` (PNG, JPEG, BMP, GIF, TIFF/BigTIFF, WebP): size, channels, EXIF
orientation, and a cheap completeness check of the file's tail.

Why one module: the one decoder -- header probing, EXIF orientation, decoding and encoding belong together so that
every reader and writer applies the same orientation and size rules.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import numpy as np

from . import pngenc
from .core import ImageError, OutputError, UsageError
from .outputs import atomic_write_bytes

class LazyModule:
    """A module imported when one of its attributes is first used (then it replaces itself in ``namespace``).

    Reading headers (``probe``, every data set load) never needs OpenCV, and detecting a data set's format never
    needs h5py: importing them costs ~30 ms each of every command's start-up."""

    def __init__(self, name: str, namespace: dict):
        self._name, self._namespace = name, namespace

    def __getattr__(self, attr):
        import importlib
        module = importlib.import_module(self._name)
        for key, value in list(self._namespace.items()):
            if value is self:
                self._namespace[key] = module
        return getattr(module, attr)


cv2 = LazyModule("cv2", globals())

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
EXIF_POLICIES = ("auto", "apply", "ignore")
PathLike = Union[str, os.PathLike]

_HEAD = 4096  # bytes read at first for a header; longer JPEG APP segments are read on demand

ORIENTATION_NAMES = {1: "normal", 2: "mirrored", 3: "rotated 180", 4: "flipped vertically",
                     5: "transposed", 6: "rotated 90 clockwise", 7: "transversed", 8: "rotated 90 counter-clockwise"}


@dataclass(frozen=True)
class ImageInfo:
    """What an image file's header says.  ``width``/``height`` are the *stored* pixel grid."""

    width: int
    height: int
    channels: int
    kind: str              # "jpeg", "png", "bmp", "gif", "tiff", "webp"
    orientation: int = 1   # EXIF orientation 1..8 (1: none)
    complete: Optional[bool] = None  # tail check: False when the end marker is missing, None when not checked
    bits: int = 8          # bits per sample (PNG, TIFF; 8 for the others)

    @property
    def swaps(self) -> bool:
        """Whether applying the orientation swaps width and height (orientations 5 to 8)."""
        return self.orientation in (5, 6, 7, 8)

    def size(self, orient: bool) -> Tuple[int, int]:
        """``(width, height)`` of the pixels :func:`read_image` returns with this ``orient``."""
        return (self.height, self.width) if (orient and self.swaps) else (self.width, self.height)


def is_image(path: PathLike) -> bool:
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTS


# ---- headers -------------------------------------------------------------------------------------------------------

def probe(path: PathLike, data: Optional[bytes] = None) -> ImageInfo:
    """Read an image's header (and check its tail) without decoding pixels.

    ``data``: the file's bytes when already in memory.  Raises :class:`ImageError` for a missing, empty or
    unrecognised file.  Formats without a parser here fall back to a full decode.
    """
    name = str(path)
    try:
        if data is None:
            # unbuffered reads on a file descriptor: one system call for the head (a buffered file object costs
            # twice as much, measured over 20,000 headers)
            fd = os.open(name, os.O_RDONLY)
            try:
                head = os.read(fd, _HEAD)
                size = os.fstat(fd).st_size
                tail = os.pread(fd, size - max(len(head), size - 1024), max(len(head), size - 1024)) \
                    if size > len(head) else b""
                return _probe(_FileReader(fd, head), head, head[-1024:] if not tail else tail, size, name)
            finally:
                os.close(fd)
        data = bytes(data)
        return _probe(_FileReader(None, data), data[:_HEAD], data[-1024:], len(data), name)
    except OSError as e:
        raise ImageError(f"{name}: cannot read image ({e.strerror or e})") from e


class _FileReader:
    """Random access to a file's bytes (a file descriptor), served from the head buffer when possible."""

    def __init__(self, fd, head: bytes):
        self.f, self.head = fd, head

    def read(self, offset: int, n: int) -> bytes:
        if offset + n <= len(self.head) or self.f is None:
            return self.head[offset:offset + n]
        return os.pread(self.f, n, offset)


def _probe(r: _FileReader, head: bytes, tail: bytes, size: int, name: str) -> ImageInfo:
    if size == 0:
        raise ImageError(f"{name}: image file is empty (0 bytes)")
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        if head[12:16] != b"IHDR" or len(head) < 26:
            raise ImageError(f"{name}: truncated PNG header")
        w, h = struct.unpack(">II", head[16:24])
        channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(head[25], 3)
        return ImageInfo(w, h, channels, "png", _png_orientation(r, size), complete=b"IEND" in tail[-64:],
                         bits=head[24])
    if head[:2] == b"\xff\xd8":
        w, h, channels, orientation, _ = _jpeg_header(r, size, name)
        return ImageInfo(w, h, channels, "jpeg", orientation, complete=b"\xff\xd9" in tail)
    if head[:2] == b"BM" and len(head) >= 30:
        file_size, = struct.unpack("<I", head[2:6])
        w, h = struct.unpack("<ii", head[18:26])
        bpp, = struct.unpack("<H", head[28:30])
        return ImageInfo(w, abs(h), 4 if bpp == 32 else (1 if bpp <= 8 else 3), "bmp",
                         complete=size >= file_size)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        w, h = struct.unpack("<HH", head[6:10])
        return ImageInfo(w, h, 3, "gif", complete=tail.endswith(b";"))
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff_header(r, head, name)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_header(head, size, name)
    # unknown to the header parser: let the decoder decide (and say what it is)
    img = _decode(r.read(0, size) if r.f is None else _read_all(name), name, cv2.IMREAD_UNCHANGED)
    return ImageInfo(img.shape[1], img.shape[0], 1 if img.ndim == 2 else img.shape[2], "other")


def _read_all(name: str) -> bytes:
    with open(name, "rb") as f:
        return f.read()


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(r: _FileReader, size: int, name: str) -> Tuple[int, int, int, int, int]:
    """``(width, height, channels, orientation, offset of the first SOS marker)`` by walking the JPEG markers."""
    pos = 2
    dims = None
    orientation = 1
    while pos + 4 <= size:
        seg = r.read(pos, 4)
        if len(seg) < 4 or seg[0] != 0xFF:
            # tolerate fill bytes (0xFF repeated) before a marker
            if seg[:1] == b"\xff":
                pos += 1
                continue
            break
        marker = seg[1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: the header is over
            if dims is None:
                break
            return dims + (orientation, pos)
        length, = struct.unpack(">H", seg[2:4])
        if length < 2:
            break
        if marker in _SOF:
            body = r.read(pos + 4, 6)
            if len(body) < 6:
                break
            h, w = struct.unpack(">HH", body[1:5])
            dims = (w, h, body[5])
        elif marker == 0xE1 and orientation == 1:
            body = r.read(pos + 4, length - 2)
            if body[:6] == b"Exif\x00\x00":
                orientation = _tiff_orientation(body[6:])
        pos += 2 + length
    if dims is None:
        raise ImageError(f"{name}: truncated or corrupt JPEG (no frame header)")
    return dims + (orientation, size)


def _tiff_orientation(tiff: bytes) -> int:
    """The orientation tag (274) of IFD0 in a TIFF structure (EXIF payload); 1 when absent or unreadable."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    e = "<" if tiff[:2] == b"II" else ">"
    try:
        ifd, = struct.unpack(e + "I", tiff[4:8])
        count, = struct.unpack(e + "H", tiff[ifd:ifd + 2])
        for i in range(count):
            entry = tiff[ifd + 2 + 12 * i: ifd + 14 + 12 * i]
            tag, typ = struct.unpack(e + "HH", entry[:4])
            if tag == 274 and typ == 3:
                value, = struct.unpack(e + "H", entry[8:10])
                return value if 1 <= value <= 8 else 1
    except struct.error:
        return 1
    return 1


def _png_orientation(r: _FileReader, size: int) -> int:
    """PNG keeps EXIF in an ``eXIf`` chunk (before IDAT); 1 when there is none."""
    pos = 8
    for _ in range(64):
        hdr = r.read(pos, 8)
        if len(hdr) < 8:
            return 1
        length, kind = struct.unpack(">I4s", hdr)
        if kind == b"eXIf":
            return _tiff_orientation(r.read(pos + 8, length))
        if kind in (b"IDAT", b"IEND"):
            return 1
        pos += 12 + length
    return 1


def _tiff_header(r: _FileReader, head: bytes, name: str) -> ImageInfo:
    """Width, height, samples per pixel and orientation from the first IFD of a TIFF or BigTIFF."""
    e = "<" if head[:2] == b"II" else ">"
    big = head[2:4] in (b"+\x00", b"\x00+")
    try:
        if big:
            ifd, = struct.unpack(e + "Q", head[8:16])
            count, = struct.unpack(e + "Q", r.read(ifd, 8))
            entry_size, first, fmt = 20, ifd + 8, "HHQ"
        else:
            ifd, = struct.unpack(e + "I", head[4:8])
            count, = struct.unpack(e + "H", r.read(ifd, 2))
            entry_size, first, fmt = 12, ifd + 2, "HHI"
        block = r.read(first, entry_size * min(count, 4096))
        tags = {}
        for i in range(min(count, 4096)):
            entry = block[i * entry_size:(i + 1) * entry_size]
            tag, typ, _ = struct.unpack(e + fmt, entry[:struct.calcsize(e + fmt)])
            value = entry[struct.calcsize(e + fmt):]
            if typ == 3:
                tags[tag] = struct.unpack(e + "H", value[:2])[0]
            elif typ == 4:
                tags[tag] = struct.unpack(e + "I", value[:4])[0]
            elif typ == 16:
                tags[tag] = struct.unpack(e + "Q", value[:8])[0]
    except struct.error as err:
        raise ImageError(f"{name}: truncated or corrupt TIFF header") from err
    if 256 not in tags or 257 not in tags:
        raise ImageError(f"{name}: TIFF without width/height tags")
    orientation = tags.get(274, 1)
    spp = int(tags.get(277, 1))
    return ImageInfo(int(tags[256]), int(tags[257]), spp, "tiff", orientation if 1 <= orientation <= 8 else 1,
                     bits=int(tags.get(258, 8)) if spp == 1 else 8)


def _webp_header(head: bytes, size: int, name: str) -> ImageInfo:
    kind = head[12:16]
    complete = size >= struct.unpack("<I", head[4:8])[0] + 8
    if kind == b"VP8 " and len(head) >= 30:
        w, h = struct.unpack("<HH", head[26:30])
        return ImageInfo(w & 0x3FFF, h & 0x3FFF, 3, "webp", complete=complete)
    if kind == b"VP8L" and len(head) >= 25:
        b = head[21:25]
        w = 1 + (((b[1] & 0x3F) << 8) | b[0])
        h = 1 + (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        return ImageInfo(w, h, 4, "webp", complete=complete)
    if kind == b"VP8X" and len(head) >= 30:
        w = 1 + int.from_bytes(head[24:27], "little")
        h = 1 + int.from_bytes(head[27:30], "little")
        return ImageInfo(w, h, 4 if head[20] & 0x10 else 3, "webp", complete=complete)
    raise ImageError(f"{name}: truncated or corrupt WebP header")


def image_size(path: PathLike, data=None) -> Tuple[int, int, int]:
    """``(width, height, channels)`` of the stored pixel grid, from the header."""
    info = probe(path, None if data is None else bytes(data))
    return info.width, info.height, info.channels


# ---- orientation policy ----------------------------------------------------------------------------------------------

def decide_orientation(policy: str, info: ImageInfo, annotated: Optional[Tuple[int, int]]
                       ) -> Tuple[bool, Optional[str]]:
    """Whether to apply the EXIF orientation for an image whose annotation records ``annotated = (w, h)``
    (``None`` when the format records no size).  Returns ``(orient, problem)``: ``problem`` is a sentence when the
    annotation's size matches neither the stored nor the rotated pixel grid.

    * ``apply``: always apply the tag (as phone galleries and ``cv2.imread`` show the photo);
    * ``ignore``: never (the pixels as stored);
    * ``auto``: the annotation decides: its size matches the stored grid -> boxes refer to the stored pixels, the tag
      is ignored; it matches the rotated grid -> the rotation is applied; neither -> a problem.  Without a recorded
      size, the tag is applied (what labelling tools and ``cv2.imread`` show).
    """
    if policy not in EXIF_POLICIES:
        raise UsageError(f"--exif must be one of {', '.join(EXIF_POLICIES)}, not '{policy}'")
    stored = (info.width, info.height)
    rotated = info.size(True)
    if policy == "apply":
        orient = True
    elif policy == "ignore":
        orient = False
    elif annotated is None or annotated[0] <= 0:
        orient = True
    else:
        orient = tuple(annotated) != stored and tuple(annotated) == rotated
    if annotated is None or annotated[0] <= 0 or tuple(annotated) == info.size(orient):
        return orient, None
    if policy == "auto":
        extra = f" or {rotated[0]}x{rotated[1]} after its EXIF rotation" if info.swaps else ""
        return orient, (f"the annotation says {annotated[0]}x{annotated[1]}, the image is {stored[0]}x{stored[1]}"
                        f"{extra}")
    return orient, (f"the annotation says {annotated[0]}x{annotated[1]}, the image is {info.size(orient)[0]}x"
                    f"{info.size(orient)[1]} with --exif {policy}")


def clear_orientation(data: bytes, name: str = "<image>") -> bytes:
    """The same file with its EXIF orientation set to 1 ("as stored"), every other byte unchanged: for copying a
    photo whose boxes refer to its stored pixels, so that no reader turns it.  JPEG and TIFF-structured EXIF only;
    other files are returned as they are."""
    if data[:2] != b"\xff\xd8":
        return data
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xDA:
            break
        length, = struct.unpack(">H", data[pos + 2:pos + 4])
        body = pos + 4
        if marker == 0xE1 and data[body:body + 6] == b"Exif\x00\x00":
            at = _orientation_value_offset(data[body + 6:body + length - 2])
            if at is not None:
                tiff = body + 6
                e = "<" if data[tiff:tiff + 2] == b"II" else ">"
                return data[:tiff + at] + struct.pack(e + "H", 1) + data[tiff + at + 2:]
        pos += 2 + length
    return data


def _orientation_value_offset(tiff: bytes) -> Optional[int]:
    """Offset (within the TIFF structure) of the orientation tag's 2-byte value in IFD0, or None."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    e = "<" if tiff[:2] == b"II" else ">"
    try:
        ifd, = struct.unpack(e + "I", tiff[4:8])
        count, = struct.unpack(e + "H", tiff[ifd:ifd + 2])
        for i in range(count):
            at = ifd + 2 + 12 * i
            tag, typ = struct.unpack(e + "HH", tiff[at:at + 4])
            if tag == 274 and typ == 3:
                return at + 8
    except struct.error:
        return None
    return None


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels into the orientation the EXIF tag asks for (a new array; the input is untouched)."""
    if orientation in (1, 0):
        return img
    if orientation == 2:
        return cv2.flip(img, 1)
    if orientation == 3:
        return cv2.rotate(img, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(img, 0)
    if orientation == 5:
        return cv2.transpose(img)
    if orientation == 6:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(img), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


# ---- decoding -------------------------------------------------------------------------------------------------------

MODES = {"color": 1, "unchanged": -1, "gray": 0}  # cv2.IMREAD_COLOR, IMREAD_UNCHANGED, IMREAD_GRAYSCALE


def is_plain_gray(info: ImageInfo) -> bool:
    """An 8-bit one-channel file: decoding it as ``color`` would only repeat its channel three times."""
    return info.channels == 1 and info.bits == 8 and info.kind in ("png", "jpeg")


def read_image(path: PathLike, mode: str = "color", orient: bool = True,
               warnings: Optional[list] = None) -> np.ndarray:
    """Decode an image file: ``color`` (BGR uint8), ``unchanged`` (as stored: gray, BGR, BGRA, 16-bit), ``gray``,
    or ``keep_gray``: ``color``, except that an 8-bit gray file stays one channel (the same values ``color`` would
    repeat in B, G and R, at a third of the memory; expand with :func:`as_bgr` where BGR is needed).

    ``orient``: apply the EXIF orientation tag.  Raises :class:`ImageError` naming the file for a missing, empty,
    truncated, corrupt or too-large image; a JPEG whose decoder warns that it made pixels up (data cut short before
    its end marker, a bad Huffman code: see :mod:`dsprep.libjpeg`) is corrupt.  Benign decoder warnings (extraneous
    bytes before a marker) are appended to ``warnings`` when a list is given.
    """
    name = str(path)
    try:
        data = np.fromfile(name, dtype=np.uint8)
    except OSError as e:
        raise ImageError(f"{name}: cannot read image ({e.strerror or e})") from e
    return decode_image(data, name, mode, orient, warnings)


def decode_image(data: np.ndarray, name: str, mode: str = "color", orient: bool = True,
                 warnings: Optional[list] = None) -> np.ndarray:
    """:func:`read_image` over bytes already in memory."""
    buf = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    info = probe(name, buf)
    if mode == "keep_gray":
        mode = "gray" if is_plain_gray(info) else "color"
    flags = MODES[mode] if isinstance(mode, str) else int(mode)
    check_complete(buf, name, info)
    _check_memory(info, name, mode)
    img = _decode(np.frombuffer(buf, np.uint8), name, flags, warnings)
    if orient and info.orientation != 1:
        img = apply_orientation(img, info.orientation)
    return img


def _decode(data: np.ndarray, name: str, flags: int, warnings: Optional[list] = None) -> np.ndarray:
    arr = data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    flags = flags | cv2.IMREAD_IGNORE_ORIENTATION if flags >= 0 else flags
    try:
        if arr[:2].tobytes() == b"\xff\xd8":  # a JPEG: libjpeg's warnings decide whether its pixels are real
            from .libjpeg import classify, decode_capturing, explain
            img, messages = decode_capturing(lambda: cv2.imdecode(arr, flags))
            corrupt, benign = classify(messages)
            if corrupt:
                raise ImageError(f"{name}: {explain(corrupt[0])}")
            if warnings is not None:
                warnings.extend(benign)
        else:
            img = cv2.imdecode(arr, flags)
    except cv2.error as e:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(e):
            # dsprep lifts the limit (dsprep/__init__.py) unless cv2 was loaded before dsprep was
            raise ImageError(f"{name}: more pixels than OpenCV's limit, which was fixed when cv2 was loaded before "
                             f"dsprep: import dsprep first, or set OPENCV_IO_MAX_IMAGE_PIXELS") from e
        raise ImageError(f"{name}: cannot decode image ({str(e).strip().splitlines()[-1]})") from e
    if img is None:
        raise ImageError(f"{name}: not a readable image (corrupt or unsupported format)")
    return img


def check_complete(data: bytes, name: str, info: Optional[ImageInfo] = None) -> None:
    """Refuse empty and truncated files (JPEG: an end-of-image marker after the first scan; PNG: ``IEND``)."""
    if isinstance(data, np.ndarray):
        data = data.tobytes()
    if len(data) == 0:
        raise ImageError(f"{name}: image file is empty (0 bytes)")
    if data[:2] == b"\xff\xd8":
        if b"\xff\xd9" in data[-1024:]:
            eoi = len(data) - 1024 + data[-1024:].rfind(b"\xff\xd9") if len(data) > 1024 else data.rfind(b"\xff\xd9")
        else:
            eoi = data.rfind(b"\xff\xd9")  # data appended after the image (motion photos): search it all
        sos = data.find(b"\xff\xda")
        if eoi < 0 or sos < 0 or eoi < sos:
            raise ImageError(f"{name}: truncated JPEG (no end-of-image marker after the image data)")
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in data[-64:]:
            raise ImageError(f"{name}: truncated PNG (no IEND chunk at the end)")
    elif info is not None and info.complete is False:
        raise ImageError(f"{name}: truncated {info.kind.upper()} file (shorter than its header says)")


def verify_jpeg(data, name: str) -> List[str]:
    """Check a JPEG's entropy-coded data without keeping its pixels (for callers that store the file's bytes):
    decoded at 1/8 scale in gray (libjpeg still reads every coefficient, and warns as a full decode would, at about
    half of its cost; see ``benchmarks/bench_jpeg_check.py``).  Raises :class:`ImageError` for a corrupt one;
    returns the benign warnings.  Other formats: nothing to do."""
    arr = data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    if arr[:2].tobytes() != b"\xff\xd8":
        return []
    warnings: List[str] = []
    _decode(arr, name, cv2.IMREAD_REDUCED_GRAYSCALE_8, warnings)
    return warnings


def available_memory() -> int:
    """Bytes this process can still allocate: the smaller of the system's available memory and the address-space
    limit (``ulimit -v``) minus what is mapped already."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            limit = soft - used
            avail = limit if avail is None else min(avail, limit)
    except (OSError, ValueError, ImportError):
        pass
    return avail if avail is not None else 1 << 62


def needed_bytes(info: ImageInfo, mode: str = "color") -> int:
    """Memory a decode needs: the decoded array (plus a rotated copy when an orientation is applied)."""
    if mode == "keep_gray":
        mode = "gray" if is_plain_gray(info) else "color"
    channels = {"color": 3, "gray": 1}.get(mode, max(1, info.channels))
    n = info.width * info.height * channels
    return n * (2 if info.orientation != 1 else 1)


def _check_memory(info: ImageInfo, name: str, mode: str = "color") -> None:
    need = needed_bytes(info, mode if isinstance(mode, str) else "unchanged")
    if need > (1 << 28):  # below 256 MB the check costs more than it saves
        check_memory_for(need, name, f"a {info.width}x{info.height} image", "to decode")


def check_memory_for(need: int, name: str, what: str, purpose: str, why: str = "") -> None:
    """An :class:`ImageError` when ``need`` bytes are more than this process can still allocate; ``why`` says why
    the image must be whole in memory (the default: it is decoded whole)."""
    avail = available_memory()
    if need > avail:
        raise ImageError(f"{name}: {what} needs {amount(need)} {purpose} and {amount(avail)} are available; "
                         f"{why or 'it is decoded whole'}: convert it to a tiled TIFF (tile-dota and tile read "
                         f'those window by window, with pip install "dsprep[tiff]")')


def amount(n: int) -> str:
    """Bytes for people: ``1.2 GB``, ``340 MB``, ``12 KB``."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if unit == "GB" else f"{n / size:.0f} {unit}"
    return f"{n} bytes"


# ---- encoding -------------------------------------------------------------------------------------------------------

PNG_FAST = "fast"  # png_compression value: the fastest encoder that stores the same pixels


def encode_image(img: np.ndarray, ext: str, jpeg_quality: int = 95, png_compression=None) -> bytes:
    """Encode by extension.

    ``png_compression``: None, OpenCV's default level (what ``cv2.imwrite`` does); 0-9, that zlib level (smaller
    files, slower); :data:`PNG_FAST`, the fastest way to store the same pixels: :mod:`dsprep.pngenc` (rows
    filtered with numpy, ISA-L's deflate: ~8 ms against OpenCV's ~32 ms for a 1024 x 1024 RGB tile, files ~15%
    smaller), or OpenCV's default where the ``isal`` package is missing.  PNG is lossless: every setting decodes to
    the same pixels."""
    ext = ext.lower()
    params = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    elif ext == ".png" and png_compression == PNG_FAST:
        if pngenc.FAST and img.dtype in (np.uint8, np.uint16) and img.size and (img.ndim == 2 or img.shape[2] in (1, 3, 4)):
            return pngenc.encode_png(img)
    elif ext == ".png" and png_compression is not None:
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    try:
        ok, buf = cv2.imencode(ext, img, params)
    except cv2.error as e:
        raise OutputError(f"cannot encode a {img.shape} {img.dtype} image as {ext}") from e
    if not ok:
        raise OutputError(f"cannot encode image as {ext}")
    return buf.tobytes()


def write_image(path: PathLike, img: np.ndarray, jpeg_quality: int = 95, png_compression=None) -> None:
    """Encode by the path's extension and write atomically."""
    atomic_write_bytes(path, encode_image(img, os.path.splitext(str(path))[1] or ".png", jpeg_quality,
                                          png_compression))


def as_bgr(img: np.ndarray) -> np.ndarray:
    """A one-channel (gray) image as three equal BGR channels; other images unchanged."""
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return img


def read_record_image(rec, mode: str = "color") -> np.ndarray:
    """The pixels a record's boxes refer to: its image decoded with the orientation decided when the data set was
    read (``rec.meta["orient"]``, see :func:`decide_orientation`).  An image whose size is not the record's is an
    error: its boxes would not fit its pixels."""
    img = read_image(rec.image_path, mode, orient=rec.meta.get("orient", True))
    h, w = img.shape[:2]
    if rec.width > 0 and (w, h) != (rec.width, rec.height):
        where = rec.meta.get("annotation_path") or rec.image_path
        raise ImageError(f"{where}: the annotation says {rec.width}x{rec.height} but the image {rec.image_path} is "
                         f"{w}x{h} (boxes would not fit the pixels; see dsprep info, --exif)")
    return img


_REDUCED_GRAY = {1: "IMREAD_GRAYSCALE", 2: "IMREAD_REDUCED_GRAYSCALE_2", 4: "IMREAD_REDUCED_GRAYSCALE_4",
                 8: "IMREAD_REDUCED_GRAYSCALE_8"}


def reduced_factor(width: int, height: int, min_side: int) -> int:
    """The largest of 8, 4, 2, 1 that keeps an image's short side at ``min_side`` pixels or more."""
    for f in (8, 4, 2):
        if min(width, height) >= min_side * f:
            return f
    return 1


def read_reduced_gray(path: PathLike, min_side: int = 64, orient: bool = True,
                      data: Optional[bytes] = None) -> Tuple[np.ndarray, ImageInfo]:
    """An image decoded in gray at 1/2, 1/4 or 1/8 of its size (the largest reduction whose short side is still
    ``min_side`` pixels or more), and its header.

    JPEG files are decoded at the reduced size directly (the DCT scaling of libjpeg: ~5-10x faster than a full
    decode and resize); other formats are decoded and then reduced by OpenCV.  The same completeness and memory
    checks as :func:`read_image`; ``orient`` applies the EXIF orientation tag.  ``data``: the file's bytes when
    already read."""
    name = str(path)
    if data is None:
        try:
            data = np.fromfile(name, dtype=np.uint8).tobytes()
        except OSError as e:
            raise ImageError(f"{name}: cannot read image ({e.strerror or e})") from e
    info = probe(name, data)
    check_complete(data, name, info)
    factor = reduced_factor(info.width, info.height, min_side)
    if factor == 1:
        _check_memory(info, name, "gray")
    img = _decode(np.frombuffer(data, np.uint8), name, getattr(cv2, _REDUCED_GRAY[factor]))
    if img.dtype != np.uint8:  # 16-bit files decoded in gray keep their depth
        img = (img >> 8).astype(np.uint8)
    if orient and info.orientation != 1:
        img = apply_orientation(img, info.orientation)
    return img, info
