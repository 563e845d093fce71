"""Filling blanked regions: quality against the true pixels, the fills' rules, and the blanked-regions sidecar."""
import json

import cv2
import numpy as np
import pytest

from dsprep.dataset import load_dataset, object_masks
from dsprep.ops.inpaint import (fill_regions, format_sidecar, outline_mask, parse_sidecar, push_pull, region_outlines,
                         sidecar_path)
from dsprep.formats.vocmasks import encode_palette_png, voc_palette
from helpers import run_cli as run


def _silhouettes(shared):
    """Real object silhouettes: (BGR crop, bool mask) of every VOC sample object that has a mask."""
    out = []
    for rec in load_dataset(shared / "voc_sample").records:
        masks = object_masks("voc", rec)
        if masks is None:
            continue
        img = cv2.imread(rec.image_path)
        from dsprep.geometry import pixel_bounds
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
    for fill in ("inpaint", "blur", "mean", "black"):
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


@pytest.mark.parametrize("method", ["inpaint", "blur", "mean", "black"])
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
        assert (black & hole).sum() <= 0.001 * hole.sum(), p  # no pure-black hole left


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
    from dsprep.ops.inpaint import pull, push
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
