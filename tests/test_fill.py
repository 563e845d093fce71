"""Filling blanked regions: quality against the true pixels, the fills' rules, and the blanked-regions sidecar."""
import json

import cv2
import numpy as np
import pytest

from dsprep.dataset import load_dataset, object_masks
from dsprep.fill import (fill_regions, format_sidecar, outline_mask, parse_sidecar, push_pull, region_outlines,
                         sidecar_path)
from dsprep.vocmasks import encode_palette_png, voc_palette
from helpers import run_cli as run


def _silhouettes(shared):
    """Real object silhouettes: (BGR crop, bool mask) of every VOC sample object that has a mask."""
    out = []
    for rec in load_dataset(shared / "voc_sample").records:
        masks = object_masks("voc", rec)
        if masks is None:
            continue
        img = cv2.imread(rec.image_path)
        from dsprep.crop import pixel_bounds
        for (x0, y0, x1, y1), m in zip(pixel_bounds(rec.boxes, rec.width, rec.height), masks):
            if m is not None:
                out.append((img[y0:y1, x0:x1], m))
    return out


def pasted_scenes(shared, root, n=8, seed=0):
    """A VOC tree of real photos, each with a real silhouette (another photo's object, with its mask) pasted in;
    returns ``{stem: photo before pasting}``: the true pixels under every object."""
    from dsprep.core import ImageRecord
    from dsprep.voc import write_voc_dataset
    rng = np.random.default_rng(seed)
    photos = [cv2.imread(str(p)) for p in sorted((shared / "voc_sample" / "JPEGImages").glob("*.jpg"))]
    objects = _silhouettes(shared)
    truth, items, masks = {}, [], []
    for i in range(n):
        photo = photos[i % len(photos)]
        crop, m = objects[int(rng.integers(len(objects)))]
        h, w = photo.shape[:2]
        s = min(1.0, 0.45 * min(w / m.shape[1], h / m.shape[0]))
        crop = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        m = cv2.resize(m.astype(np.uint8), (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        x, y = int(rng.integers(0, w - m.shape[1] + 1)), int(rng.integers(0, h - m.shape[0] + 1))
        scene = photo.copy()
        scene[y:y + m.shape[0], x:x + m.shape[1]][m] = crop[m]
        inst = np.zeros((h, w), np.uint8)
        inst[y:y + m.shape[0], x:x + m.shape[1]][m] = 1
        ys, xs = np.nonzero(inst)
        stem = f"scene_{i}"
        rec = ImageRecord(f"{stem}.png", w, h, boxes=[[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]],
                          names=["person"], meta={"stem": stem})
        ok, png = cv2.imencode(".png", scene)
        items.append((rec, png.tobytes()))
        masks.append((stem, inst))
        truth[stem] = photo
    write_voc_dataset(root, items, image_ext=".png")
    for folder, scale in (("SegmentationObject", 1), ("SegmentationClass", 15)):
        (root / folder).mkdir()
        for stem, inst in masks:
            (root / folder / f"{stem}.png").write_bytes(encode_palette_png(inst * scale, voc_palette()))
    return truth


def test_inpainting_is_close_to_the_true_pixels(shared, tmp_path):
    """Real photos with a real silhouette pasted in: crop blanks the silhouette (its mask grown by 3 pixels) and
    fills it; the fill is compared with the photo's own pixels there.  Inpainting is closer than every other fill
    and at least as close as OpenCV's Telea inpainting alone."""
    truth = pasted_scenes(shared, tmp_path / "scenes")
    errors = {}
    for fill in ("texture", "inpaint", "blur", "mean", "black"):
        bgs = tmp_path / f"bg_{fill}"
        res = run("crop", tmp_path / "scenes", "--out", tmp_path / f"c_{fill}", "--backgrounds", bgs, "--fill", fill)
        assert "8 masked" in res.output and "8 backgrounds" in res.output
        diffs, telea = [], []
        for stem, photo in truth.items():
            size, outlines = parse_sidecar((bgs / f"{stem}.blanked.json").read_bytes())
            hole = outline_mask(outlines, size) > 0
            filled = cv2.imread(str(bgs / f"{stem}.png"))
            np.testing.assert_array_equal(filled[~hole], cv2.imread(str(tmp_path / "scenes" / "JPEGImages" /
                                                                        f"{stem}.png"))[~hole])
            diffs.append(np.abs(filled[hole].astype(int) - photo[hole]))
            scene = cv2.imread(str(tmp_path / "scenes" / "JPEGImages" / f"{stem}.png"))
            t = cv2.inpaint(scene, hole.view(np.uint8), 3, cv2.INPAINT_TELEA)
            telea.append(np.abs(t[hole].astype(int) - photo[hole]))
        errors[fill] = float(np.concatenate(diffs).mean())
        errors["telea"] = float(np.concatenate(telea).mean())
    print("mean absolute error per channel:", {k: round(v, 2) for k, v in errors.items()})
    assert errors["inpaint"] <= errors["telea"] * 1.01
    assert errors["inpaint"] < errors["blur"] < errors["mean"] < errors["black"]
    assert errors["inpaint"] < 40
    # copied texture is further from the true pixels than a smooth guess (its detail is not theirs), but closer
    # than the image's mean colour
    assert errors["inpaint"] < errors["texture"] < errors["mean"]


@pytest.mark.parametrize("method", ["texture", "inpaint", "blur", "mean", "black"])
def test_fills_touch_only_the_masked_pixels(method):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (60, 80, 3)).astype(np.uint8)
    mask = np.zeros((60, 80), np.uint8)
    cv2.circle(mask, (40, 30), 17, 255, -1)
    src = img.copy()
    out = fill_regions(img, mask, method)
    np.testing.assert_array_equal(img, src)  # the input is not modified
    assert out.dtype == img.dtype and out.shape == img.shape
    np.testing.assert_array_equal(out[mask == 0], img[mask == 0])
    if method != "black":
        assert not (out[mask > 0] == 0).all(axis=-1).any()  # no pure-black pixel left in the hole
        with pytest.raises(ValueError, match="nothing to fill from"):
            fill_regions(img, np.full((60, 80), 255, np.uint8), method)


def test_push_pull_rules():
    """A constant image stays constant; fills stay within the known values' range (weighted averages); grey and
    16-bit images work (inpaint falls back to push-pull)."""
    hole = np.zeros((50, 70), bool)
    hole[10:40, 20:60] = True
    flat = np.full((50, 70, 3), 77, np.uint8)
    np.testing.assert_array_equal(push_pull(flat, hole), flat)
    ring = np.zeros((50, 70), np.uint8)
    ring[5:45, 15:65] = 200
    ring[hole] = 0
    filled = push_pull(ring, hole)
    assert filled[hole].min() > 0 and filled[hole].max() <= 200  # averages of known values: never outside them
    grad = np.tile(np.linspace(10, 240, 70), (50, 1)).astype(np.uint16) * 100
    out = fill_regions(grad, hole, "inpaint")
    assert out.dtype == np.uint16 and out[hole].min() >= grad[~hole].min() and out[hole].max() <= grad.max()
    row = out[25, 20:60].astype(float)
    assert (np.diff(row) >= -1).all()  # a left-to-right gradient is continued, not reversed


def test_outlines_cover_the_blanked_pixels():
    """Outlines drawn back give every blanked pixel (the sidecar loses nothing) and, for regions without holes,
    nothing else; odd shapes too (a single pixel, a one-pixel line, touching the border)."""
    rng = np.random.default_rng(4)
    for _ in range(20):
        m = np.zeros((40, 50), np.uint8)
        for _ in range(4):
            kind = rng.integers(3)
            x, y = int(rng.integers(0, 50)), int(rng.integers(0, 40))
            if kind == 0:
                cv2.circle(m, (x, y), int(rng.integers(0, 8)), 255, -1)
            elif kind == 1:
                cv2.line(m, (x, y), (int(rng.integers(0, 50)), int(rng.integers(0, 40))), 255, 1)
            else:
                m[y, x] = 255
        back = outline_mask(region_outlines(m), (50, 40))
        assert ((back > 0) >= (m > 0)).all()
        # the reference: everything not reachable from outside the regions (holes filled)
        flood = np.pad((m > 0).astype(np.uint8), 1)
        cv2.floodFill(flood, None, (0, 0), 2)
        filled = (flood != 2)[1:-1, 1:-1]
        np.testing.assert_array_equal(back > 0, filled)
    doc = format_sidecar((50, 40), region_outlines(m), "inpaint")
    assert json.loads(doc)["fill"] == "inpaint" and parse_sidecar(doc)[0] == (50, 40)
    with pytest.raises(ValueError, match="x.json: not a blanked-regions file"):
        parse_sidecar(b"{}", "x.json")
    assert sidecar_path("/a/b.c/img.png") == "/a/b.c/img.blanked.json"


def test_too_blanked_backgrounds_are_skipped_and_counted(shared, tmp_path):
    res = run("crop", shared / "voc_sample", "--out", tmp_path / "c", "--backgrounds", tmp_path / "b")
    assert "10 backgrounds, 3 too_blanked" in res.output
    res = run("crop", shared / "voc_sample", "--out", tmp_path / "c2", "--backgrounds", tmp_path / "b2",
              "--max-blanked", "1")
    assert "13 backgrounds, 0 too_blanked" in res.output
    for p in (tmp_path / "b2").glob("*.png"):
        img = cv2.imread(str(p))
        size, outlines = parse_sidecar((tmp_path / "b2" / f"{p.stem}.blanked.json").read_bytes())
        hole = outline_mask(outlines, size) > 0
        black = (img == 0).all(axis=-1)
        # no hole left black (some black pixels are the photos' own: the texture fill copies their black cabinets)
        assert (black & hole).sum() <= 0.1 * hole.sum(), p


def test_a_wholly_blanked_background_is_never_written(tmp_path):
    from helpers import write_voc_tree
    root = write_voc_tree(tmp_path / "d", {"a": (40, 30, [("cat", (1, 1, 40, 30))]), "b": (40, 30, [])})
    res = run("crop", root, "--out", tmp_path / "c", "--backgrounds", tmp_path / "b", "--max-blanked", "1")
    assert "1 backgrounds, 1 too_blanked" in res.output
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["b.png"]


def _footprints(n, m):
    """Area resampling of n pixels to m: weights[j, i] = the part of source pixel i in target j's footprint
    [j n/m, (j+1) n/m), over the footprint's length."""
    s = n / m
    weights = np.zeros((m, n))
    for j in range(m):
        lo, hi = j * s, (j + 1) * s
        for i in range(n):
            weights[j, i] = max(0.0, min(hi, i + 1) - max(lo, i)) / s
    return weights


def _pull_reference(c, w):
    h, wd = w.shape
    ry, rx = _footprints(h, (h + 1) // 2), _footprints(wd, (wd + 1) // 2)
    c2 = np.zeros((ry.shape[0], rx.shape[0], c.shape[2]))
    w2 = np.zeros((ry.shape[0], rx.shape[0]))
    for y2 in range(ry.shape[0]):
        for x2 in range(rx.shape[0]):
            for y in range(h):
                for x in range(wd):
                    f = ry[y2, y] * rx[x2, x]
                    c2[y2, x2] += f * c[y, x]
                    w2[y2, x2] += f * w[y, x]
    return c2, w2


def _push_reference(est, shape):
    h2, w2 = est.shape[:2]
    out = np.zeros((shape[0], shape[1], est.shape[2]))
    for y in range(shape[0]):
        for x in range(shape[1]):
            sy = min(max((y + 0.5) * h2 / shape[0] - 0.5, 0), h2 - 1)
            sx = min(max((x + 0.5) * w2 / shape[1] - 0.5, 0), w2 - 1)
            y0, x0 = int(np.floor(sy)), int(np.floor(sx))
            y1, x1 = min(y0 + 1, h2 - 1), min(x0 + 1, w2 - 1)
            fy, fx = sy - y0, sx - x0
            out[y, x] = ((1 - fy) * ((1 - fx) * est[y0, x0] + fx * est[y0, x1])
                         + fy * ((1 - fx) * est[y1, x0] + fx * est[y1, x1]))
    return out


def test_push_pull_against_a_per_pixel_reference():
    from dsprep.fill import pull, push
    rng = np.random.default_rng(5)
    for h, w in ((13, 17), (8, 8), (1, 9), (6, 1)):
        c = rng.random((h, w, 3)).astype(np.float32) * 255
        wt = (rng.random((h, w)) < 0.6).astype(np.float32)
        got_c, got_w = pull(c * wt[..., None], wt)
        ref_c, ref_w = _pull_reference(c * wt[..., None], wt)
        np.testing.assert_allclose(got_c, ref_c, atol=0.02)
        np.testing.assert_allclose(got_w, ref_w, atol=1e-4)
        est = rng.random(((h + 1) // 2, (w + 1) // 2, 3)).astype(np.float32) * 255
        np.testing.assert_allclose(push(est, (h, w)), _push_reference(est, (h, w)), atol=0.05)
    # the whole fill: levels down until every pixel has weight, back up with "over"
    img = rng.integers(0, 256, (21, 30, 3)).astype(np.uint8)
    hole = np.zeros((21, 30), bool)
    hole[4:15, 6:25] = True
    levels = [(img * (~hole)[..., None].astype(float), (~hole).astype(float))]
    while levels[-1][1].min() <= 0:
        levels.append(_pull_reference(*levels[-1]))
    est = levels[-1][0] / levels[-1][1][..., None]
    for c, w in reversed(levels[:-1]):
        est = c + _push_reference(est, w.shape) * (1 - w)[..., None]
    want = np.where(hole[..., None], np.clip(np.round(est), 0, 255), img)
    assert np.abs(push_pull(img, hole).astype(int) - want).max() <= 1


# ---- issue 24: fills that keep the texture ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_voc(tmp_path_factory):
    """The demo's VOC data set (textured scenes with masked objects), as `dsprep demo` generates it."""
    from dsprep.demo import make_voc_demo
    root = tmp_path_factory.mktemp("demo") / "voc"
    make_voc_demo(root, n_images=24, seed=0)
    return root


def _measures(bgs):
    """(texture ratios, seam ratios) of every filled region of the backgrounds crop wrote (from the sidecars)."""
    from dsprep.texfill import region_measures
    tex, seam = [], []
    for sc in sorted(bgs.glob("*.blanked.json")):
        size, outlines = parse_sidecar(sc.read_bytes())
        img = cv2.imread(str(sc.parent / sc.name.replace(".blanked.json", ".png")))
        t, s = region_measures(img, outline_mask(outlines, size) > 0)
        tex.extend(t)
        seam.extend(s)
    return np.array(tex), np.array(seam)


@pytest.mark.parametrize("source", ["demo", "voc_sample"])
def test_texture_fill_continues_the_texture_without_a_seam(source, demo_voc, request, tmp_path):
    """Done when (issue 24): on the demo's backgrounds and the VOC sample, the default fill keeps the texture of
    the surroundings (mean |Laplacian| inside a region over that in a 12-pixel band around it: median >= 0.6, no
    region under 0.3) and its border does not show (gradient on the border over that around: median <= 1.5).
    The same measures tell the other fills apart: Telea's smooth blob, black's hard edge."""
    src = demo_voc if source == "demo" else request.getfixturevalue("shared") / "voc_sample"
    got = {}
    for fill in ("texture", "inpaint", "black"):
        bgs = tmp_path / fill
        args = ["--fill", fill] if fill != "texture" else []  # texture is the default
        run("crop", src, "--out", tmp_path / f"c_{fill}", "--backgrounds", bgs, *args)
        got[fill] = _measures(bgs)
    tex, seam = got["texture"]
    print(source, "texture: median", np.median(tex).round(2), "min", tex.min().round(2), "seam median",
          np.median(seam).round(2), "| inpaint texture median", np.median(got["inpaint"][0]).round(2),
          "| black seam median", np.median(got["black"][1]).round(2))
    assert len(tex) >= 15 and len(tex) == len(got["inpaint"][0])
    assert np.median(tex) >= 0.6 and tex.min() >= 0.3
    assert np.median(seam) <= 1.5
    assert np.median(got["inpaint"][0]) < 0.3
    assert np.median(got["black"][1]) > 3


def test_texture_fill_is_repeatable_and_handles_grey_and_16_bit():
    """The same input gives the same bytes (no randomness); grey and 16-bit images keep their dtype and range;
    a region touching the image's corner is filled too."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:90, 0:120]
    stripes = (128 + 60 * np.sin(x / 3.0) + rng.normal(0, 6, (90, 120))).clip(0, 255)
    hole = np.zeros((90, 120), np.uint8)
    cv2.circle(hole, (60, 45), 14, 255, -1)
    hole[:10, :12] = 255
    for img in (stripes.astype(np.uint8), (stripes * 256).astype(np.uint16),
                np.dstack([stripes, stripes[:, ::-1], 255 - stripes]).astype(np.uint8)):
        a, b = fill_regions(img, hole, "texture"), fill_regions(img, hole, "texture")
        np.testing.assert_array_equal(a, b)
        assert a.dtype == img.dtype and a.shape == img.shape
        np.testing.assert_array_equal(a[hole == 0], img[hole == 0])
        assert a[hole > 0].min() >= img.min() * 0.8 and a[hole > 0].max() <= img.max() * 1.1 + 1
        from dsprep.texfill import region_measures
        tex, _ = region_measures(a if a.dtype == np.uint8 else (a // 256).astype(np.uint8), hole > 0)
        assert (tex > 0.6).all(), tex  # the stripes go on inside (a smooth fill: about 0.1)


def test_overlapping_objects_are_all_blanked():
    """A dog inside a person's box (as in the VOC sample's 000001): the overlap is blanked too (OpenCV's fillPoly
    given both polygons at once fills by the even-odd rule and would leave the dog)."""
    from dsprep.core import boxes_to_polygons
    from dsprep.crop import blank_mask
    m = blank_mask((50, 60), boxes_to_polygons(np.array([[5, 5, 55, 45], [20, 20, 30, 30]], float)))
    assert (m[5:45, 5:55] == 255).all() and np.count_nonzero(m) == 50 * 40


def test_largest_free_rect_against_brute_force():
    """On masks no larger than the grid (a cell per pixel) the rectangle is the largest empty one, as a search of
    every rectangle finds; on larger masks it never holds a blanked pixel."""
    from dsprep.freeregion import largest_free_rect
    rng = np.random.default_rng(8)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(3, 11, 2))
        m = (rng.random((h, w)) < 0.15).astype(np.uint8)
        best = 0
        for y0 in range(h):
            for x0 in range(w):
                for y1 in range(y0 + 1, h + 1):
                    for x1 in range(x0 + 1, w + 1):
                        if not m[y0:y1, x0:x1].any():
                            best = max(best, (y1 - y0) * (x1 - x0))
        got = largest_free_rect(m, grid=16)
        if best == 0:
            assert got is None
            continue
        x0, y0, x1, y1 = got
        assert not m[y0:y1, x0:x1].any() and (x1 - x0) * (y1 - y0) == best
    big = np.zeros((300, 400), np.uint8)
    cv2.circle(big, (150, 140), 60, 1, -1)
    x0, y0, x1, y1 = largest_free_rect(big)
    assert not big[y0:y1, x0:x1].any() and (x1 - x0) * (y1 - y0) >= 0.9 * 190 * 300  # right of the disc


def test_fill_none_cuts_object_free_backgrounds(demo_voc, tmp_path):
    """crop --backgrounds --fill none: each background is a part of its scene, cut as it is (no pixel made up),
    holding no pixel of any object (the demo's instance masks), at least --min-free of the scene; scenes without
    such a part are counted and skipped."""
    from dsprep.vocmasks import mask_indices
    res = run("crop", demo_voc, "--out", tmp_path / "c", "--backgrounds", tmp_path / "b", "--fill", "none")
    written = sorted((tmp_path / "b").glob("*.png"))
    assert f"{len(written)} backgrounds, {24 - len(written)} no_free_region" in res.output and len(written) >= 12
    assert not list((tmp_path / "b").glob("*.json"))  # nothing blanked: no sidecar
    for p in written:
        from dsprep.images import read_image
        scene = read_image(demo_voc / "JPEGImages" / f"{p.stem}.jpg")  # decoded as crop decodes it
        bg = cv2.imread(str(p))
        score = cv2.matchTemplate(scene, bg, cv2.TM_SQDIFF)
        _, _, (x, y), _ = cv2.minMaxLoc(score)
        np.testing.assert_array_equal(scene[y:y + bg.shape[0], x:x + bg.shape[1]], bg)  # the scene's own pixels
        inst = mask_indices((demo_voc / "SegmentationObject" / f"{p.stem}.png").read_bytes())
        assert not inst[y:y + bg.shape[0], x:x + bg.shape[1]].any()
        assert bg.shape[0] * bg.shape[1] >= 0.25 * scene.shape[0] * scene.shape[1]


def test_texture_backgrounds_are_the_same_bytes_with_any_worker_count(demo_voc, tmp_path):
    outs = []
    for workers in ("1", "2"):
        run("crop", demo_voc, "--out", tmp_path / f"c{workers}", "--backgrounds", tmp_path / f"b{workers}",
            "--workers", workers)
        outs.append({p.name: p.read_bytes() for p in sorted((tmp_path / f"b{workers}").glob("demo_*"))})
    assert outs[0] == outs[1] and len(outs[0]) == 2 * 24  # each background and its sidecar
