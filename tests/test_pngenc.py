"""dsprep/pngenc.py: the fast PNG encoder gives back every pixel through other decoders (OpenCV, Pillow)."""
import io

import cv2
import numpy as np
import pytest

from dsprep import pngenc
from dsprep.images import PNG_FAST, encode_image
from dsprep.formats.vocmasks import encode_palette_png, mask_indices, voc_palette


def _decoded(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (7, 5, 1), (31, 17, 3), (9, 4, 4), (300, 257, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_every_pixel_comes_back_through_opencv(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    got = _decoded(pngenc.encode_png(img))
    assert got.dtype == dtype
    assert np.array_equal(got.reshape(img.shape), img)


def test_real_aerial_pixels_come_back_and_the_file_is_smaller_than_opencvs(shared):
    img = cv2.imread(str(sorted((shared / "dota_example" / "images").glob("*.png"))[0]))
    tile = np.ascontiguousarray(img[:512, :512])
    ours = encode_image(tile, ".png", png_compression=PNG_FAST)
    assert np.array_equal(_decoded(ours), tile)
    if pngenc.FAST:  # ISA-L at level 1 with the Up filter: smaller than OpenCV's default on photographs
        assert ours.startswith(b"\x89PNG") and len(ours) < len(cv2.imencode(".png", tile)[1])


def test_channel_order_is_opencvs_bgr_unless_told():
    img = np.zeros((2, 2, 3), np.uint8)
    img[..., 0] = 255  # blue in OpenCV's order
    from PIL import Image
    rgb = np.asarray(Image.open(io.BytesIO(pngenc.encode_png(img))))
    assert (rgb[..., 2] == 255).all() and (rgb[..., :2] == 0).all()
    as_rgb = np.asarray(Image.open(io.BytesIO(pngenc.encode_png(img, rgb_order=True))))
    assert (as_rgb[..., 0] == 255).all()


def test_palette_pngs_are_palette_images_with_the_indices():
    from PIL import Image
    idx = np.random.default_rng(3).integers(0, 21, (40, 33), dtype=np.uint8)
    data = encode_palette_png(idx, voc_palette())
    im = Image.open(io.BytesIO(data))
    assert im.mode == "P" and np.array_equal(np.asarray(im), idx)
    assert np.array_equal(np.asarray(im.getpalette(), np.uint8).reshape(-1, 3)[:21], voc_palette()[:21])
    assert np.array_equal(mask_indices(data), idx)


def test_without_isal_the_standard_zlib_writes_the_same_pixels(monkeypatch):
    img = np.random.default_rng(5).integers(0, 256, (50, 40, 3), dtype=np.uint8)
    monkeypatch.setattr(pngenc, "_deflate", None)
    assert np.array_equal(_decoded(pngenc.encode_png(img)), img)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 2, 2), np.uint8), np.zeros((0, 3), np.uint8),
                                 np.zeros((4, 4, 5), np.uint8)])
def test_what_png_cannot_hold_is_refused(bad):
    with pytest.raises(ValueError):
        pngenc.encode_png(bad)


def test_fast_setting_writes_sixteen_bit_gray_exactly():
    gray16 = np.arange(36, dtype=np.uint16).reshape(6, 6) * 1000
    assert np.array_equal(_decoded(encode_image(gray16, ".png", png_compression=PNG_FAST)), gray16)
