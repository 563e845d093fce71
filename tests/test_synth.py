import cv2
import numpy as np
import pytest
import shapely

from dsprep.dataset import load_dataset
from dsprep.dota import read_dota
from helpers import run_cli as run
from dsprep.synth import Sprite, SynthParams, overlap_ok, place, sprite_from_image, synthesize, transform_sprite
from dsprep.vocmasks import encode_palette_png, voc_palette




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
    assert len(files) == 8 * 4 + 2  # images, annotations, two masks each; the split list, labelmap.txt
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


# ---- issue 14: a filled canvas, silhouettes, blending, occlusion, blanked regions ----------------------------------

from dsprep import synth as synthmod  # noqa: E402
from dsprep.dataset import object_masks  # noqa: E402
from dsprep.synth import Fit, apply_fit, harmonize, harmonize_luts, plan_fit, soften_edges  # noqa: E402


def test_fit_covers_the_canvas_in_every_mode_but_pad():
    rng = np.random.default_rng(0)
    for _ in range(200):
        w, h = int(rng.integers(5, 900)), int(rng.integers(5, 900))
        W, H = int(rng.integers(5, 900)), int(rng.integers(5, 900))
        for mode in ("cover", "crop"):
            f = plan_fit((w, h), (W, H), mode, rng)
            x, y, ww, wh = f.window
            assert 0 <= x and x + ww <= w and 0 <= y and y + wh <= h and f.size == (W, H) and not f.pad
            sx, sy = f.scale
            assert abs(sx - sy) <= max(sx, sy) * (1.0 / min(ww, wh) + 1e-9)  # one scale (up to a pixel's rounding)
            if mode == "crop" and w >= W and h >= H:
                assert (ww, wh) == (W, H)  # the background's own scale where it is large enough
            if mode == "cover":
                assert ww == w or wh == h  # as little cut as possible
    img = np.random.default_rng(1).integers(1, 256, (50, 80, 3)).astype(np.uint8)
    for mode in ("cover", "crop", "resize"):
        out = apply_fit(img, plan_fit((80, 50), (200, 90), mode, rng))
        assert out.shape == (90, 200, 3) and (out > 0).all()  # filled: no padding anywhere
    out = apply_fit(img, plan_fit((80, 50), (200, 90), "pad", rng))
    assert (out[:50, :80] == img).all() and (out[50:] == 0).all() and (out[:, 80:] == 0).all()
    f = Fit((10, 5, 40, 20), (80, 40))
    np.testing.assert_array_equal(apply_fit(img, f), cv2.resize(img[5:25, 10:50], (80, 40)))
    assert f.object_scale == 2.0
    m = np.zeros((50, 80), np.uint8)
    m[20, 7:70] = 255  # a one-pixel line survives scaling down
    assert apply_fit(m, Fit((0, 0, 80, 50), (23, 13)), mask=True).any()


def _square_objects(root, size=10):
    (root / "objects" / "sq").mkdir(parents=True)
    cv2.imwrite(str(root / "objects" / "sq" / "s.png"), np.full((size, size, 4), 255, np.uint8))
    (root / "bg").mkdir()
    cv2.imwrite(str(root / "bg" / "g.png"), np.full((50, 100, 3), 128, np.uint8))


def test_objects_keep_their_size_against_the_background(tmp_path):
    """A 100x50 background on a 400x200 canvas is drawn 4x larger: so are the objects (--jitter is relative);
    --scale is absolute."""
    _square_objects(tmp_path)
    common = ["--backgrounds", tmp_path / "bg", "--objects", tmp_path / "objects", "--canvas", "400x200",
              "--per-image", "3", "--rotate", "0", "--blend", "none", "--ext", ".png"]
    run("synth", *common, "--out", tmp_path / "rel", "--jitter", "1")
    run("synth", *common, "--out", tmp_path / "abs", "-n", "2", "--scale", "1")
    for name, side in (("rel", 40), ("abs", 10)):
        recs = load_dataset(tmp_path / name).records
        sizes = {(int(b[2] - b[0]), int(b[3] - b[1])) for r in recs for b in r.boxes}
        assert sizes == {(side, side)}, (name, sizes)
    res = run("synth", *common, "--out", tmp_path / "x", "--scale", "1", "--jitter", "1", ok=False)
    assert res.exit_code == 2 and "exclude each other" in res.output


