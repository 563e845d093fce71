"""Masks through convert: outlines traced from masks and masks painted from outlines (shapes, vocmasks), the VOC
sample's palette masks through every format and back, COCO RLE with a hole, DOTA quads as VOC masks."""
import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as maskutils
import pytest
from pycocotools.coco import COCO

from dsprep import rle
from dsprep.dataset import load_dataset, object_masks
from dsprep.formats.shapes import join_rings, mask_rings, mask_segmentation, ring_mask, rle_of_mask
from dsprep.formats.vocmasks import VOC_CLASSES, mask_indices, read_labelmap, top_masks, voc_palette
from dsprep.jobs.convert import LOSSY

from helpers import full_masks, gradient, run_cli

DATA = Path(__file__).parent / "data"
VOC20 = ",".join(VOC_CLASSES[1:])
SEGMENTED = ("2011_000003", "2011_000006", "2011_000025")


def even_odd(rings, h, w):
    out = np.zeros((h, w), bool)
    for r in rings:
        out ^= ring_mask(r, (0, 0, w, h))
    return out


def holes_filled(mask):
    """Reference: background pixels not 4-connected to the border (foreground is 8-connected) become foreground."""
    h, w = mask.shape
    pad = np.zeros((h + 2, w + 2), np.uint8)
    pad[1:-1, 1:-1] = mask
    cv2.floodFill(pad, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 2, flags=4)
    return pad[1:-1, 1:-1] != 2


def random_masks(n, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(1, 32, 2))
        yield rng.random((h, w)) < rng.uniform(0.15, 0.85)


# ---- the pure functions ---------------------------------------------------------------------------------------

def test_outlines_give_back_the_mask_pixel_for_pixel():
    parts_seen = holes_seen = 0
    for m in random_masks(300):
        h, w = m.shape
        outers, holes = mask_rings(m)
        parts_seen += len(outers) > 1
        holes_seen += bool(holes)
        np.testing.assert_array_equal(even_odd(outers + holes, h, w), m)
        assert all(np.array_equal(r, np.round(r)) for r in outers + holes)  # on pixel corners
        filled, dropped = mask_rings(m, filled=True)
        union = np.zeros((h, w), bool)
        for r in filled:
            union |= ring_mask(r, (0, 0, w, h))
        np.testing.assert_array_equal(union, holes_filled(m))
        assert bool(dropped) == bool((holes_filled(m) != m).any())
    assert parts_seen > 50 and holes_seen > 50  # the cases that matter were drawn


def test_only_corners_are_kept():
    m = np.zeros((6, 8), bool)
    m[1:5, 2:7] = True
    outers, holes = mask_rings(m)
    assert holes == [] and len(outers) == 1
    assert sorted(map(tuple, outers[0].tolist())) == [(2, 1), (2, 5), (7, 1), (7, 5)]


def test_rle_matches_pycocotools_encode():
    rng = np.random.default_rng(1)
    for m in random_masks(200, seed=2):
        h, w = m.shape
        H, W = h + int(rng.integers(0, 6)), w + int(rng.integers(0, 6))
        x0, y0 = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
        full = np.zeros((H, W), np.uint8)
        full[y0:y0 + h, x0:x0 + w] = m
        ours = rle_of_mask(m, x0, y0, W, H)
        theirs = maskutils.encode(np.asfortranarray(full))
        assert ours == {"size": theirs["size"], "counts": theirs["counts"].decode("ascii")}
    assert rle_of_mask(np.zeros((2, 3), bool), 1, 1, 5, 4)["counts"] == maskutils.encode(
        np.zeros((4, 5), np.uint8, order="F"))["counts"].decode()
    with pytest.raises(ValueError, match="reaches outside"):
        rle_of_mask(np.ones((3, 3), bool), 3, 0, 5, 5)


def test_a_mask_is_a_polygon_when_it_can_be_and_pycocotools_draws_it_back():
    kinds = set()
    for m in random_masks(200, seed=3):
        h, w = m.shape
        seg, parts, holes = mask_segmentation(m, 2, 3, w + 4, h + 5)
        full = np.zeros((h + 5, w + 4), bool)
        full[3:3 + h, 2:2 + w] = m
        if seg == []:
            assert not m.any() and parts == holes == 0
            continue
        if isinstance(seg, list):
            kinds.add("polygon")
            assert parts == 1 and holes == 0
            drawn = maskutils.decode(maskutils.merge(maskutils.frPyObjects(seg, h + 5, w + 4)))
        else:
            kinds.add("rle")
            assert parts > 1 or holes > 0
            drawn = maskutils.decode(seg)
        np.testing.assert_array_equal(drawn.astype(bool), full)
    assert kinds == {"polygon", "rle"}


