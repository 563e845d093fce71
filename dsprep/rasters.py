"""Rasters for tiling: an image read window by window when it is a tiled or striped TIFF, whole otherwise.

Tiling needs rectangles of an image, not the image.  :func:`open_raster` gives a :class:`Raster` whose
:meth:`Raster.read` returns the pixels of one rectangle, in the same layout :func:`dsprep.images.read_image` would give
for the whole image (BGR uint8, or one gray channel):

* **TIFF / BigTIFF / GeoTIFF** with tiles or strips (``pip install "dsprep[tiff]"``: tifffile and imagecodecs): only
  the TIFF tiles or strips a rectangle touches are read and decoded, straight into the rectangle's array.  A
  40,000 x 40,000 RGB image (4.8 GB decoded) is tiled with a few hundred MB.  Georeferencing (GeoTIFF model tie
  point and pixel scale, or a model transformation) is read into a :class:`GeoTransform`;
* **everything else** (PNG, JPEG, BMP, WebP, and TIFF layouts the window reader does not take: palette, CMYK,
  16-bit, one strip for the whole image, an EXIF orientation to apply) is decoded whole through
  :func:`dsprep.images.read_image`, which checks first that the memory it needs is available.

Gray images stay one channel (a third of the memory); writers expand them where the output must be BGR.

:class:`ScaledRaster` serves rectangles of the image resized by a rate with OpenCV's bicubic ``cv2.resize`` (what
DOTA_devkit does to the whole image).  For windowed rasters the rate must be a power of two (0.5, 0.25, 2 ...): then
resizing a rectangle (with a margin for the bicubic taps, aligned to the rate) gives exactly the pixels of resizing
the whole image, because OpenCV's source coordinates ``(x + 0.5) / rate - 0.5`` are then exact in floating point.  For
other rates the whole image is decoded (or a clear error says how much memory that needs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

from .core import ImageError

TIFF_EXTRA = 'pip install "dsprep[tiff]"'
# a strip or tile larger than this is not a window (a striped TIFF with one strip holds the whole image)
MAX_SEGMENT_BYTES = 64 << 20
# compressed bytes read from the file in one pass (tifffile's default is 256 MB)
READ_BUFFER = 16 << 20


# ---- georeferencing -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GeoTransform:
    """Pixel corner ``(col, row)`` (0-based, continuous, ``(0, 0)`` the top-left corner of the image) to map
    coordinates: ``x = a*col + b*row + c``, ``y = d*col + e*row + f``."""

    a: float
    b: float
    c: float
    d: float
    e: float
    f: float

    def world_file(self, left: float, up: float, rate: float = 1.0) -> str:
        """The world file (``.pgw``/``.jgw``/``.tfw``) of a tile whose top-left corner is at ``(left, up)`` in the
        image resized by ``rate``: pixel sizes and rotations, then the map position of the *centre* of the tile's
        top-left pixel (the world file convention)."""
        a, b, d, e = self.a / rate, self.b / rate, self.d / rate, self.e / rate
        col, row = left + 0.5, up + 0.5
        x = a * col + b * row + self.c
        y = d * col + e * row + self.f
        return "".join(f"{_g(v)}\n" for v in (a, d, b, e, x, y))


def _g(v: float) -> str:
    return repr(float(v) + 0.0)


def world_file_ext(image_ext: str) -> str:
    """``.png`` -> ``.pgw``, ``.jpg`` -> ``.jgw``, ``.tif`` -> ``.tfw`` (first and last letter of the extension,
    then ``w``)."""
    e = image_ext.lower().lstrip(".")
    return f".{e[0]}{e[-1]}w"


def _geotransform(page) -> Optional[GeoTransform]:
    """From the GeoTIFF tags of a page: ModelTransformation (34264), or ModelTiepoint (33922) with ModelPixelScale
    (33550); GTRasterTypeGeoKey (1025) = PixelIsPoint shifts the tie point by half a pixel."""
    tags = page.tags
    point = False
    keys = tags.get(34735)
    if keys is not None:
        k = list(keys.value)
        for i in range(4, len(k) - 3, 4):
            if k[i] == 1025 and k[i + 1] == 0 and k[i + 3] == 2:
                point = True
    if 34264 in tags:
        m = [float(v) for v in tags[34264].value]
        if len(m) < 8:
            return None
        a, b, c, d, e, f = m[0], m[1], m[3], m[4], m[5], m[7]
    elif 33922 in tags and 33550 in tags:
        tie = [float(v) for v in tags[33922].value]
        scale = [float(v) for v in tags[33550].value]
        if len(tie) < 6 or len(scale) < 2:
            return None
        i, j, x, y = tie[0], tie[1], tie[3], tie[4]
        a, e = scale[0], -scale[1]
        b = d = 0.0
        c, f = x - a * i, y - e * j
    else:
        return None
    if point:  # the tie point names a pixel centre: the corner is half a pixel up-left
        c -= 0.5 * (a + b)
        f -= 0.5 * (d + e)
    return GeoTransform(a, b, c, d, e, f)


# ---- rasters --------------------------------------------------------------------------------------------------------

class Raster:
    """An image served by rectangles: ``read(x0, y0, x1, y1)`` -> ``(y1-y0, x1-x0[, 3])`` uint8, BGR or gray."""

    width: int = 0
    height: int = 0
    channels: int = 3
    windowed: bool = False
    geo: Optional[GeoTransform] = None

    def read(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class WholeRaster(Raster):
    """A decoded image in memory; rectangles are views of it."""

    def __init__(self, img: np.ndarray, geo: Optional[GeoTransform] = None):
        self.img = img
        self.height, self.width = img.shape[:2]
        self.channels = 1 if img.ndim == 2 else img.shape[2]
        self.geo = geo

    def read(self, x0, y0, x1, y1):
        return self.img[y0:y1, x0:x1]


class TiffWindows(Raster):
    """A tiled or striped TIFF read rectangle by rectangle (tifffile's segment decoder; only the segments a
    rectangle touches are read)."""

    windowed = True

    def __init__(self, path: str, page_info: "TiffLayout"):
        import tifffile
        self.path = path
        self.tif = tifffile.TiffFile(path)
        self.page = self.tif.pages[0]
        self.layout = page_info
        self.width, self.height = page_info.width, page_info.height
        self.channels = 1 if page_info.samples == 1 else 3
        self.geo = page_info.geo
        kf = self.page.keyframe
        self._args = {"_fullsize": kf.is_tiled}
        if kf.compression in (6, 7, 34892, 33007):
            self._args["jpegtables"] = self.page.jpegtables
            self._args["jpegheader"] = kf.jpegheader

    def close(self):
        self.tif.close()

    def read(self, x0, y0, x1, y1):
        lay = self.layout
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(self.width, x1), min(self.height, y1)
        samples = lay.samples
        out = np.empty((y1 - y0, x1 - x0, samples), np.uint8)
        indices = lay.segments_in(x0, y0, x1, y1)
        page = self.page
        offsets, counts = page.dataoffsets, page.databytecounts
        fh = self.tif.filehandle
        try:
            for data, index in fh.read_segments([offsets[i] for i in indices], [counts[i] for i in indices],
                                                indices=indices, sort=True, flat=True,
                                                buffersize=READ_BUFFER):
                seg, (s, _, sy, sx, _), _ = page.keyframe.decode(data, index, **self._args)
                # seg: (depth, length, width, contig samples); s: the sample plane of a planar-separate TIFF
                ty0, tx0 = max(y0, sy), max(x0, sx)
                ty1 = min(y1, sy + seg.shape[1])
                tx1 = min(x1, sx + seg.shape[2])
                if ty1 <= ty0 or tx1 <= tx0:
                    continue
                part = seg[0, ty0 - sy:ty1 - sy, tx0 - sx:tx1 - sx]
                if lay.planar:
                    out[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0, s] = part[..., 0]
                else:
                    out[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0] = part[..., :samples]
        except ImageError:
            raise
        except Exception as e:  # tifffile/imagecodecs raise many kinds for corrupt data
            raise ImageError(f"{self.path}: cannot decode TIFF data ({type(e).__name__}: {e})") from e
        if samples == 1:
            return out[..., 0]
        # RGB(A) as stored -> BGR, as OpenCV decodes (alpha dropped)
        return cv2.cvtColor(out[..., :3], cv2.COLOR_RGB2BGR) if samples >= 3 else out


@dataclass(frozen=True)
class TiffLayout:
    """What the window reader needs to know about a TIFF's first page (read once, picklable)."""

    width: int
    height: int
    samples: int          # 1 gray, 3 RGB, 4 RGB + alpha (dropped)
    planar: bool          # one plane per sample
    seg_w: int            # tile width, or image width for strips
    seg_h: int            # tile length, or rows per strip
    tiled: bool
    geo: Optional[GeoTransform]

    def segments_in(self, x0: int, y0: int, x1: int, y1: int):
        """Indices (into the offsets/bytecounts tags) of the segments a rectangle touches."""
        per_row = -(-self.width // self.seg_w)
        rows = -(-self.height // self.seg_h)
        ys = range(y0 // self.seg_h, -(-y1 // self.seg_h))
        xs = range(x0 // self.seg_w, -(-x1 // self.seg_w))
        one = [ty * per_row + tx for ty in ys for tx in xs]
        if not self.planar:
            return one
        plane = rows * per_row
        return [s * plane + i for s in range(self.samples) for i in one]


def tiff_layout(path: str) -> Tuple[Optional[TiffLayout], str]:
    """``(layout, "")`` when the TIFF can be read window by window, else ``(None, why not)``.  Needs tifffile
    (``(None, "no tifffile")`` without it)."""
    try:
        import tifffile
    except ImportError:
        return None, "no tifffile"
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return _layout(page)
    except Exception as e:  # noqa: BLE001 - an unreadable TIFF is decoded (and reported) by the whole-image path
        return None, f"tifffile cannot read it ({type(e).__name__}: {e})"


def _layout(page) -> Tuple[Optional[TiffLayout], str]:
    if page.dtype is None or np.dtype(page.dtype) != np.uint8:
        return None, f"{page.dtype} samples (only 8-bit is read by windows)"
    photometric = int(page.photometric)
    spp = int(page.samplesperpixel)
    if page.imagedepth != 1:
        return None, "a volume (image depth > 1)"
    if photometric == 1 and spp in (1, 2):
        samples = 1
    elif photometric == 2 and spp in (3, 4):
        samples = spp
    elif photometric == 6 and int(page.compression) in (6, 7) and spp == 3:
        samples = 3  # YCbCr JPEG: the JPEG decoder returns RGB
    else:
        return None, f"photometric {page.photometric.name if hasattr(page.photometric, 'name') else photometric} " \
                     f"with {spp} samples"
    if spp == 4 and samples == 4:
        extra = page.extrasamples
        if extra and int(extra[0]) == 1:
            return None, "premultiplied alpha"
    if spp == 2:
        return None, "gray with alpha"
    orientation = int(page.orientation) if getattr(page, "orientation", None) else 1
    if orientation not in (0, 1):
        return None, f"EXIF/TIFF orientation {orientation}"
    planar = int(page.planarconfig) == 2
    if page.is_tiled:
        seg_w, seg_h, tiled = int(page.tilewidth), int(page.tilelength), True
    else:
        seg_w, seg_h, tiled = int(page.imagewidth), int(page.rowsperstrip or page.imagelength), False
        seg_h = min(seg_h, int(page.imagelength))
    seg_bytes = seg_w * seg_h * (1 if planar else spp)
    if seg_bytes > MAX_SEGMENT_BYTES:
        return None, f"{'tiles' if tiled else 'strips'} of {seg_bytes / 1e6:.0f} MB (re-save it tiled)"
    return TiffLayout(int(page.imagewidth), int(page.imagelength), samples, planar, seg_w, seg_h, tiled,
                      _geotransform(page)), ""


def read_geotransform(path: str) -> Optional[GeoTransform]:
    """The GeoTIFF georeferencing of a TIFF (None for other files, without tifffile, or without GeoTIFF tags)."""
    if not str(path).lower().endswith((".tif", ".tiff")):
        return None
    try:
        import tifffile
        with tifffile.TiffFile(path) as tif:
            return _geotransform(tif.pages[0])
    except Exception:  # noqa: BLE001 - no georeferencing is not an error
        return None


def is_tiff(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
    except OSError:
        return False


def open_raster(path: str, orient: bool = True, layout: Optional[TiffLayout] = None) -> Raster:
    """The image at ``path`` as a :class:`Raster`: window by window when ``layout`` (from :func:`tiff_layout`) is
    given, else decoded whole (BGR, or gray for 8-bit gray files) through :func:`dsprep.images.read_image`."""
    if layout is not None:
        return TiffWindows(str(path), layout)
    from .images import read_image
    geo = read_geotransform(path) if is_tiff(path) else None
    return WholeRaster(read_image(path, "keep_gray", orient=orient), geo)


# ---- scaling ----------------------------------------------------------------------------------------------------------

def exact_window_rate(rate: float) -> bool:
    """Whether rectangles of a window-read image can be resized by ``rate`` exactly as the whole image: powers of
    two (``0.5``, ``0.25``, ``2`` ...)."""
    m, _ = math.frexp(float(rate))
    return m == 0.5


def scaled_size(width: int, height: int, rate: float) -> Tuple[int, int]:
    """The size ``cv2.resize(img, None, fx=rate, fy=rate)`` gives (rounded to nearest, ties to even)."""
    if rate == 1:
        return width, height
    return int(round(width * rate)), int(round(height * rate))


class ScaledRaster(Raster):
    """Rectangles of ``base`` resized by ``rate`` (bicubic, as DOTA_devkit).  A whole raster is resized once; a
    windowed one rectangle by rectangle (powers of two only, see the module docstring)."""

    def __init__(self, base: Raster, rate: float):
        self.base, self.rate = base, float(rate)
        self.width, self.height = scaled_size(base.width, base.height, self.rate)
        self.channels, self.geo, self.windowed = base.channels, base.geo, base.windowed
        self._whole = None
        if self.rate != 1 and base.windowed and not exact_window_rate(self.rate):
            raise ValueError(f"rate {rate} is not a power of two: a windowed image cannot be resized exactly")

    def close(self):
        self.base.close()

    def read(self, x0, y0, x1, y1):
        if self.rate == 1:
            return self.base.read(x0, y0, x1, y1)
        if not self.base.windowed:
            if self._whole is None:
                full = self.base.read(0, 0, self.base.width, self.base.height)
                self._whole = cv2.resize(full, None, fx=self.rate, fy=self.rate, interpolation=cv2.INTER_CUBIC)
                self.base = WholeRaster(self._whole)  # the original is no longer needed
            return self._whole[y0:y1, x0:x1]
        sx = self._source_span(x0, x1, self.base.width)
        sy = self._source_span(y0, y1, self.base.height)
        src = self.base.read(sx[0], sy[0], sx[1], sy[1])
        out = cv2.resize(src, None, fx=self.rate, fy=self.rate, interpolation=cv2.INTER_CUBIC)
        ox, oy = int(sx[0] * self.rate), int(sy[0] * self.rate)
        return out[y0 - oy:y1 - oy, x0 - ox:x1 - ox]

    def _source_span(self, d0: int, d1: int, n: int) -> Tuple[int, int]:
        """The source range whose resize holds destination pixels ``[d0, d1)`` exactly: the bicubic taps of every
        pixel (``floor((d + 0.5) / rate - 0.5) - 1`` to ``+ 2``), widened to a start where ``start * rate`` is an
        integer (so the source coordinates of the rectangle are those of the whole image, shifted by an integer)."""
        s = 1.0 / self.rate
        lo = math.floor((d0 + 0.5) * s - 0.5) - 2
        hi = math.floor((d1 - 0.5) * s - 0.5) + 3
        step = max(1, int(s))
        lo = max(0, (lo // step) * step)
        hi = min(n, hi)
        # the resized rectangle must reach d1: its size is round((hi - lo) * rate)
        while int(round((hi - lo) * self.rate)) + int(lo * self.rate) < d1 and hi < n:
            hi += 1
        return lo, hi
