"""dsprep colorize: index maps written as VOC palette PNGs, same values."""
import struct

import cv2
import numpy as np
import pytest

from dsprep.inputs import read_bytes
from dsprep.formats.vocmasks import mask_indices, voc_palette
from helpers import run_cli


def _png_header(path):
    data = path.read_bytes()
    w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
    plte = data.index(b"PLTE")
    length = struct.unpack(">I", data[plte - 4:plte])[0]
    return (w, h, depth, ctype), np.frombuffer(data[plte + 4:plte + 4 + length], np.uint8).reshape(-1, 3)


def test_grey_and_npy_index_maps_become_palette_pngs_with_the_same_values(tmp_path):
    rng = np.random.default_rng(0)
    maps = tmp_path / "pred"
    (maps / "sub").mkdir(parents=True)
    a = rng.integers(0, 21, (48, 64)).astype(np.uint8)
    b = rng.integers(0, 21, (30, 20)).astype(np.int64)
    a[:4] = 255
    cv2.imwrite(str(maps / "a.png"), a)
    np.save(maps / "sub" / "b.npy", b)
    before = {p: p.read_bytes() for p in maps.rglob("*") if p.is_file()}
    res = run_cli("colorize", maps, "--out", tmp_path / "out", "-q")
    assert "2 images" in res.stderr
    for rel, want in (("a.png", a), ("sub/b.png", b)):
        out = tmp_path / "out" / rel
        (w, h, depth, ctype), pal = _png_header(out)
        assert (w, h, depth, ctype) == (want.shape[1], want.shape[0], 8, 3)  # 8-bit palette PNG
        assert np.array_equal(pal, voc_palette())
        assert np.array_equal(mask_indices(read_bytes(out)), want)
        # what a viewer shows: each pixel in its class colour (OpenCV expands the palette)
        shown = cv2.imread(str(out))[:, :, ::-1]
        assert np.array_equal(shown, voc_palette()[want])
    assert before == {p: p.read_bytes() for p in maps.rglob("*") if p.is_file()}


def test_the_voc_sample_masks_come_back_byte_for_byte_in_value(shared, tmp_path):
    src = shared / "voc_sample" / "SegmentationClass"
    run_cli("colorize", src, "--out", tmp_path / "out", "-q")
    for f in src.glob("*.png"):
        assert np.array_equal(mask_indices(read_bytes(tmp_path / "out" / f.name)), mask_indices(read_bytes(f)))


@pytest.mark.parametrize("content, message", [
    (lambda p: cv2.imwrite(str(p), np.full((4, 4), 30, np.uint8)), "has value 30, beyond the 21 classes"),
    (lambda p: p.write_bytes(b"not a png"), "not a PNG"),
])
def test_bad_maps_are_one_line(tmp_path, content, message):
    (tmp_path / "pred").mkdir()
    content(tmp_path / "pred" / "x.png")
    classes = ",".join(f"c{k}" for k in range(21))
    res = run_cli("colorize", tmp_path / "pred", "--out", tmp_path / "out", "--classes", classes, ok=False)
    assert res.exit_code == 1 and message in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_a_float_npy_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 3), np.float32))
    res = run_cli("colorize", tmp_path / "x.npy", "--out", tmp_path / "out", ok=False)
    assert res.exit_code == 1 and "2-D integer array" in res.stderr