def test_joined_parts_cover_the_same_pixels_for_every_rasterizer():
    joined = 0
    for m in random_masks(200, seed=4):
        h, w = m.shape
        outers, _ = mask_rings(m, filled=True)
        if len(outers) < 2:
            continue
        joined += 1
        ring = join_rings(outers)
        want = holes_filled(m)
        np.testing.assert_array_equal(ring_mask(ring, (0, 0, w, h)), want)
        coco = maskutils.decode(maskutils.merge(maskutils.frPyObjects([ring.reshape(-1).tolist()], h, w)))
        np.testing.assert_array_equal(coco.astype(bool), want)
        filled = np.zeros((h, w), np.uint8)  # Ultralytics draws YOLO-seg polygons with cv2.fillPoly
        cv2.fillPoly(filled, [np.round(ring - 0.5).astype(np.int32)], 1)
        assert (filled.astype(bool) | ~want).all()  # OpenCV's own edge rule aside, nothing outside the parts
    assert joined > 50


def test_painting_order_against_a_plain_loop():
    rng = np.random.default_rng(5)
    for _ in range(30):
        H, W = (int(v) for v in rng.integers(5, 40, 2))
        n = int(rng.integers(1, 8))
        masks = [rng.random((H, W)) < rng.uniform(0.05, 0.6) for _ in range(n)]
        counts = [np.asarray(maskutils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"]) for m in masks]
        runs = [rle.decode_count_strings([c.item().decode()])[0] for c in counts]
        ms = rle.from_counts(np.concatenate(runs), np.r_[0, np.cumsum([len(r) for r in runs])], [H] * n, [W] * n)
        want = np.full((H, W), -1)
        for k in sorted(range(n), key=lambda k: (-int(masks[k].sum()), k)):  # larger first, smaller on top
            want[masks[k]] = k
        np.testing.assert_array_equal(top_masks(ms, H, W), want)


# ---- the VOC sample through every format and back ---------------------------------------------------------------

def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def png_values(path):
    return mask_indices(path.read_bytes(), str(path))


@pytest.fixture(scope="module")
def sample_voc(tmp_path_factory):
    """The VOC sample written as VOC again with the standard class list (so its class values are VOC's)."""
    from conftest import SHARED
    if not (SHARED / "voc_sample").is_dir():
        pytest.skip("shared conformance data not found")
    out = tmp_path_factory.mktemp("masks") / "voc"
    run_cli("convert", SHARED / "voc_sample", "--to", "voc", "--out", out, "--classes", VOC20, "-q")
    return out


@pytest.mark.parametrize("via", ["coco", "labelme", "yolo-seg", "voc"])
def test_voc_sample_masks_through_every_format_and_back(shared, tmp_path, via):
    src = load_dataset(shared / "voc_sample")
    res = run_cli("convert", shared / "voc_sample", "--to", via, "--out", tmp_path / via, "--classes", VOC20, "--json")
    counts = json.loads(res.stdout)["counts"]
    # what the sample's masks hold beyond its objects is named: labelme's export painted instances that are not
    # objects of the XML (a bottle, a chair, a sofa), the void band, mask pixels outside the boxes
    assert counts["mask_instance_without_object"] == 3 and counts["mask_void_dropped"] == 2
    assert counts["mask_cut_to_box"] == 8 and "segmentation_dropped" not in counts
    assert set(counts) - {"images", "objects", "inputs"} <= set(LOSSY)  # every loss explained
    holes = 2 if via in ("labelme", "yolo-seg") else 0  # two objects of 2011_000006 have holes
    assert counts.get("mask_holes_dropped", 0) == holes
    assert counts.get("box_to_polygon", 0) == (37 - 9 if via == "yolo-seg" else 0)
    back_dir = tmp_path / "back"
    run_cli("convert", tmp_path / via, "--to", "voc", "--out", back_dir, "--classes", VOC20, "-q")
    back = {r.stem: r for r in load_dataset(back_dir).records}
    for rec in src.records:
        original = full_masks("voc", rec)
        got = full_masks("voc", back[rec.stem])
        if rec.stem not in SEGMENTED:
            assert all(m is None for m in original)
            # a YOLO-seg line is a polygon: objects without a mask went as their boxes' corners (counted)
            assert all((m is None) != (via == "yolo-seg") for m in got)
            continue
        for k, (a, b) in enumerate(zip(original, got)):
            assert b is not None, (rec.stem, k)
            assert iou(a, b) >= (0.98 if holes else 1.0), (rec.stem, k, iou(a, b))
        # class values kept: VOC's own indices (--classes in VOC's order) wherever both say "object"
        old = png_values(shared / "voc_sample" / "SegmentationClass" / f"{rec.stem}.png")
        new = png_values(back_dir / "SegmentationClass" / f"{rec.stem}.png")
        both = (old != 255) & (old > 0) & (new > 0)
        assert both.sum() > 0.9 * (new > 0).sum()
        np.testing.assert_array_equal(new[both], old[both])
        assert set(np.unique(new)) <= {0} | {VOC_CLASSES.index(n) for n in rec.names}


def test_voc_writes_palette_masks_lists_and_labelmap(sample_voc, shared):
    for stem in SEGMENTED:
        for folder in ("SegmentationObject", "SegmentationClass"):
            data = (sample_voc / folder / f"{stem}.png").read_bytes()
            assert struct.unpack(">BB", data[24:26]) == (8, 3)  # 8-bit palette, as VOC's
            assert data[data.index(b"PLTE") + 4:][:768] == voc_palette().tobytes()
        assert "<segmented>1</segmented>" in (sample_voc / "Annotations" / f"{stem}.xml").read_text()
    assert "<segmented>0</segmented>" in (sample_voc / "Annotations" / "000001.xml").read_text()
    assert (sample_voc / "ImageSets" / "Segmentation" / "trainval.txt").read_text().split() == list(SEGMENTED)
    assert not (sample_voc / "ImageSets" / "Segmentation" / "test.txt").exists()
    names, colors = read_labelmap(sample_voc / "labelmap.txt")
    assert names == list(VOC_CLASSES)
    np.testing.assert_array_equal(colors, voc_palette()[:21])
    # instance k + 1 is object k of the XML: every object reads back its own mask
    ds = load_dataset(sample_voc)
    src = {r.stem: r for r in load_dataset(shared / "voc_sample").records}
    for rec in ds.records:
        if rec.stem in SEGMENTED:
            inst = png_values(sample_voc / "SegmentationObject" / f"{rec.stem}.png")
            for k, m in enumerate(full_masks("voc", src[rec.stem])):
                np.testing.assert_array_equal(inst == k + 1, m)


def test_voc_class_names_keep_vocs_own_values_without_pinning(shared, tmp_path):
    """VOC -> YOLO-seg -> VOC with no --classes: the class list is the 9 names present, yet the masks keep VOC's
    values (bus 6, car 7), as the source's PNGs hold them and FCN-style training expects."""
    run_cli("convert", shared / "voc_sample", "--to", "yolo-seg", "--out", tmp_path / "y", "-q")
    run_cli("convert", tmp_path / "y", "--to", "voc", "--out", tmp_path / "v", "-q")
    names, _ = read_labelmap(tmp_path / "v" / "labelmap.txt")
    assert names == list(VOC_CLASSES)
    cls = png_values(tmp_path / "v" / "SegmentationClass" / "2011_000025.png")
    old = png_values(shared / "voc_sample" / "SegmentationClass" / "2011_000025.png")
    assert set(np.unique(cls)) == {0, 6, 7}
    both = (old > 0) & (old != 255) & (cls > 0)
    np.testing.assert_array_equal(cls[both], old[both])
    ds = load_dataset(tmp_path / "v")
    rec = next(r for r in ds.records if r.stem == "2011_000025")
    assert all(m is not None for m in object_masks("voc", rec))


def test_other_class_values_follow_the_class_list_and_labelmap_says_so(shared, tmp_path):
    # one class renamed out of VOC's vocabulary: the values are then the class list's positions
    run_cli("convert", shared / "voc_sample", "--to", "voc", "--out", tmp_path / "v", "--map", "bus:coach", "-q")
    ds = load_dataset(tmp_path / "v")  # classes sorted from the annotations: 9 of them
    names, _ = read_labelmap(tmp_path / "v" / "labelmap.txt")
    assert names == ["background"] + ds.classes and "coach" in ds.classes
    cls = png_values(tmp_path / "v" / "SegmentationClass" / "2011_000025.png")
    assert set(np.unique(cls)) == {0, ds.classes.index("coach") + 1, ds.classes.index("car") + 1}
    # and the masks read back through that labelmap (the class check of every instance passes)
    rec = next(r for r in ds.records if r.stem == "2011_000025")
    assert all(m is not None for m in object_masks("voc", rec))


def test_pycocotools_reads_the_written_coco_segmentations(shared, tmp_path):
    run_cli("convert", shared / "voc_sample", "--to", "coco", "--out", tmp_path / "c", "-q")
    src = {r.stem: r for r in load_dataset(shared / "voc_sample").records}
    files = sorted((tmp_path / "c" / "annotations").glob("*.json"))
    kinds = set()
    checked = 0
    for f in files:
        coco = COCO(str(f))
        for img in coco.dataset["images"]:
            rec = src[img["file_name"].rsplit(".", 1)[0]]
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
            want = full_masks("voc", rec)
            for ann, m in zip(anns, want):
                if m is None:
                    assert ann["segmentation"] == []
                    continue
                kinds.add("rle" if isinstance(ann["segmentation"], dict) else "polygon")
                np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), m)
                assert ann["area"] == m.sum()
                checked += 1
    assert checked == 9 and kinds == {"rle", "polygon"}