def test_soften_edges_never_raises_alpha():
    rng = np.random.default_rng(2)
    for _ in range(50):
        a = rng.integers(0, 256, (30, 40)).astype(np.uint8)
        a[rng.random((30, 40)) < 0.5] = 0
        for blend in ("feather", "gaussian", "none"):
            assert (soften_edges(a, blend, float(rng.uniform(0, 6))) <= a).all()
        p = soften_edges(a, "poisson", 2.0, 100)
        np.testing.assert_array_equal(p, np.where(a > 100, 255, 0))
    sprite = sprite_from_image(tri_rgba(40, 24, (0, 0, 255)))
    for blend in ("feather", "gaussian", "poisson", "none"):
        for angle in (0, 45, 100):
            t = transform_sprite(sprite, angle, 1.7, True, False, 127, blend, 3.0)
            ys, xs = np.nonzero(t.alpha > 127)
            assert tuple(t.box) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)  # the box of the pasted alpha


def test_harmonize_against_a_per_pixel_reference():
    rng = np.random.default_rng(3)
    color = rng.integers(0, 256, (17, 23, 3)).astype(np.uint8)
    alpha = np.zeros((17, 23), np.uint8)
    cv2.circle(alpha, (11, 8), 7, 255, -1)
    region = np.clip(rng.normal((40, 160, 90), 12, (17, 23, 3)), 0, 255).astype(np.uint8)
    for strength in (0.0, 0.3, 1.0):
        got = harmonize(color, alpha, region, 127, strength)
        if strength == 0:
            assert got is color
            continue
        lab = cv2.cvtColor(color, cv2.COLOR_BGR2LAB).astype(np.float64)
        rlab = cv2.cvtColor(region, cv2.COLOR_BGR2LAB).astype(np.float64).reshape(-1, 3)
        vis = lab[alpha > 127]
        ref = np.zeros_like(lab)
        for c in range(3):  # one pixel and channel at a time, from the statistics' definitions
            mo, so = vis[:, c].mean(), vis[:, c].std()
            mr, sr = rlab[:, c].mean(), rlab[:, c].std()
            gain = min(max((sr / so) ** strength if so > 1 else 1.0, 1 / 3), 3.0)
            for y in range(lab.shape[0]):
                for x in range(lab.shape[1]):
                    v = (lab[y, x, c] - mo) * gain + mo + strength * (mr - mo)
                    ref[y, x, c] = min(max(np.floor(v + 0.5), 0), 255)
        want = cv2.cvtColor(ref.astype(np.uint8), cv2.COLOR_LAB2BGR)
        assert np.abs(got.astype(int) - want).max() <= 1  # meanStdDev and numpy agree to float rounding
    moved = cv2.cvtColor(harmonize(color, alpha, region, 127, 1.0), cv2.COLOR_BGR2LAB)[alpha > 127].mean(axis=0)
    target = cv2.cvtColor(region, cv2.COLOR_BGR2LAB).reshape(-1, 3).mean(axis=0)
    assert np.abs(moved - target).max() < 6  # strength 1: the region's colour (clipping and Lab rounding aside)
    lut = harmonize_luts([100, 128, 128], [0.5, 10, 10], [120, 128, 128], [50, 10, 10], 1.0)
    assert lut[100, 0] == 120 and lut[128, 1] == 128  # a flat channel is shifted, never stretched


