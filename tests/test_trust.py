"""Never silently wrong: messy real-world inputs give correct output or one clear error, in every command alike."""
import hashlib
import json

import cv2
import numpy as np
import pytest

from dsprep.dataset import load_dataset
from dsprep.images import decide_orientation, probe, read_image

from helpers import (gradient, run_cli as run, stored_pixels, voc_xml, with_exif_orientation, write_dota_tree,
                     write_voc_tree)


# ---- images without objects, test splits, missing labels ------------------------------------------------------------

def test_tile_images_without_objects_like_the_devkit(tmp_path):
    src = write_dota_tree(tmp_path / "d", {
        "empty": (300, 200, ""),
        "header": (300, 200, "imagesource:GoogleEarth\ngsd:0.5\n"),
        "one": (300, 200, "10 10 50 10 50 50 10 50 plane 0\n")})
    res = run("tile-dota", src, "--out", tmp_path / "t", "--size", "256", "--gap", "56")
    assert "3 images, 6 tiles" in res.output
    labels = sorted(p.name for p in (tmp_path / "t" / "labelTxt").iterdir())
    assert labels == [f"{s}__1__{x}___0.txt" for s in ("empty", "header", "one") for x in (0, 44)]
    # the devkit writes an empty label file for every tile of an image without objects
    assert (tmp_path / "t" / "labelTxt" / "empty__1__0___0.txt").read_text() == ""
    assert (tmp_path / "t" / "labelTxt" / "header__1__44___0.txt").read_text() == ""
    assert (tmp_path / "t" / "labelTxt" / "one__1__0___0.txt").read_text() == \
        "10.0 10.0 50.0 10.0 50.0 50.0 10.0 50.0 plane 0\n"


def test_tile_test_split_without_labels(tmp_path):
    src = write_dota_tree(tmp_path / "d", {"a": (300, 200, None), "b": (100, 100, None)}, with_labels=False)
    res = run("tile-dota", src, "--out", tmp_path / "t", "--size", "256", "--gap", "56", "--json")
    assert not (tmp_path / "t" / "labelTxt").exists()
    assert sorted(p.name for p in (tmp_path / "t" / "images").iterdir()) == \
        ["a__1__0___0.png", "a__1__44___0.png", "b__1__0___0.png"]
    summary = json.loads(res.stdout)
    assert summary["counts"]["tiles"] == 3 and summary["skipped"] == []


def test_image_missing_its_label_is_reported_not_a_crash(tmp_path):
    src = write_dota_tree(tmp_path / "d", {"a": (100, 100, "1 1 9 1 9 9 1 9 car 0\n"), "b": (100, 100, None)})
    (src / "labelTxt" / "ghost.txt").write_text("1 1 9 1 9 9 1 9 car 0\n")
    res = run("tile-dota", src, "--out", tmp_path / "t", "--size", "64", "--gap", "0", ok=False)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.startswith("error: ") and "b.png: no label file" in res.output
    assert not (tmp_path / "t").exists()
    res = run("tile-dota", src, "--out", tmp_path / "t", "--size", "64", "--gap", "0", "--on-error", "skip", "--json")
    summary = json.loads(res.stdout)
    skipped = sorted(s["input"].rsplit("/", 1)[-1] for s in summary["skipped"])
    assert skipped == ["b.png", "ghost.txt"] and "2 of 3 inputs skipped" in res.stderr
    assert summary["counts"]["images"] == 1


# ---- byte-identical labels: no -0.0 ----------------------------------------------------------------------------------

def test_no_negative_zero_in_tile_labels(tmp_path):
    # a vertex 0.5 px left of the second tile's border: the devkit's int(-0.5) writes 0.0, never -0.0
    src = write_dota_tree(tmp_path / "d", {"a": (300, 100, "43.5 10 120 10 120 60 43.5 60 ship 0\n")})
    run("tile-dota", src, "--out", tmp_path / "t", "--size", "256", "--gap", "212")
    texts = [p.read_text() for p in (tmp_path / "t" / "labelTxt").iterdir()]
    assert texts and not any("-0.0" in t for t in texts)
    tile = (tmp_path / "t" / "labelTxt" / "a__1__44___0.txt").read_text()
    assert tile.split()[0] == "1.0"  # cut: clamped to 1 as the devkit does


# ---- EXIF orientation: one policy, pixels and boxes always agree ----------------------------------------------------