def test_masks_dropped_by_a_box_format_are_counted(shared, tmp_path):
    res = run_cli("convert", shared / "voc_sample", "--to", "yolo", "--out", tmp_path / "y", "--json")
    counts = json.loads(res.stdout)["counts"]
    assert counts["segmentation_dropped"] == 9  # every object with a mask
    assert "mask_void_dropped" not in counts  # (the masks are not carried at all)


# ---- COCO RLE with a hole, overlaps -----------------------------------------------------------------------------

def ring_with_hole(h, w):
    m = np.zeros((h, w), np.uint8)
    m[10:40, 8:50] = 1
    m[18:30, 20:34] = 0
    return m


def write_coco(root, anns, w=64, h=48):
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "a.png"), gradient(w, h))
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": w, "height": h}],
           "categories": [{"id": 1, "name": "ring"}, {"id": 2, "name": "dot"}],
           "annotations": [{"id": k + 1, "image_id": 1, "iscrowd": 0, **a} for k, a in enumerate(anns)]}
    (root / "annotations.json").write_text(json.dumps(doc))
    return root / "annotations.json"


def rle_ann(m, cat=1):
    r = maskutils.encode(np.asfortranarray(m))
    x, y, bw, bh = maskutils.toBbox(r).tolist()
    return {"category_id": cat, "segmentation": {"size": r["size"], "counts": r["counts"].decode()},
            "bbox": [x, y, bw, bh], "area": int(m.sum())}