class _Recorder:
    """Wraps synth.compose to record what was pasted: each sprite's position, alpha and colour (premultiplied by
    the alpha: the colour it adds)."""

    def __init__(self, monkeypatch):
        self.calls = []
        real = synthmod.compose

        def compose(canvas, placed, *a, **k):
            self.calls.append([(p.x, p.y, p.alpha.copy(), p.color.copy() if p.premultiplied else
                                cv2.multiply(p.color, cv2.merge([p.alpha] * 3), scale=1 / 255)) for p in placed])
            return real(canvas, placed, *a, **k)
        monkeypatch.setattr(synthmod, "compose", compose)


def _reference_owner(shape, pasted, threshold):
    """Painter's algorithm, one pixel at a time: the last object whose pasted alpha is above the threshold."""
    owner = np.zeros(shape, np.int64)
    for k, (x, y, alpha, _) in enumerate(pasted):
        for yy in range(alpha.shape[0]):
            for xx in range(alpha.shape[1]):
                if alpha[yy, xx] > threshold:
                    owner[y + yy, x + xx] = k + 1
    return owner


@pytest.mark.parametrize("occlusion,blend,harm,drop", [(0.0, "feather", 0.0, 0.7), (0.0, "none", 0.0, 0.7),
                                                       (0.5, "feather", 0.0, 0.7), (0.95, "none", 0.0, 0.4),
                                                       (0.4, "poisson", 0.0, 0.7), (0.4, "gaussian", 0.8, 0.7)])
def test_boxes_masks_and_flags_are_those_of_the_pasted_alpha(monkeypatch, occlusion, blend, harm, drop):
    rec = _Recorder(monkeypatch)
    sprites = [sprite_from_image(disc_rgba(21, (40, 200, 90))), sprite_from_image(tri_rgba(30, 18, (200, 60, 20))),
               Sprite(np.full((12, 16, 3), 230, np.uint8), np.full((12, 16), 200, np.uint8))]
    bg = np.random.default_rng(9).integers(0, 256, (70, 90, 3)).astype(np.uint8)
    params = SynthParams(canvas=(120, 90), per_image=(12,), jitter=(0.7, 1.6), max_occlusion=occlusion, blend=blend,
                         feather=2.5, harmonize=harm, drop_above=drop, truncated_above=0.2)
    dropped = truncated = hidden_any = 0
    for seed in range(12):
        res = synthesize(bg, lambda c, r: sprites[int(r.integers(3))], ["a"], params, np.random.default_rng(seed),
                         masks=True)
        pasted = rec.calls[-1]
        owner = _reference_owner((90, 120), pasted, 127)
        area = np.array([(a > 127).sum() for _, _, a, _ in pasted])
        visible = np.array([(owner == k + 1).sum() for k in range(len(pasted))])
        frac = 1 - visible / area
        assert (frac <= occlusion + 1e-9).all()  # placement kept every object's hidden share within the limit
        keep = frac <= drop
        ids = np.zeros(len(pasted) + 1, np.int64)
        ids[1:][keep] = np.arange(1, keep.sum() + 1)
        ids[1:][~keep] = 255
        np.testing.assert_array_equal(res.instance, ids[owner])
        assert len(res.boxes) == keep.sum() and res.hidden == (~keep).sum()
        for j, k in enumerate(np.flatnonzero(keep)):
            ys, xs = np.nonzero(owner == k + 1)
            assert tuple(res.boxes[j]) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert res.truncated[j] == (frac[k] > 0.2)
            ys_q = shapely.points(xs + 0.5, ys + 0.5)
            assert shapely.contains(shapely.polygons(res.quads[j]).buffer(0.51), ys_q).all()
        dropped += (~keep).sum()
        truncated += res.truncated.sum()
        hidden_any += (frac > 0).sum()
        if blend in ("none", "feather") and harm == 0:  # the pixels: "over" in paste order, in floats
            ref = apply_fit(bg, plan_fit((90, 70), (120, 90), "cover", np.random.default_rng(seed))).astype(float)
            for x, y, alpha, color in pasted:
                a = alpha.astype(np.float64)[..., None] / 255
                win = ref[y:y + alpha.shape[0], x:x + alpha.shape[1]]
                win[...] = color + win * (1 - a)
            assert np.abs(res.image - ref).max() <= 2  # OpenCV rounds each product: within 1 per layer
    if occlusion > 0:
        assert hidden_any > 0 and truncated > 0  # the parameters do exercise occlusion
    if drop < occlusion:
        assert dropped > 0


