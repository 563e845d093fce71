import cv2
import numpy as np
import pytest
import shapely

from dsprep.dataset import load_dataset
from dsprep.dota import read_dota
from helpers import run_cli as run
from dsprep.synth import (Sprite, SynthParams, encode_palette_png, overlap_ok, place, sprite_from_image,
                          synthesize, transform_sprite, voc_palette)




def disc_rgba(size, bgr):
    alpha = np.zeros((size, size), np.uint8)
    cv2.circle(alpha, (size // 2, size // 2), size // 2 - 1, 255, -1)
    return np.dstack([np.full((size, size, 3), bgr, np.uint8), alpha])


def tri_rgba(w, h, bgr):
    alpha = np.zeros((h, w), np.uint8)
    cv2.fillPoly(alpha, [np.array([[0, h - 1], [w - 1, h - 1], [w // 3, 0]], np.int32)], 255)
    return np.dstack([np.full((h, w, 3), bgr, np.uint8), alpha])


@pytest.fixture
def pure(tmp_path):
    """Pure red objects (an RGBA disc and triangle) and a plain gray background."""
    (tmp_path / "objects" / "disc").mkdir(parents=True)
    (tmp_path / "objects" / "tri").mkdir(parents=True)
    (tmp_path / "bg").mkdir()
    cv2.imwrite(str(tmp_path / "objects" / "disc" / "d.png"), disc_rgba(31, (0, 0, 255)))
    cv2.imwrite(str(tmp_path / "objects" / "tri" / "t.png"), tri_rgba(40, 24, (0, 0, 255)))
    cv2.imwrite(str(tmp_path / "bg" / "g.png"), np.full((200, 300, 3), 128, np.uint8))
    return tmp_path


def test_boxes_disjoint_inside_and_tight(pure):
    out = pure / "out"
    run("synth", "--backgrounds", pure / "bg", "--objects", pure / "objects", "--out", out, "-n", "6", "--ext",
        ".png", "--per-image", "6:12", "--scale", "0.6:1.6", "--seed", "3")
    for rec in load_dataset(out).records:
        img = cv2.imread(rec.image_path)
        visible = (img[..., 2] >= 192) & (img[..., 1] <= 64)  # alpha > 127 over gray 128 (see module docs)
        b = rec.boxes
        assert len(b) >= 1
        assert (b[:, :2] >= 0).all() and (b[:, 2] <= rec.width).all() and (b[:, 3] <= rec.height).all()
        assert overlap_ok(b, b[:0], 0).all()
        for i in range(len(b)):
            others = np.delete(b, i, axis=0)
            assert overlap_ok(b[i:i + 1], others, 0.0).all()  # disjoint
        covered = np.zeros_like(visible)
        for x0, y0, x1, y1 in b.astype(int):
            sub = visible[y0:y1, x0:x1]
            ys, xs = np.nonzero(sub)
            # tight: the visible pixels touch all four sides of the box
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (0, 0, x1 - x0, y1 - y0)
            covered[y0:y1, x0:x1] = True
        assert not (visible & ~covered).any()  # no visible object pixel outside the boxes


def test_max_overlap_respected(pure):
    out = pure / "out"
    run("synth", "--backgrounds", pure / "bg", "--objects", pure / "objects", "--out", out, "-n", "4",
        "--per-image", "30", "--max-overlap", "0.3", "--seed", "1")
    for rec in load_dataset(out).records:
        b = rec.boxes
        for i in range(len(b)):
            assert overlap_ok(b[i:i + 1], np.delete(b, i, axis=0), 0.3 + 0.05).all()


def test_dota_quads_contain_visible_pixels(pure):
    out = pure / "out"
    run("synth", "--backgrounds", pure / "bg", "--objects", pure / "objects", "--out", out, "-n", "4", "--ext",
        ".png", "--format", "dota", "--seed", "5")
    recs = load_dataset(out).records
    assert sum(len(r) for r in recs) > 0
    for rec in recs:
        img = cv2.imread(rec.image_path)
        visible = (img[..., 2] >= 192) & (img[..., 1] <= 64)
        polys = shapely.polygons(rec.polygons)
        for k, (x0, y0, x1, y1) in enumerate(rec.boxes.astype(int)):
            ys, xs = np.nonzero(visible[y0:y1, x0:x1])
            pts = shapely.points(xs + x0 + 0.5, ys + y0 + 0.5)
            assert shapely.contains(polys[k].buffer(1.0), pts).all()
            assert (rec.polygons[k] >= 0).all() and (rec.polygons[k][:, 0] <= rec.width).all()


def test_same_seed_same_bytes_any_worker_count(pure):
    outs = []
    for workers in ("1", "2"):
        out = pure / f"out{workers}"
        run("synth", "--backgrounds", pure / "bg", "--objects", pure / "objects", "--out", out, "-n", "8",
            "--seed", "11", "--workers", workers, "--blend", "gaussian", "--masks")
        outs.append(out)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert len(files) == 8 * 4 + 1
    assert files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    other = pure / "other"
    run("synth", "--backgrounds", pure / "bg", "--objects", pure / "objects", "--out", other, "-n", "8", "--seed", "12")
    assert (other / "JPEGImages" / "synth_000000.jpg").read_bytes() != \
        (outs[0] / "JPEGImages" / "synth_000000.jpg").read_bytes()


def test_terminates_with_huge_objects_and_far_too_many(pure):
    cv2.imwrite(str(pure / "objects" / "disc" / "big.png"), disc_rgba(400, (0, 255, 0)))
    res = run("synth", "--backgrounds", pure / "bg", "--objects", pure / "objects", "--out", pure / "o1", "-n", "3",
              "--canvas", "64x64", "--per-image", "500", "--scale", "1:1")
    assert "dropped_too_large" in res.output and "dropped_no_room" in res.output
    n_objects = sum(len(r) for r in load_dataset(pure / "o1").records)
    assert 0 < n_objects < 3 * 500
    rng = np.random.default_rng(0)
    occupied = np.array([[0, 0, 64, 64]], float)
    assert place((64, 64), (10, 10), occupied, 0.0, rng) is None  # full canvas: gives up, bounded
    assert place((64, 64), (65, 10), occupied[:0], 0.0, rng) is None


def test_alpha_vs_nonblack_masks():
    img = np.zeros((10, 10, 4), np.uint8)
    img[2:8, 2:8, :3] = 200
    img[..., 3] = 90  # soft alpha everywhere
    s = sprite_from_image(img, "auto")
    assert (s.alpha == 90).all()  # the alpha channel as is: soft, not thresholded
    s = sprite_from_image(img, "nonblack")
    assert s.alpha.sum() == 36 * 255 and s.alpha[2:8, 2:8].min() == 255
    s = sprite_from_image(img[..., :3], "auto")
    assert s.alpha.sum() == 36 * 255
    with pytest.raises(ValueError, match="no alpha channel"):
        sprite_from_image(img[..., :3], "alpha")
    # a black pixel inside an alpha-masked object stays opaque (only nonblack mode treats black as transparent)
    img2 = img.copy()
    img2[4, 4, :3] = 0
    img2[..., 3] = 255
    assert sprite_from_image(img2, "alpha").alpha[4, 4] == 255
    assert sprite_from_image(img2, "nonblack").alpha[4, 4] == 0


def test_soft_alpha_is_blended():
    sprite = Sprite(np.full((8, 8, 3), 255, np.uint8), np.full((8, 8), 128, np.uint8))
    bg = np.zeros((20, 20, 3), np.uint8)
    params = SynthParams(per_image=(1,), rotate=(0, 0), scale=(1, 1), flip="", blend="none")
    res = synthesize(bg, lambda c, r: sprite, ["a"], params, np.random.default_rng(0))
    x0, y0, x1, y1 = res.boxes[0].astype(int)
    assert (x1 - x0, y1 - y0) == (8, 8)
    assert set(np.unique(res.image[y0:y1, x0:x1])) == {128}


def test_transform_box_matches_rotated_visible_pixels():
    sprite = sprite_from_image(tri_rgba(40, 24, (0, 0, 255)))
    for angle in (0, 30, 90, 135):
        t = transform_sprite(sprite, angle, 1.3)
        ys, xs = np.nonzero(t.alpha > 127)
        assert tuple(t.box) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_palette_png_and_masks(pure):
    out = pure / "out"
    run("synth", "--backgrounds", pure / "bg", "--objects", pure / "objects", "--out", out, "-n", "2", "--masks",
        "--ext", ".png")
    pal = voc_palette()
    assert pal[1].tolist() == [128, 0, 0] and pal[2].tolist() == [0, 128, 0] and pal[15].tolist() == [192, 128, 128]
    rec = load_dataset(out).records[0]
    inst = cv2.imread(str(out / "SegmentationObject" / "synth_000000.png"))[..., ::-1]  # RGB colours
    for k, (x0, y0, x1, y1) in enumerate(rec.boxes.astype(int)):
        assert (inst[y0:y1, x0:x1] == pal[k + 1]).all(axis=2).any()
    idx = np.array([[0, 1], [2, 255]], np.uint8)
    decoded = cv2.imdecode(np.frombuffer(encode_palette_png(idx, pal), np.uint8), cv2.IMREAD_COLOR)
    assert decoded[..., ::-1].reshape(-1, 3).tolist() == pal[[0, 1, 2, 255]].tolist()


def test_output_safety_and_append(pure):
    out = pure / "out"
    run("synth", "--backgrounds", pure / "bg", "--objects", pure / "objects", "--out", out, "-n", "2")
    res = run("synth", "--backgrounds", pure / "bg", "--objects", pure / "objects", "--out", out, "-n", "2", ok=False)
    assert res.exit_code == 2 and "not empty" in res.output
    run("synth", "--backgrounds", pure / "bg", "--objects", pure / "objects", "--out", out, "-n", "2", "--append")
    ids = (out / "ImageSets" / "Main" / "train.txt").read_text().split()
    assert ids == ["synth_000000", "synth_000001", "synth_000002", "synth_000003"]
    res = run("synth", "--backgrounds", pure / "nope", "--objects", pure / "objects", "--out", pure / "x", ok=False)
    assert res.exit_code == 2 and "--backgrounds folder not found" in res.output
    res = run("synth", "--backgrounds", pure / "bg", "--objects", pure / "objects", "--out", pure / "x",
              "--class-weights", "car=1", ok=False)
    assert "no object folder 'car'" in res.output
    res = run("synth", "--backgrounds", pure / "bg", "--objects", pure / "objects", "--out", pure / "x",
              "--rotate", "90:10", ok=False)
    assert "LOW <= HIGH" in res.output


def test_crop_synth_pipeline_on_dota(shared, tmp_path):
    """DOTA crops turned upright (RGBA, polygon alpha) re-pasted at any angle, then read back."""
    run("crop", shared / "dota_example", "--out", tmp_path / "crops", "--upright", "--only",
        "large-vehicle,small-vehicle", "--backgrounds", tmp_path / "bgs", "--min-size", "6")
    run("synth", "--backgrounds", tmp_path / "bgs", "--objects", tmp_path / "crops", "--out", tmp_path / "syn",
        "--format", "dota", "-n", "3", "--canvas", "512x512", "--per-image", "20")
    recs = load_dataset(tmp_path / "syn").records
    assert sum(len(r) for r in recs) > 0 and {n for r in recs for n in r.names} <= {"large-vehicle", "small-vehicle"}
    rec, problems, _ = read_dota(tmp_path / "syn" / "labelTxt" / "synth_000000.txt")
    assert problems == []
    run("tile-dota", tmp_path / "syn", "--out", tmp_path / "tiles", "--size", "256", "--gap", "50")
