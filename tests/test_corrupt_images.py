"""JPEGs whose entropy-coded data is cut short but that still end with an end-of-image marker.

libjpeg decodes them without failing ("Corrupt JPEG data: premature end of data segment") and fills the rest with
gray; every command must refuse them as it refuses a truncated file.  Benign warnings (extraneous bytes before a
marker) are a problem in ``info --check-images``, never an error."""
import json
import os
import struct

import cv2
import numpy as np
import pytest

from dsprep.core import ImageError
from dsprep.images import read_image, verify_jpeg
from helpers import gradient, run_cli, voc_xml

ENCODINGS = {
    "baseline": [cv2.IMWRITE_JPEG_QUALITY, 90],
    "progressive": [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
    "restart_markers": [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_RST_INTERVAL, 4],
    "subsampled_420": [cv2.IMWRITE_JPEG_QUALITY, 75, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                       cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420],
}


def jpeg(w=160, h=120, params=ENCODINGS["baseline"]) -> bytes:
    ok, buf = cv2.imencode(".jpg", gradient(w, h), params)
    assert ok
    return buf.tobytes()


def cut_short(data: bytes, keep: float = 0.5) -> bytes:
    """The file cut inside the entropy-coded data of its last scan and closed with an end-of-image marker, as a
    partial download or a careless repair tool leaves it."""
    sos = data.rfind(b"\xff\xda")
    start = sos + 2 + struct.unpack(">H", data[sos + 2:sos + 4])[0]
    end = data.rfind(b"\xff\xd9")
    cut = start + int((end - start) * keep)
    while data[cut - 1] == 0xFF:  # never leave half a stuffed byte
        cut -= 1
    return data[:cut] + b"\xff\xd9"


def with_extraneous_bytes(data: bytes) -> bytes:
    """Three stray bytes before the start-of-scan marker: libjpeg warns and skips them; the pixels are whole."""
    sos = data.find(b"\xff\xda")
    return data[:sos] + b"\x00\x00\x07" + data[sos:]


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_cut_short_jpeg_with_end_marker_is_corrupt(tmp_path, encoding):
    good = jpeg(params=ENCODINGS[encoding])
    (tmp_path / "good.jpg").write_bytes(good)
    (tmp_path / "cut.jpg").write_bytes(cut_short(good))
    warnings = []
    assert read_image(tmp_path / "good.jpg", warnings=warnings).shape == (120, 160, 3) and warnings == []
    assert cv2.imread(str(tmp_path / "cut.jpg")) is not None  # what OpenCV alone gives: gray-filled pixels
    with pytest.raises(ImageError, match=r"cut\.jpg: corrupt JPEG: the image data is cut short"):
        read_image(tmp_path / "cut.jpg")
    with pytest.raises(ImageError, match="cut short"):
        verify_jpeg(cut_short(good), "cut.jpg")
    assert verify_jpeg(good, "good.jpg") == []


def test_a_cut_near_the_end_is_found_too(tmp_path):
    good = jpeg(320, 240)
    for keep in (0.9, 0.99):
        with pytest.raises(ImageError, match="cut short"):
            verify_jpeg(cut_short(good, keep), f"cut{keep}.jpg")


def test_extraneous_bytes_are_a_warning_not_an_error(tmp_path):
    good = jpeg()
    (tmp_path / "extra.jpg").write_bytes(with_extraneous_bytes(good))
    warnings = []
    img = read_image(tmp_path / "extra.jpg", warnings=warnings)
    assert np.array_equal(img, cv2.imdecode(np.frombuffer(good, np.uint8), cv2.IMREAD_COLOR))
    assert warnings == ["Corrupt JPEG data: 3 extraneous bytes before marker 0xda"]
    assert verify_jpeg(with_extraneous_bytes(good), "extra.jpg") == warnings


def test_other_standard_error_output_is_passed_on(capfd):
    from dsprep.libjpeg import decode_capturing

    def noisy():
        os.write(2, b"some other library speaking\n")
        return cv2.imdecode(np.frombuffer(cut_short(jpeg()), np.uint8), cv2.IMREAD_COLOR)

    img, lines = decode_capturing(noisy)
    assert img is not None and lines == ["Corrupt JPEG data: premature end of data segment"]
    assert capfd.readouterr().err == "some other library speaking\n"


@pytest.fixture
def voc_with_bad_jpegs(tmp_path):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    good = jpeg()
    files = {"ok": good, "cut": cut_short(good), "extra": with_extraneous_bytes(good)}
    for stem, data in files.items():
        (root / "Annotations" / f"{stem}.xml").write_bytes(voc_xml(f"{stem}.jpg", 160, 120, [("cat", (10, 10, 60, 50))]))
        (root / "JPEGImages" / f"{stem}.jpg").write_bytes(data)
    return root


def _problems(res):
    return {(p["kind"], os.path.basename(p["file"])) for p in json.loads(res.stdout)["problems"]}


def test_info_check_images_reports_corrupt_and_benign(voc_with_bad_jpegs):
    cheap = _problems(run_cli("info", voc_with_bad_jpegs, "--json"))
    assert not any(f.startswith("cut.") for _, f in cheap)  # headers and end marker look fine
    for workers in ("1", "2"):
        full = _problems(run_cli("info", voc_with_bad_jpegs, "--json", "--check-images", "--workers", workers))
        assert ("corrupt_image", "cut.jpg") in full
        assert ("jpeg_warning", "extra.jpg") in full
        assert not any(f.startswith("ok.") for _, f in full)


@pytest.mark.parametrize("command", [
    ["visualize", "boxes"], ["crop"], ["voc-to-h5", "--size", "64x64"], ["voc-to-h5", "--encoded"]])
def test_commands_refuse_a_cut_short_jpeg(voc_with_bad_jpegs, tmp_path, command):
    out = tmp_path / ("p.h5" if command[0] == "voc-to-h5" else "out")
    args = [command[0], *command[1:], voc_with_bad_jpegs] if command[0] != "voc-to-h5" else \
        [command[0], voc_with_bad_jpegs, out, *command[1:]]
    if command[0] != "voc-to-h5":
        args += ["--out", out]
    res = run_cli(*args, ok=False)
    assert res.exit_code == 1 and "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cut.jpg" in errors[0] and "cut short" in errors[0], res.output
    assert not out.exists()
    skipped = run_cli(*args, "--on-error", "skip", "--json")
    assert "cut.jpg" in skipped.stdout and "cut short" in skipped.stdout


def test_tile_dota_refuses_a_cut_short_jpeg(tmp_path):
    root = tmp_path / "dota"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    good = jpeg(300, 200)
    for stem, data in {"P0001": good, "P0002": cut_short(good)}.items():
        (root / "images" / f"{stem}.jpg").write_bytes(data)
        (root / "labelTxt" / f"{stem}.txt").write_text("10 10 60 10 60 40 10 40 plane 0\n")
    res = run_cli("tile-dota", root, "--out", tmp_path / "tiles", "--size", "128", "--gap", "16", ok=False)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "P0002.jpg" in res.output and "cut short" in res.output
    assert not (tmp_path / "tiles").exists()