def test_blanked_regions_are_ordinary_background_unless_avoided(tmp_path):
    """A background whose sidecar marks a blanked region: objects land in it like anywhere else (filled regions are
    background now); with --avoid-blanked no object pixel lands in it (scaled by cover to the canvas)."""
    from dsprep.fill import format_sidecar, region_outlines
    (tmp_path / "objects" / "disc").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "objects" / "disc" / "d.png"), disc_rgba(15, (0, 0, 255)))
    (tmp_path / "bg").mkdir()
    cv2.imwrite(str(tmp_path / "bg" / "g.png"), np.full((150, 200, 3), 128, np.uint8))
    blanked = np.zeros((150, 200), np.uint8)
    cv2.circle(blanked, (100, 75), 50, 255, -1)
    blanked[10:20, 5:195] = 255
    (tmp_path / "bg" / "g.blanked.json").write_bytes(format_sidecar((200, 150), region_outlines(blanked), "inpaint"))
    common = ["--backgrounds", tmp_path / "bg", "--objects", tmp_path / "objects", "--canvas", "300x225",
              "--per-image", "40", "--masks", "--ext", ".png", "-n", "4"]
    keep = cv2.resize(blanked, (300, 225), interpolation=cv2.INTER_NEAREST) > 0
    for extra, inside in ((["--avoid-blanked"], False), ([], True), (["--allow-blanked"], True)):
        out = tmp_path / ("free" if not inside else "allowed" + "".join(extra))
        run("synth", *common, "--out", out, *extra)
        hits = 0
        for p in sorted((out / "SegmentationObject").glob("*.png")):
            from dsprep.vocmasks import mask_indices
            objects = mask_indices(p.read_bytes()) > 0
            hits += int((objects & keep).sum())
        assert (hits > 0) == inside


def test_new_options_give_the_same_bytes_with_any_worker_count(pure):
    from dsprep.fill import format_sidecar
    (pure / "bg" / "g.blanked.json").write_bytes(format_sidecar((300, 200), [np.array([[10, 10], [60, 10],
                                                                                    [60, 50]])], "inpaint"))
    outs = []
    for workers in ("1", "2"):
        out = pure / f"o{workers}"
        run("synth", "--backgrounds", pure / "bg", "--objects", pure / "objects", "--out", out, "-n", "6",
            "--seed", "4", "--workers", workers, "--max-occlusion", "0.5", "--harmonize", "--masks",
            "--canvas", "320x240", "--per-image", "10:20")
        outs.append({str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()})
    assert outs[0] == outs[1] and len(outs[0]) == 6 * 4 + 2