def test_coco_rle_with_a_hole_keeps_it_through_voc_and_is_counted_where_it_cannot(tmp_path):
    hole = ring_with_hole(48, 64)
    src = write_coco(tmp_path / "src", [rle_ann(hole)])
    run_cli("convert", src, "--to", "voc", "--out", tmp_path / "voc", "-q")
    inst = png_values(tmp_path / "voc" / "SegmentationObject" / "a.png")
    np.testing.assert_array_equal(inst == 1, hole.astype(bool))  # the hole is background in the mask
    run_cli("convert", tmp_path / "voc", "--to", "coco", "--out", tmp_path / "coco", "-q")
    back = json.loads(next((tmp_path / "coco" / "annotations").glob("*.json")).read_text())
    seg = back["annotations"][0]["segmentation"]
    assert isinstance(seg, dict)  # a mask with a hole stays a mask
    np.testing.assert_array_equal(maskutils.decode(seg), hole)
    for target in ("labelme", "yolo-seg"):
        res = run_cli("convert", src, "--to", target, "--out", tmp_path / target, "--json")
        assert json.loads(res.stdout)["counts"]["mask_holes_dropped"] == 1
        rec = load_dataset(tmp_path / target).records[0]
        got = full_masks(target, rec)[0]
        np.testing.assert_array_equal(got, holes_filled(hole.astype(bool)))  # the outline, the hole filled
    assert "mask_holes_dropped" in LOSSY and "{target}" in LOSSY["mask_holes_dropped"]


