import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from dsprep import __version__
from dsprep.draw import class_color

from helpers import run_cli as run, write_voc_tree




@pytest.fixture
def voc(tmp_path):
    return write_voc_tree(tmp_path / "voc", {
        "a": (60, 40, [("cat", (11, 6, 30, 25)), ("dog", (31, 1, 60, 40), "<difficult>1</difficult>")]),
        "b": (60, 40, [("cat", (1, 1, 10, 10))]),
        "c": (60, 40, [])}, splits={"train": ["a", "b"], "val": ["c"]})


def test_help_version_and_module_entry():
    res = run("--help")
    for cmd in ("info", "visualize", "crop", "demo"):
        assert cmd in res.output
    assert run("--version").output.strip().endswith(__version__)
    out = subprocess.run([sys.executable, "-m", "dsprep", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "visualize" in out.stdout


def test_info_json(voc):
    res = run("info", voc, "--json", "--rare-below", "0")  # 2 cats and 1 dog: rare, but not this test's subject
    data = json.loads(res.output)
    assert data["images"] == 3 and data["objects"] == 3 and data["classes"] == {"cat": 2, "dog": 1}
    assert data["difficult"] == 1 and data["problems"] == []
    assert json.loads(run("info", voc, "--json", "--split", "val").output)["images"] == 1
    text = run("info", voc, "--rare-below", "0").output
    assert "cat" in text and "problems: none" in text


def test_info_does_not_decode_images(voc, monkeypatch):
    import dsprep.images
    calls = []
    monkeypatch.setattr(dsprep.images, "read_image", lambda *a, **k: calls.append(a))
    run("info", voc)
    assert calls == []


def test_errors_are_one_line_with_exit_codes(voc, tmp_path):
    res = run("info", tmp_path / "missing", ok=False)
    assert res.exit_code == 2 and res.output.strip() == f"error: {tmp_path / 'missing'}: data set not found"
    (voc / "Annotations" / "zz.xml").write_bytes(b"<annotation><object><name>x</name>")
    res = run("info", voc, ok=False)
    assert res.exit_code == 1 and "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "zz.xml: malformed XML" in lines[0]
    res = run("info", voc, "--on-error", "skip", "--json")
    data = json.loads(res.output)
    assert data["images"] == 3 and data["skipped"][0]["file"].endswith("zz.xml")
    res = run("info", voc, "--split", "nope", ok=False)
    assert res.exit_code == 2 and "no split 'nope'" in res.output


def test_visualize_boxes(voc, tmp_path):
    out = tmp_path / "vis"
    res = run("visualize", "boxes", voc, "--out", out, "--grid", "--ext", ".png")
    assert "visualize: 3 images" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png", "grid.png"]
    img = cv2.imread(str(out / "a.png"))
    src = cv2.imread(str(voc / "JPEGImages" / "a.jpg"))
    # the cat box (0-based 10..30 x 5..25) is outlined in the class colour; pixels far from boxes are untouched
    assert np.abs(img[15, 10].astype(int) - class_color("cat")).max() < 40
    np.testing.assert_array_equal(img[38, 2], src[38, 2])
    # an existing non-empty output is never clobbered silently
    res = run("visualize", "boxes", voc, "--out", out, ok=False)
    assert res.exit_code == 2 and "not empty" in res.output
    run("visualize", "boxes", voc, "--out", out, "--overwrite", "--limit", "1", "--only", "dog")
    res = run("visualize", "boxes", voc, "--out", tmp_path / "v2", "--only", "cow", ok=False)
    assert res.exit_code == 2 and "--only: no class cow" in res.output


def test_visualize_non_latin_names_get_legend(tmp_path):
    root = write_voc_tree(tmp_path / "d", {"a": (40, 30, [("汽车", (1, 1, 20, 20))])})
    out = tmp_path / "vis"
    run("visualize", "boxes", root, "--out", out)
    assert (out / "legend.txt").read_text(encoding="utf-8") == "#0\t汽车\n"


def test_class_colors_are_stable():
    assert class_color("car") == class_color("car") and class_color("car") != class_color("bus")


def test_crop_and_backgrounds(voc, tmp_path):
    out, bgs = tmp_path / "crops", tmp_path / "bgs"
    res = run("crop", voc, "--out", out, "--backgrounds", bgs, "--blank", "dog", "--fill", "black")
    assert "3 crops" in res.output
    src = cv2.imread(str(voc / "JPEGImages" / "a.jpg"))
    cat = cv2.imread(str(out / "cat" / "a_0.png"))
    np.testing.assert_array_equal(cat, src[5:25, 10:30])  # VOC 11..30 (1-based inclusive) -> pixels 10..29
    assert sorted(p.name for p in (out / "cat").iterdir()) == ["a_0.png", "b_0.png"]
    bg = cv2.imread(str(bgs / "a.png"))
    assert (bg[0:40, 30:60] == 0).all()  # the dog is blanked
    np.testing.assert_array_equal(bg[5:25, 10:30], src[5:25, 10:30])  # the cat is not (--blank dog)
    from dsprep.fill import parse_sidecar, outline_mask
    size, outlines = parse_sidecar((bgs / "a.blanked.json").read_bytes())
    blanked = outline_mask(outlines, size) > 0
    assert size == (60, 40) and blanked[0:40, 30:60].all() and not blanked[:, :30].any()
    assert not (bgs / "c.blanked.json").exists()  # nothing blanked, no sidecar


def test_crop_min_size_pad_and_classes(voc, tmp_path):
    res = run("crop", voc, "--out", tmp_path / "c", "--only", "cat", "--min-size", "15", "--pad", "2")
    assert "1 crops" in res.output and "1 too_small" in res.output
    assert cv2.imread(str(tmp_path / "c" / "cat" / "a_0.png")).shape == (24, 24, 3)


def test_crop_names_cannot_escape(tmp_path):
    root = write_voc_tree(tmp_path / "d", {"a": (40, 30, [("../../evil", (1, 1, 20, 20)), ("/abs", (1, 1, 5, 5))])})
    out = tmp_path / "out" / "crops"
    run("crop", root, "--out", out)
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == ["_.._evil/a_0.png", "_abs/a_1.png"]
    assert not (tmp_path / "evil").exists()


def test_unreadable_and_truncated_images(voc, tmp_path):
    (voc / "JPEGImages" / "b.jpg").write_bytes(b"not a jpeg")
    data = (voc / "JPEGImages" / "a.jpg").read_bytes()
    (voc / "JPEGImages" / "a.jpg").write_bytes(data[: len(data) // 2])
    res = run("crop", voc, "--out", tmp_path / "c", ok=False)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().splitlines()[-1].startswith("error: ") and "a.jpg: truncated JPEG" in res.output
    res = run("crop", voc, "--out", tmp_path / "c2", "--on-error", "skip")
    assert "2 of 3 inputs skipped (1 truncated JPEG, 1 not a readable image)" in res.output
    assert "b.jpg: not a readable image" in res.output


def test_demo(tmp_path):
    res = run("demo", tmp_path / "demo", "--images", "6")
    assert (tmp_path / "demo" / "boxes" / "grid.png").is_file()
    assert any((tmp_path / "demo" / "crops").rglob("*.png"))
    assert "images: 6" in res.output
    # eval scores the pretend detector's val results: a per-class table, a mean, the charts; same seed, same files
    assert "mAP (VOC07 11-point)" in res.output and (tmp_path / "demo" / "eval_plots" / "pr_all.png").is_file()
    run("demo", tmp_path / "again", "--images", "6")
    for f in sorted((tmp_path / "demo" / "detections").glob("comp4_det_val_*.txt")):
        assert f.read_bytes() == (tmp_path / "again" / "detections" / f.name).read_bytes()


def test_show_refuses_without_gui(voc, tmp_path):
    res = run("visualize", "boxes", voc, "--out", tmp_path / "v", "--show", ok=False)
    assert res.exit_code == 1 and "--show needs an OpenCV with a GUI" in res.output
    assert not (tmp_path / "v").exists()  # refused before any work