def test_voc_sample_pipeline_gives_real_looking_exact_images(shared, tmp_path):
    """Done when (issue 14): on the VOC sample, crop with masks -> filled backgrounds -> synth ->
    visualize: no synthetic image has a padded border or a pure-black hole, objects with masks are pasted as
    silhouettes, and every box and mask read back is exact."""
    from dsprep.vocmasks import mask_indices
    run("crop", shared / "voc_sample", "--out", tmp_path / "crops", "--backgrounds", tmp_path / "bgs")
    photo_black = max((cv2.imread(str(p)) == 0).all(axis=-1).mean()
                      for p in (shared / "voc_sample" / "JPEGImages").glob("*.jpg"))
    silhouettes = tmp_path / "silhouettes"  # the crops whose alpha is an object's mask
    for p in (tmp_path / "crops").rglob("*.png"):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if img.shape[2] == 4:
            (silhouettes / p.parent.name).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(silhouettes / p.parent.name / p.name), img)
    for objects, out, extra in ((tmp_path / "crops", tmp_path / "syn", ["--max-occlusion", "0.3"]),
                                (silhouettes, tmp_path / "sil", ["--rotate", "0", "--flip", "none"])):
        run("synth", "--backgrounds", tmp_path / "bgs", "--objects", objects, "--out", out, "-n", "10", "--seed",
            "2", "--canvas", "640x480", "--per-image", "3:6", "--masks", "--ext", ".png", *extra)
        run("visualize", "boxes", out, "--out", tmp_path / f"{out.name}_boxes")
        ds = load_dataset(out)
        assert len(ds.records) == 10 and sum(len(r) for r in ds.records) >= 20
        for rec in ds.records:
            img = cv2.imread(rec.image_path)
            black = (img == 0).all(axis=-1).astype(np.uint8)
            for edge in (black[0], black[-1], black[:, 0], black[:, -1]):
                assert not edge.all()  # no padded border
            # no pure-black hole: no more pure black than the photos have themselves (some have black
            # cabinets, which the texture fill may copy)
            assert black.mean() <= 2 * photo_black + 1e-4
            inst = mask_indices((out / "SegmentationObject" / f"{rec.stem}.png").read_bytes())
            # read back through the VOC reader (labelmap.txt names the classes); None: an image without objects
            masks = object_masks("voc", rec) if len(rec) else []
            assert len(masks) == len(rec) and all(m is not None for m in masks)
            for k, m in enumerate(masks):
                ys, xs = np.nonzero(inst == k + 1)
                assert tuple(rec.boxes[k]) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
                x0, y0, x1, y1 = rec.boxes[k].astype(int)
                np.testing.assert_array_equal(m, inst[y0:y1, x0:x1] == k + 1)
                if out.name == "sil":
                    assert m.mean() < 0.9  # a silhouette, not a rectangle (upright: a rectangle would fill it)


def test_a_wholly_hidden_object_is_never_annotated():
    """Even when every hidden share is allowed (--max-occlusion 1 --drop-hidden 1), an object with no visible pixel
    left is counted as hidden, not annotated with the box of pixels nobody sees."""
    big = Sprite(np.full((40, 40, 3), 200, np.uint8), np.full((40, 40), 255, np.uint8))
    small = Sprite(np.full((10, 10, 3), 50, np.uint8), np.full((10, 10), 255, np.uint8))
    bg = np.zeros((40, 40, 3), np.uint8)
    params = SynthParams(per_image=(2,), rotate=(0, 0), scale=(1, 1), flip="", blend="none", max_occlusion=1.0,
                         drop_above=1.0)
    order = iter([small, big])
    res = synthesize(bg, lambda c, r: next(order), ["a"], params, np.random.default_rng(0), masks=True)
    assert res.hidden == 1 and len(res.boxes) == 1 and tuple(res.boxes[0]) == (0, 0, 40, 40)
    assert (res.instance == 1).all()


@pytest.mark.parametrize("feather", [0, 2, 4])
def test_the_soft_edge_is_as_wide_as_asked_at_any_scale(feather):
    """The sprite is feathered before it is warped (once per quarter octave of scale): on the canvas the edge's
    ramp (alpha strictly between 5% and 95%) is --feather pixels wide, one more where scaling up blurs it too."""
    alpha = np.zeros((201, 201), np.uint8)
    cv2.circle(alpha, (100, 100), 90, 255, -1)
    sprite = Sprite(np.full((201, 201, 3), 200, np.uint8), alpha)
    for scale in (0.5, 0.8, 1.0, 1.3, 2.0):
        t = transform_sprite(sprite, 0, scale, False, False, 127, "feather", feather)
        row = t.alpha[t.alpha.shape[0] // 2]
        ramp = ((row > 12) & (row < 243)).sum() / 2
        assert feather <= ramp <= feather + 1 + (scale > 1), (scale, ramp)


def test_placement_paths_agree():
    """The plain-Python test used for few candidates and the array test give the same positions."""
    for seed in range(300):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(0, 40))
        xy = rng.integers(0, 200, (n, 2))
        wh = rng.integers(5, 60, (n, 2))
        occupied = np.hstack([xy, xy + wh]).astype(np.float64)
        extent = (int(rng.integers(5, 80)), int(rng.integers(5, 80)))
        got = place((260, 260), extent, occupied, 0.0, np.random.default_rng(seed))
        # the array path: an accept test that takes every position forces it
        want = place((260, 260), extent, occupied, 0.0, np.random.default_rng(seed),
                     accept=lambda c: np.ones(len(c), bool))
        assert got == want
        if got is not None:
            cand = np.array([[got[0], got[1], got[0] + extent[0], got[1] + extent[1]]], np.float64)
            assert overlap_ok(cand, occupied, 0.0).all()