@pytest.fixture
def exif_voc(tmp_path):
    """A phone photo stored 60x30 with orientation 6 (shown 30x60), annotated three ways."""
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    ok, buf = cv2.imencode(".png", gradient(60, 30))
    stored = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    ok, jpg = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 100])
    data = with_exif_orientation(jpg.tobytes(), 6)
    for stem, (w, h) in {"shown": (30, 60), "stored": (60, 30), "neither": (50, 50)}.items():
        (root / "JPEGImages" / f"{stem}.jpg").write_bytes(data)
        (root / "Annotations" / f"{stem}.xml").write_bytes(voc_xml(f"{stem}.jpg", w, h, [("cat", (3, 5, 12, 20))]))
    return root


def test_auto_orientation_follows_the_annotation(exif_voc):
    ds = load_dataset(exif_voc, on_error="skip")
    by = {r.stem: r for r in ds.records}
    assert by["shown"].meta["orient"] is True and by["stored"].meta["orient"] is False
    kinds = {(p.kind, p.file.rsplit("/", 1)[-1]) for p in ds.problems}
    assert ("size_mismatch", "neither.xml") in kinds and ("exif_orientation", "shown.jpg") in kinds
    assert ("size_mismatch", "shown.xml") not in kinds and ("size_mismatch", "stored.xml") not in kinds
    info = probe(exif_voc / "JPEGImages" / "shown.jpg")
    assert decide_orientation("apply", info, (60, 30)) == (True, decide_orientation("apply", info, (60, 30))[1])
    assert decide_orientation("ignore", info, (60, 30)) == (False, None)


@pytest.mark.parametrize("exif, expect_ok", [("auto", {"shown", "stored"}), ("apply", {"shown"}),
                                              ("ignore", {"stored"})])
def test_every_command_cuts_the_pixels_the_boxes_refer_to(exif_voc, tmp_path, exif, expect_ok):
    stored = stored_pixels(exif_voc / "JPEGImages" / "shown.jpg")
    shown = cv2.rotate(stored, cv2.ROTATE_90_CLOCKWISE)
    res = run("crop", exif_voc, "--out", tmp_path / "c", "--exif", exif, "--on-error", "skip", "--json")
    done = {p.stem.rsplit("_", 1)[0] for p in (tmp_path / "c" / "cat").iterdir()}
    assert done == expect_ok
    skipped = {s["input"].rsplit("/", 1)[-1] for s in json.loads(res.stdout)["skipped"]}
    assert skipped == {f"{s}.jpg" for s in {"shown", "stored", "neither"} - expect_ok}
    for stem, reference in (("shown", shown), ("stored", stored)):
        if stem in expect_ok:
            crop = cv2.imread(str(tmp_path / "c" / "cat" / f"{stem}_0.png"))
            assert np.abs(crop.astype(int) - reference[4:20, 2:12]).max() <= 8  # JPEG q100 vs its own decode
    # packing: the stored image and its boxes agree with what crop cut
    run("voc-to-h5", exif_voc, tmp_path / "p.h5", "--exif", exif, "--on-error", "skip", "--size", "60x60",
        "--resize", "stretch")
    from dsprep.hdf5 import DetectionH5
    pack = DetectionH5(tmp_path / "p.h5")
    assert sorted(f.split(".")[0] for f in pack.filenames) == sorted(expect_ok)


def test_convert_keeps_boxes_and_pixels_together(exif_voc, tmp_path):
    # VOC -> DOTA: DOTA records no size, so a reader applies the EXIF tag; where the boxes referred to the stored
    # pixels, the copied photo must have its tag cleared (every other byte kept)
    run("convert", "voc-to-dota", exif_voc, "--out", tmp_path / "d", "--on-error", "skip")
    src = (exif_voc / "JPEGImages" / "stored.jpg").read_bytes()
    copy = (tmp_path / "d" / "images" / "stored.jpg").read_bytes()
    assert len(copy) == len(src) and sum(a != b for a, b in zip(copy, src)) == 1
    assert probe(tmp_path / "d" / "images" / "stored.jpg").orientation == 1
    assert (tmp_path / "d" / "images" / "shown.jpg").read_bytes() == \
        (exif_voc / "JPEGImages" / "shown.jpg").read_bytes()
    back = {r.stem: r for r in load_dataset(tmp_path / "d").records}
    assert (back["stored"].width, back["stored"].height) == (60, 30)
    assert (back["shown"].width, back["shown"].height) == (30, 60)