def test_several_parts_are_one_labelme_group_and_one_joined_yolo_seg_polygon(tmp_path):
    two = np.zeros((48, 64), np.uint8)
    two[5:15, 5:15] = 1
    two[30:44, 40:60] = 1
    src = write_coco(tmp_path / "src", [rle_ann(two)])
    run_cli("convert", src, "--to", "labelme", "--out", tmp_path / "lm", "-q")
    shapes = json.loads((tmp_path / "lm" / "a.json").read_text())["shapes"]
    assert [s["shape_type"] for s in shapes] == ["polygon", "polygon"]
    assert shapes[0]["group_id"] == shapes[1]["group_id"] is not None
    rec = load_dataset(tmp_path / "lm").records[0]
    assert len(rec) == 1
    np.testing.assert_array_equal(full_masks("labelme", rec)[0], two.astype(bool))
    res = run_cli("convert", src, "--to", "yolo-seg", "--out", tmp_path / "ys", "--json")
    assert json.loads(res.stdout)["counts"]["mask_parts_joined"] == 1
    lines = (tmp_path / "ys" / "labels" / "train" / "a.txt").read_text().splitlines()
    assert len(lines) == 1
    rec = load_dataset(tmp_path / "ys").records[0]
    np.testing.assert_array_equal(full_masks("yolo-seg", rec)[0], two.astype(bool))


def test_a_smaller_object_stays_visible_on_a_larger_one(tmp_path):
    big = np.zeros((48, 64), np.uint8)
    big[5:45, 5:60] = 1
    small = {"category_id": 2, "segmentation": [[20, 20, 30, 20, 30, 28, 20, 28]], "bbox": [20, 20, 10, 8],
             "area": 80}
    src = write_coco(tmp_path / "src", [small, rle_ann(big)])  # the small one first: order does not hide it
    run_cli("convert", src, "--to", "voc", "--out", tmp_path / "voc", "-q")
    inst = png_values(tmp_path / "voc" / "SegmentationObject" / "a.png")
    cls = png_values(tmp_path / "voc" / "SegmentationClass" / "a.png")
    assert (inst[20:28, 20:30] == 1).all() and (cls[20:28, 20:30] == 2).all()
    np.testing.assert_array_equal(inst == 2, big.astype(bool) & (inst != 1))
    assert (cls[inst == 2] == 1).all()
    masks = full_masks("voc", load_dataset(tmp_path / "voc").records[0])
    assert masks[0].sum() == 80 and masks[1].sum() == big.sum() - 80


# ---- DOTA quads -> VOC masks ---------------------------------------------------------------------------------------

def test_dota_quads_become_voc_masks_as_pycocotools_draws_them(shared, tmp_path):
    res = run_cli("convert", shared / "dota_example", "--to", "voc", "--out", tmp_path / "voc", "--json")
    counts = json.loads(res.stdout)["counts"]
    src = {r.stem: r for r in load_dataset(shared / "dota_example").records}
    classes = load_dataset(tmp_path / "voc").classes
    over = 0
    for stem, rec in src.items():
        h, w = rec.height, rec.width
        quads = [maskutils.decode(maskutils.merge(maskutils.frPyObjects([q.reshape(-1).tolist()], h, w)))
                 .astype(bool) for q in rec.polygons]
        want_inst = np.zeros((h, w), np.int64)
        want_cls = np.zeros((h, w), np.int64)
        for k in sorted(range(len(rec)), key=lambda k: (-int(quads[k].sum()), k)):  # the stated order
            want_inst[quads[k]] = k + 1 if k < 254 else 0
            want_cls[quads[k]] = classes.index(rec.names[k]) + 1
        over += max(0, len(rec) - 254)
        np.testing.assert_array_equal(png_values(tmp_path / "voc" / "SegmentationObject" / f"{stem}.png"),
                                      want_inst)
        np.testing.assert_array_equal(png_values(tmp_path / "voc" / "SegmentationClass" / f"{stem}.png"),
                                      want_cls)
    assert over > 0 and counts["mask_instance_over_254"] == over  # P0706 has 536 objects: 8-bit ids run out
    assert "polygon_to_box" not in counts  # the quads are kept, in the masks


def test_split_and_merge_carry_the_masks_of_each_input(shared, tmp_path):
    res = run_cli("merge", shared / "voc_sample", DATA / "labelme", "--to", "coco", "--out", tmp_path / "m",
                  "--json")
    assert json.loads(res.stdout)["counts"]["mask_void_dropped"] == 2  # the VOC input's masks were read
    res = run_cli("split", shared / "voc_sample", "--to", "coco", "--out", tmp_path / "s", "--ratios",
                  "train=0.5,val=0.5", "--json")
    assert json.loads(res.stdout)["counts"]["mask_void_dropped"] == 2
    for out in ("m", "s"):
        segs = [a["segmentation"] for f in (tmp_path / out / "annotations").glob("*.json")
                for a in json.loads(f.read_text())["annotations"]]
        assert sum(1 for s in segs if s) >= 9  # the VOC sample's nine masked objects (and labelme's polygons)