# ---- issue 24: objects over the whole canvas, upright by default ------------------------------------------------

def test_object_centres_cover_the_canvas_evenly_over_a_run(tmp_path):
    """Done when (issue 24): the demo's pipeline (crop with filled backgrounds, then synth as `dsprep demo` runs
    it): over the run, no cell of a 3 x 3 grid of the canvas is left without object centres or holds more than a
    quarter of them; no row or column third holds more than half.  (With objects kept off the filled regions,
    they crowded into what was left.)"""
    from dsprep.demo import make_voc_demo
    make_voc_demo(tmp_path / "voc", n_images=24, seed=0)
    run("crop", tmp_path / "voc", "--out", tmp_path / "crops", "--min-size", "4", "--backgrounds", tmp_path / "bgs")
    run("synth", "--backgrounds", tmp_path / "bgs", "--objects", tmp_path / "crops", "--out", tmp_path / "syn",
        "-n", "24", "--seed", "0", "--canvas", "480x360", "--per-image", "3:8", "--max-occlusion", "0.3")
    ds = load_dataset(tmp_path / "syn")
    boxes = np.concatenate([r.boxes for r in ds.records])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    cells = np.minimum((centres / [480 / 3, 360 / 3]).astype(int), 2)
    counts = np.zeros((3, 3), int)
    np.add.at(counts, (cells[:, 1], cells[:, 0]), 1)
    share = counts / counts.sum()
    print("object centres per cell of a 3x3 grid (rows top to bottom):\n", counts)
    assert counts.sum() >= 100
    assert (counts > 0).all() and share.max() <= 0.25
    assert share.sum(axis=0).max() <= 0.5 and share.sum(axis=1).max() <= 0.5


def test_default_rotation_keeps_objects_upright(pure):
    """A triangle standing on its base (a cone) stays on its base with the default --rotate (a small range, said
    in --help): in every pasted copy the lower half of its mask holds more pixels than the upper half.  With
    --rotate 0:360 some copies stand on their tips."""
    objects = pure / "cones"
    (objects / "cone").mkdir(parents=True)
    alpha = np.zeros((40, 30), np.uint8)
    cv2.fillPoly(alpha, [np.array([[15, 0], [29, 39], [0, 39]], np.int32)], 255)
    cv2.imwrite(str(objects / "cone" / "c.png"), np.dstack([np.full((40, 30, 3), (0, 0, 255), np.uint8), alpha]))
    res = run("synth", "--help")
    assert "-15:15" in res.output and "upright" in res.output
    upside = {}
    for name, extra in (("default", []), ("any", ["--rotate", "0:360"])):
        out = pure / name
        run("synth", "--backgrounds", pure / "bg", "--objects", objects, "--out", out, "-n", "8", "--seed", "1",
            "--per-image", "4", "--masks", "--ext", ".png", *extra)
        from dsprep.vocmasks import mask_indices
        flipped = total = 0
        for p in sorted((out / "SegmentationObject").glob("*.png")):
            inst = mask_indices(p.read_bytes())
            for k in range(1, int(inst[inst < 255].max()) + 1):
                ys, _ = np.nonzero(inst == k)
                mid = (ys.min() + ys.max() + 1) / 2
                flipped += int((ys < mid).sum() >= (ys >= mid).sum())
                total += 1
        assert total >= 20
        upside[name] = flipped
    assert upside["default"] == 0 and upside["any"] > 0