def test_color_writes_photos_as_they_display(exif_voc, tmp_path):
    run("color", "gray-world", exif_voc / "JPEGImages" / "shown.jpg", "--out", tmp_path / "o")
    out = cv2.imread(str(tmp_path / "o" / "shown.jpg"), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert out.shape[:2] == (60, 30)  # turned as the tag said; the tag itself is not copied
    assert probe(tmp_path / "o" / "shown.jpg").orientation == 1
    run("color", "gray-world", exif_voc / "JPEGImages" / "shown.jpg", "--out", tmp_path / "o2", "--exif", "ignore")
    assert cv2.imread(str(tmp_path / "o2" / "shown.jpg")).shape[:2] == (30, 60)


# ---- info finds what would hurt training ------------------------------------------------------------------------------

@pytest.fixture
def messy_voc(tmp_path):
    root = write_voc_tree(tmp_path / "voc", {
        "ok": (60, 40, [("cat", (1, 1, 10, 10))]),
        "empty": (60, 40, [("cat", (1, 1, 10, 10))]),
        "cut": (60, 40, [("dog", (1, 1, 10, 10))]),
        "wrongsize": (60, 40, [("dog", (1, 1, 10, 10))])})
    (root / "Annotations" / "wrongsize.xml").write_bytes(voc_xml("wrongsize.jpg", 64, 48, [("dog", (1, 1, 10, 10))]))
    (root / "JPEGImages" / "empty.jpg").write_bytes(b"")
    data = (root / "JPEGImages" / "cut.jpg").read_bytes()
    (root / "JPEGImages" / "cut.jpg").write_bytes(data[:len(data) // 2])
    return root


def test_info_reports_empty_truncated_and_mismatched_images(messy_voc):
    data = json.loads(run("info", messy_voc, "--json").output)
    kinds = {(p["kind"], p["file"].rsplit("/", 1)[-1]) for p in data["problems"]}
    assert ("image_unreadable", "empty.jpg") in kinds
    assert ("truncated_image", "cut.jpg") in kinds
    assert ("size_mismatch", "wrongsize.xml") in kinds
    assert not any(f == "ok.jpg" or f == "ok.xml" for _, f in kinds)
    assert "problems: none" not in run("info", messy_voc).output


def test_check_images_decodes_everything(messy_voc, tmp_path):
    # a JPEG whose header and end marker are fine but whose body is garbage: only a decode finds it
    good = (messy_voc / "JPEGImages" / "ok.jpg").read_bytes()
    sos = good.find(b"\xff\xda")
    (messy_voc / "JPEGImages" / "ok.jpg").write_bytes(good[:sos] + b"\xff\xd9")
    cheap = json.loads(run("info", messy_voc, "--json").output)
    assert not any(p["file"].endswith("ok.jpg") for p in cheap["problems"])
    full = json.loads(run("info", messy_voc, "--json", "--check-images", "--workers", "2").output)
    bad = {p["file"].rsplit("/", 1)[-1] for p in full["problems"] if p["kind"] in
           ("image_unreadable", "truncated_image", "empty_image")}
    assert bad == {"ok.jpg", "empty.jpg", "cut.jpg"}


def test_truncated_image_is_never_packed_as_filler(messy_voc, tmp_path):
    for mode in (["--size", "32x32"], ["--encoded"]):
        res = run("voc-to-h5", messy_voc, tmp_path / "p.h5", *mode, ok=False)
        assert res.exit_code == 1 and "Traceback" not in res.output and not (tmp_path / "p.h5").exists()
    res = run("voc-to-h5", messy_voc, tmp_path / "p.h5", "--size", "32x32", "--on-error", "skip", "--json")
    assert json.loads(res.stdout)["counts"]["images"] == 1  # only ok.jpg: the size mismatch is refused too


# ---- one class list per data set ----------------------------------------------------------------------------------

@pytest.fixture
def two_splits(tmp_path):
    return write_voc_tree(tmp_path / "voc", {
        "a": (40, 30, [("dog", (1, 1, 10, 10))]),
        "b": (40, 30, [("cat", (1, 1, 10, 10)), ("dog", (11, 11, 20, 20))]),
        "c": (40, 30, [("cow", (1, 1, 10, 10))])}, splits={"train": ["a"], "val": ["b", "c"]})


def test_splits_packed_apart_share_indices(two_splits, tmp_path):
    from dsprep.hdf5 import DetectionH5
    run("voc-to-h5", two_splits, tmp_path / "train.h5", "--split", "train", "--encoded")
    run("voc-to-h5", two_splits, tmp_path / "val.h5", "--split", "val", "--encoded")
    train, val = DetectionH5(tmp_path / "train.h5"), DetectionH5(tmp_path / "val.h5")
    assert train.classes == val.classes == ["cat", "cow", "dog"]
    assert train[0]["labels"].tolist() == [2] and val[0]["labels"].tolist() == [0, 2]


def test_classes_can_be_pinned_from_a_list_or_a_file(two_splits, tmp_path):
    from dsprep.hdf5 import DetectionH5
    (tmp_path / "classes.txt").write_text("# our order\ndog\ncat\ncow\n")
    run("voc-to-h5", two_splits, tmp_path / "p.h5", "--encoded", "--classes", tmp_path / "classes.txt")
    assert DetectionH5(tmp_path / "p.h5").classes == ["dog", "cat", "cow"]
    res = run("voc-to-h5", two_splits, tmp_path / "q.h5", "--encoded", "--classes", "dog,cat", ok=False)
    assert res.exit_code == 1 and "c.xml: object 0 has class 'cow', which is not in --classes" in res.output
    res = run("voc-to-h5", two_splits, tmp_path / "q.h5", "--encoded", "--classes", "dog,cat", "--on-error", "skip",
              "--json")
    assert "1 object skipped" in res.stderr and json.loads(res.stdout)["counts"]["objects"] == 3
    assert DetectionH5(tmp_path / "q.h5").classes == ["dog", "cat"]
    res = run("info", two_splits, "--classes", "dog,dog", ok=False)
    assert res.exit_code == 2 and "dog listed more than once" in res.output
    res = run("info", two_splits, "--classes", "dog,,cat,cow", ok=False)  # never a silently shorter list
    assert res.exit_code == 2 and "has an empty name" in res.output


# ---- honest accounting -------------------------------------------------------------------------------------------

def test_every_skipped_input_is_listed(tmp_path):
    items = {f"i{k}": (40, 30, [("cat", (1, 1, 10, 10))]) for k in range(8)}
    root = write_voc_tree(tmp_path / "voc", items)
    for k in range(3):
        (root / "Annotations" / f"i{k}.xml").write_bytes(b"<annotation><object>")
    for k in range(3, 5):
        (root / "JPEGImages" / f"i{k}.jpg").write_bytes(b"junk")
    res = run("crop", root, "--out", tmp_path / "c", "--on-error", "skip", "--json")
    summary = json.loads(res.stdout)
    assert summary["counts"]["inputs"] == 8 and summary["counts"]["images"] == 3
    assert len(summary["skipped"]) == 5 == summary["counts"]["inputs"] - summary["counts"]["images"]
    assert "5 of 8 inputs skipped (3 malformed XML, 2 not a readable image)" in res.stderr
    assert sum(line.startswith("  skipped") for line in res.stderr.splitlines()) == 5


# ---- inputs are never outputs -----------------------------------------------------------------------------------

def test_output_inside_the_input_is_refused(two_splits, tmp_path):
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in two_splits.rglob("*") if p.is_file()}
    for args in (["visualize", "boxes", two_splits, "--out", two_splits / "JPEGImages", "--overwrite"],
                 ["crop", two_splits, "--out", two_splits / "crops"],
                 ["convert", "voc-to-dota", two_splits, "--out", two_splits],
                 ["crop", two_splits / "Annotations", "--out", tmp_path]):
        res = run(*args, ok=False)
        assert res.exit_code == 2 and "would be written" in res.output, res.output
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in two_splits.rglob("*") if p.is_file()}
    assert after == before


# ---- big images and impossible options ---------------------------------------------------------------------------

def test_impossible_option_values_are_usage_errors(two_splits, tmp_path):
    dota = write_dota_tree(tmp_path / "d", {"a": (100, 100, "1 1 9 1 9 9 1 9 car 0\n")})
    cases = [
        (["tile-dota", dota, "--out", tmp_path / "t", "--rate", "1e-9"], "would shrink to 0x0 pixels"),
        (["tile-dota", dota, "--out", tmp_path / "t", "--rate", "nan"], "rate must be a positive number"),
        (["tile-dota", dota, "--out", tmp_path / "t", "--size", "256x128"], "tiles are square"),
        (["synth", "--backgrounds", tmp_path, "--objects", tmp_path, "--out", tmp_path / "s", "--canvas",
          "100000x100000"], "GB of memory"),
        (["crop", two_splits, "--out", tmp_path / "c", "--scheduler", "nonsense"], "must be 'local' or a Dask"),
        (["crop", two_splits, "--out", tmp_path / "c", "--workers", "many"], "must be a number or 'auto'"),
        (["voc-to-h5", two_splits, tmp_path / "x.h5", "--size", "0x5"], "size must be positive"),
        (["info", two_splits, "--split", "nope"], "no split 'nope'"),
    ]
    for args, message in cases:
        res = run(*args, ok=False)
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, (args, res.output)
    assert not (tmp_path / "t").exists() and not (tmp_path / "s").exists()


def test_images_beyond_opencvs_pixel_limit(tmp_path):
    # 32800 x 32800 = 1.08e9 pixels > 2^30: OpenCV refuses it by default; dsprep decodes it when memory allows
    w = h = 32800
    path = tmp_path / "huge.png"
    _write_blank_gray_png(path, w, h)
    img = read_image(path, "gray")
    assert img.shape == (h, w)
    del img
    import subprocess
    import sys
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (900 << 20, 900 << 20));"
            "from dsprep.images import read_image; read_image(%r, 'gray')" % str(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0 and "a 32800x32800 image needs 1.1 GB to decode" in out.stderr
    assert "tiled TIFF" in out.stderr


def _write_blank_gray_png(path, w, h):
    """A valid 8-bit gray PNG of zeros, streamed (no need to hold the image in memory to write it)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    comp = zlib.compressobj(1)
    row = bytes(w + 1)
    parts = [comp.compress(row * 256) for _ in range(h // 256)] + [comp.compress(row * (h % 256)), comp.flush()]
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", b"".join(parts)))
        f.write(chunk(b"IEND", b""))


@pytest.mark.parametrize("values, message", [
    (("1", "1", "1e308", "10"), "object 0 (cat): xmax is 1e308 (beyond any image)"),
    (("1", "nan", "10", "10"), "object 0 (cat): ymin is nan"),
    (("-1e12", "1", "10", "10"), "object 0 (cat): xmin is -1e12 (beyond any image)"),
])
def test_absurd_coordinates_are_refused_where_read(tmp_path, values, message):
    root = write_voc_tree(tmp_path / "voc", {"a": (60, 40, [("dog", (1, 1, 10, 10))])})
    (root / "Annotations" / "b.xml").write_bytes(voc_xml("a.jpg", 60, 40, [("cat", values)]))
    res = run("crop", root, "--out", tmp_path / "c", ok=False)
    assert res.exit_code == 1 and res.output.strip().endswith(message) and "Traceback" not in res.output
    dota = write_dota_tree(tmp_path / "d", {"x": (100, 100, "1e300 0 5 0 5 5 0 5 car 0\n0 0 9 0 9 9 0 9 car 0\n")})
    res = run("tile-dota", dota, "--out", tmp_path / "t", "--size", "64", "--gap", "0", "--on-error", "skip")
    assert "1 label line skipped" in res.stderr and "x.txt:1: x1 is '1e300' (beyond any image)" in res.stderr
    assert "Warning" not in res.stderr


# ---- one CLI vocabulary --------------------------------------------------------------------------------------------

def _commands():
    from dsprep.cli import main
    import click
    for name, cmd in main.commands.items():
        if isinstance(cmd, click.Group):
            for sub, c in cmd.commands.items():
                yield f"{name} {sub}", c
        else:
            yield name, cmd


def test_every_option_has_help_and_data_set_commands_share_options():
    for name, cmd in _commands():
        for p in cmd.params:
            if p.param_type_name == "option" and p.name != "help":
                assert p.help, f"{name} {p.opts[0]} has no help text"
        opts = {o for p in cmd.params for o in p.opts}
        if any(p.name == "dataset" for p in cmd.params):
            assert {"--on-error", "--quiet", "--json", "--exif"} <= opts, name
        if "--format" in opts and name != "synth":  # reads any data set: filters its splits
            assert "--split" in opts, name
        if "--size" in opts:
            assert any(getattr(p.type, "name", "") == "WxH" for p in cmd.params if "--size" in p.opts), name
