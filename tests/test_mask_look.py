"""Looking at masks: ``visualize boxes`` fills each object's mask in its class colour; ``info`` counts mask pixels
per class and reports masks that disagree with their boxes or images.  On the VOC sample's real palette masks, a
COCO set made from them with pycocotools (compressed RLE and contour polygons), and messy copies of both."""
import json
import shutil

import cv2
import numpy as np
import pytest
import shapely
from PIL import Image

from dsprep.core import ImageRecord
from dsprep.dataset import load_dataset, object_masks
from dsprep.geometry import pixel_bounds
from dsprep.ops.draw import class_color, fill_masks
from dsprep.ops import maskstats

from helpers import run_cli as run, write_voc_tree

MASKED = ("2011_000003", "2011_000006", "2011_000025")
# the instance id (SegmentationObject value) of each XML object, read off the sample by eye: the labelme export
# numbers its own polygons (2011_000006's 4th person is instance 5; instance 4 is a chair without a box)
PAIRING = {"2011_000003": [1, 2], "2011_000006": [1, 2, 3, 5], "2011_000025": [1, 2, 3]}
VOC_NAMES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
             "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


def pil_indices(path):
    """A palette PNG's stored values, read by Pillow (not dsprep's reader)."""
    im = Image.open(path)
    assert im.mode == "P"
    return np.array(im)


def copy_masked_voc(shared, root):
    """The sample's three images with masks, as a VOC tree of their own."""
    src = shared / "voc_sample"
    for sub, ext in (("Annotations", ".xml"), ("JPEGImages", ".jpg"), ("SegmentationObject", ".png"),
                     ("SegmentationClass", ".png")):
        (root / sub).mkdir(parents=True)
        for stem in MASKED:
            shutil.copy(src / sub / f"{stem}{ext}", root / sub)
    return root


def coco_from_voc_masks(shared, root, odd_as_rle=True):
    """A COCO set of the three masked photos, one annotation per instance of SegmentationObject, as converters
    write them: odd instances as compressed RLE (pycocotools.mask.encode), even ones as polygons (OpenCV contours);
    bbox the mask's tight box.  Returns ``(root, {stem: [(instance mask, class name, is RLE)]})``."""
    mask_api = pytest.importorskip("pycocotools.mask")
    src = shared / "voc_sample"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, anns, truth = [], [], {}
    for i, stem in enumerate(MASKED, 1):
        shutil.copy(src / "JPEGImages" / f"{stem}.jpg", root / "images")
        inst = pil_indices(src / "SegmentationObject" / f"{stem}.png")
        cls = pil_indices(src / "SegmentationClass" / f"{stem}.png")
        h, w = inst.shape
        images.append({"id": i, "file_name": f"{stem}.jpg", "width": w, "height": h})
        truth[stem] = []
        for j in sorted(set(np.unique(inst).tolist()) - {0, 255}):
            m = inst == j
            c = int(np.bincount(cls[m]).argmax())
            ys, xs = np.nonzero(m)
            bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
            rle = bool(j % 2) if odd_as_rle else False
            if rle:
                enc = mask_api.encode(np.asfortranarray(m.astype(np.uint8)))
                seg = {"size": enc["size"], "counts": enc["counts"].decode("ascii")}
            else:
                contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                seg = [cnt.reshape(-1).astype(float).tolist() for cnt in contours if len(cnt) >= 3]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c, "segmentation": seg,
                         "area": int(m.sum()), "bbox": bbox, "iscrowd": 0})
            truth[stem].append((m, VOC_NAMES[c], rle))
    cats = [{"id": k, "name": n} for k, n in enumerate(VOC_NAMES) if k]
    doc = {"images": images, "annotations": anns, "categories": cats}
    (root / "annotations" / "instances_val.json").write_text(json.dumps(doc))
    return root, truth


def centre_mask(rings, w, h, boundary=False):
    """The pixels whose centres lie inside the polygons (shapely); ``boundary``: or on an edge (contour polygons
    run through pixel centres on their diagonal steps, and those go to one side or the other by the rasterizer's
    tie rule)."""
    ys, xs = np.mgrid[0:h, 0:w]
    polys = shapely.union_all([shapely.Polygon(np.asarray(r).reshape(-1, 2)) for r in rings])
    return (shapely.intersects_xy if boundary else shapely.contains_xy)(polys, xs + 0.5, ys + 0.5)


def drawn_pair(dataset, tmp_path, *extra):
    """The same data set drawn with and without masks (PNG: no JPEG loss), as ``{stem: (masked, plain)}``."""
    run("visualize", "boxes", dataset, "--out", tmp_path / "with", "--ext", ".png", *extra)
    run("visualize", "boxes", dataset, "--out", tmp_path / "without", "--ext", ".png", "--no-masks")
    return {p.stem: (cv2.imread(str(p)), cv2.imread(str(tmp_path / "without" / p.name)))
            for p in sorted((tmp_path / "with").glob("*.png"))}


def check_blend(masked, plain, photo, masks, colors, alpha=0.5, reach=None):
    """Every pixel outside the masks (or outside ``reach``, masks with their undecided border pixels) is what the
    drawing without masks has; every mask pixel that the boxes and tags leave alone is ``(1 - alpha) * photo +
    alpha * class colour``.  Returns how many mask pixels were checked."""
    covered = np.zeros(photo.shape[:2], bool)
    for m in masks:
        covered |= m
    near = covered.copy()
    for m in reach or ():
        near |= m
    np.testing.assert_array_equal(masked[~near], plain[~near])
    untouched = covered & (plain == photo).all(axis=2)
    layer = np.zeros_like(photo, np.float64)
    for m, c in zip(masks, colors):
        layer[m] = c
    expected = (1 - alpha) * photo.astype(np.float64) + alpha * layer
    diff = np.abs(masked.astype(np.float64) - expected)[untouched]
    assert diff.max() <= 0.51, diff.max()  # rounded to the nearest value
    assert (masked[untouched] != photo[untouched]).any(axis=1).mean() > 0.95  # really coloured
    return int(untouched.sum())


# ---- visualize ----------------------------------------------------------------------------------------------------

def test_visualize_fills_voc_masks_in_class_colours_and_leaves_the_rest(shared, tmp_path):
    from dsprep.images import read_image
    ds = load_dataset(shared / "voc_sample")
    drawn = drawn_pair(shared / "voc_sample", tmp_path)
    assert len(drawn) == 13
    for rec in ds.records:
        masked, plain = drawn[rec.stem]
        photo = read_image(rec.image_path)
        if rec.stem not in MASKED:  # no masks: the drawing is the one without masks
            np.testing.assert_array_equal(masked, plain)
            continue
        inst = pil_indices(shared / "voc_sample" / "SegmentationObject" / f"{rec.stem}.png")
        masks = []
        for (x0, y0, x1, y1), j in zip(pixel_bounds(rec.boxes, rec.width, rec.height).tolist(), PAIRING[rec.stem]):
            m = np.zeros(inst.shape, bool)  # the instance, as far as its box reaches (the masks' convention)
            m[y0:y1, x0:x1] = inst[y0:y1, x0:x1] == j
            masks.append(m)
        checked = check_blend(masked, plain, photo, masks, [class_color(n) for n in rec.names])
        assert checked > 0.9 * sum(int(m.sum()) for m in masks)


def test_visualize_fills_coco_rle_and_polygons_exactly(shared, tmp_path):
    from dsprep.images import read_image
    root, truth = coco_from_voc_masks(shared, tmp_path / "coco")
    drawn = drawn_pair(root, tmp_path, "--mask-alpha", "0.4")
    assert sorted(drawn) == sorted(MASKED)
    ds = load_dataset(root)
    for rec in ds.records:
        masked, plain = drawn[rec.stem]
        photo = read_image(rec.image_path)
        # RLE objects: the instance masks themselves, to the pixel; polygons: the pixels whose centres are inside
        segs = rec.attrs["segmentation"]
        exact = [centre_mask(s, rec.width, rec.height) if isinstance(s, list) else m
                 for s, (m, _, _) in zip(segs, truth[rec.stem])]
        reach = [centre_mask(s, rec.width, rec.height, True) if isinstance(s, list) else m
                 for s, (m, _, _) in zip(segs, truth[rec.stem])]
        for s, (m, _, rle), e in zip(segs, truth[rec.stem], exact):
            assert rle == isinstance(s, dict)
            if rle:
                np.testing.assert_array_equal(e, m)
            else:  # contour polygons cover the instance up to its border pixels
                assert (e & m).sum() / (e | m).sum() > 0.9
        check_blend(masked, plain, photo, exact, [class_color(n) for n in rec.names], alpha=0.4, reach=reach)


def test_visualize_mask_options(shared, tmp_path):
    root = copy_masked_voc(shared, tmp_path / "voc")
    res = run("visualize", "boxes", root, "--out", tmp_path / "a", "--json", "--only", "car")
    assert json.loads(res.stdout)["counts"]["masks"] == 1 and "1 masks" in res.stderr
    res = run("visualize", "boxes", root, "--out", tmp_path / "b", "--no-masks", "--json")
    assert "masks" not in json.loads(res.stdout)["counts"]
    # outlines: the mask's border pixels take the darkened class colour
    run("visualize", "boxes", root, "--out", tmp_path / "c", "--ext", ".png", "--mask-outlines", "--mask-alpha", "0",
        "--only", "car")
    img = cv2.imread(str(tmp_path / "c" / "2011_000025.png"))
    dark = np.array(class_color("car")) // 2
    assert ((img == dark).all(axis=2)).sum() > 200  # the car's outline, a few hundred pixels long
    # a format without masks: --masks is a usage error; box-only data is drawn as before
    yolo = tmp_path / "yolo"
    run("convert", root, "--to", "yolo", "--out", yolo)
    res = run("visualize", "boxes", yolo, "--out", tmp_path / "d", "--masks", ok=False)
    assert res.exit_code == 2 and "--masks: yolo data sets have no object masks" in res.output


def test_visualize_a_broken_mask_is_one_line_and_skippable(shared, tmp_path):
    root = copy_masked_voc(shared, tmp_path / "voc")
    small = Image.open(root / "SegmentationObject" / "2011_000003.png").resize((250, 169), Image.NEAREST)
    small.save(root / "SegmentationObject" / "2011_000003.png")
    res = run("visualize", "boxes", root, "--out", tmp_path / "a", ok=False)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().splitlines()[-1].startswith("error: ") and "the mask is 250x169" in res.output
    res = run("visualize", "boxes", root, "--out", tmp_path / "b", "--on-error", "skip")
    assert "2 images" in res.output and "1 of 3 inputs skipped" in res.output
    run("visualize", "boxes", root, "--out", tmp_path / "c", "--no-masks")


def test_fill_masks_blends_once_with_the_smaller_mask_on_top():
    img = np.full((6, 8, 3), 100, np.uint8)
    big = np.ones((6, 8), bool)
    small = np.zeros((2, 2), bool)
    small[0, 0] = True
    bounds = np.array([[0, 0, 8, 6], [3, 2, 5, 4]])
    before = img.copy()
    out = fill_masks(img, bounds, [big, small], [(0, 0, 200), (200, 0, 0)], 0.5)
    np.testing.assert_array_equal(img, before)  # the input is not changed
    assert out[2, 3].tolist() == [150, 50, 50]  # the small mask's colour, blended once
    assert out[0, 0].tolist() == [50, 50, 150] and out[3, 4].tolist() == [50, 50, 150]
    np.testing.assert_array_equal(fill_masks(img, bounds, [big, None], [(0, 0, 200)] * 2, 0.0), img)
    assert (fill_masks(img, bounds, [big, None], [(0, 0, 200)] * 2, 1.0) == [0, 0, 200]).all()
    with pytest.raises(ValueError, match="alpha"):
        fill_masks(img, bounds, [big, None], [(0, 0, 200)] * 2, 1.5)


# ---- info ---------------------------------------------------------------------------------------------------------

def test_info_mask_pixels_equal_a_direct_count_of_the_voc_sample(shared):
    ds = load_dataset(shared / "voc_sample")
    expected: dict = {}
    for rec in ds.records:
        if rec.stem not in MASKED:
            continue
        inst = pil_indices(shared / "voc_sample" / "SegmentationObject" / f"{rec.stem}.png")
        for (x0, y0, x1, y1), j, name in zip(pixel_bounds(rec.boxes, rec.width, rec.height).tolist(),
                                             PAIRING[rec.stem], rec.names):
            e = expected.setdefault(name, {"objects": 0, "mask_pixels": 0})
            e["objects"] += 1
            e["mask_pixels"] += int((inst[y0:y1, x0:x1] == j).sum())
    res = run("info", shared / "voc_sample", "--json")
    masks = json.loads(res.stdout)["masks"]
    assert masks["classes"] == expected
    assert masks["images"] == 3 and masks["objects"] == 9
    assert masks["pixels"] == sum(v["mask_pixels"] for v in expected.values())
    text = run("info", shared / "voc_sample").stdout
    assert f"masks: 9 objects in 3 images, {masks['pixels']:,} pixels" in text
    assert f"  bus           2       {expected['bus']['mask_pixels']:,}" in text


def test_info_finds_the_sample_person_whose_mask_overflows_its_box(shared):
    """2011_000006's second person: labelme's mask reaches 7 px left and 10 px right of the exported box."""
    data = json.loads(run("info", shared / "voc_sample", "--json").stdout)
    found = [p for p in data["problems"] if p["kind"].startswith("mask_")]
    assert data["problem_counts"]["mask_outside_box"] == 1 and len(found) == 1
    rec = [r for r in load_dataset(shared / "voc_sample").records if r.stem == "2011_000006"][0]
    x0, y0, x1, y1 = pixel_bounds(rec.boxes, rec.width, rec.height)[1].tolist()
    inst = pil_indices(shared / "voc_sample" / "SegmentationObject" / "2011_000006.png") == 2
    near = np.zeros_like(inst)
    near[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = True
    beyond = int((inst & ~near).sum())
    assert found[0]["file"].endswith("Annotations/2011_000006.xml")
    assert found[0]["detail"].startswith(f"object 1 (person): {beyond} mask pixels "
                                         f"({100 * beyond / inst.sum():.1f}% of its mask) lie more than 1 px outside "
                                         f"its box ({x0}, {y0}, {x1}, {y1}")


def test_info_reports_messy_voc_masks(shared, tmp_path):
    root = copy_masked_voc(shared, tmp_path / "voc")
    # the car's box cut short on the right (the XML says xmax 470, the mask goes on to 498)
    xml = root / "Annotations" / "2011_000025.xml"
    xml.write_text(xml.read_text().replace("<xmax>500.0</xmax>", "<xmax>470.0</xmax>"))
    # an object mask saved at half size
    small = Image.open(root / "SegmentationObject" / "2011_000003.png").resize((250, 169), Image.NEAREST)
    small.save(root / "SegmentationObject" / "2011_000003.png")
    data = json.loads(run("info", root, "--json", "--rare-below", "0").stdout)
    got = {(p["kind"], p["file"].rsplit("/", 1)[-1]): p["detail"] for p in data["problems"]}
    assert set(got) == {("mask_outside_box", "2011_000006.xml"), ("mask_outside_box", "2011_000025.xml"),
                        ("mask_unreadable", "2011_000003.xml")}
    inst = pil_indices(root / "SegmentationObject" / "2011_000025.png")
    beyond = int((inst[:, 471:] == 3).sum())  # the car (instance 3) beyond the 1 px ring around x < 470
    assert got[("mask_outside_box", "2011_000025.xml")].startswith(f"object 2 (car): {beyond} mask pixels")
    assert "the mask is 250x169, the image's boxes refer to 500x338" in got[("mask_unreadable", "2011_000003.xml")]
    assert data["problem_counts"] == {"mask_outside_box": 2, "mask_unreadable": 1}
    # the other two images are still counted; the car only as far as its box reaches
    assert data["masks"]["images"] == 2
    car = pil_indices(root / "SegmentationObject" / "2011_000025.png")[166:266, 408:470] == 3
    assert data["masks"]["classes"]["car"] == {"objects": 1, "mask_pixels": int(car.sum())}
    text = run("info", root, "--rare-below", "0").stdout
    assert "mask_unreadable: 1" in text and "mask_outside_box: 2" in text


def test_info_reports_messy_coco_masks(shared, tmp_path):
    mask_api = pytest.importorskip("pycocotools.mask")
    root, truth = coco_from_voc_masks(shared, tmp_path / "coco")
    path = root / "annotations" / "instances_val.json"
    doc = json.loads(path.read_text())
    anns = doc["annotations"]
    # an RLE of another image's size (pycocotools would read it against the wrong grid)
    enc = mask_api.encode(np.asfortranarray(np.ones((100, 120), np.uint8)))
    anns[0]["segmentation"] = {"size": enc["size"], "counts": enc["counts"].decode("ascii")}
    # an empty RLE (some exporters write one for an object whose polygon was deleted)
    h, w = doc["images"][1]["height"], doc["images"][1]["width"]
    empty = mask_api.encode(np.asfortranarray(np.zeros((h, w), np.uint8)))
    i = next(k for k, a in enumerate(anns) if a["image_id"] == 2)
    anns[i]["segmentation"] = {"size": empty["size"], "counts": empty["counts"].decode("ascii")}
    # a polygon object whose bbox was moved 40 px right of its polygon
    j = next(k for k, a in enumerate(anns) if a["image_id"] == 3 and isinstance(a["segmentation"], list))
    anns[j]["bbox"][0] += 40
    path.write_text(json.dumps(doc))
    # COCO keeps masks as shapes: read (rasterized) only when asked, and the report says how to ask
    plain = run("info", root, "--rare-below", "0").stdout
    assert "masks: not read (coco shapes; --masks" in plain and "mask_empty" not in plain
    data = json.loads(run("info", root, "--json", "--rare-below", "0", "--masks").stdout)
    got = sorted((p["kind"], p["detail"].split(":")[0]) for p in data["problems"])
    assert got == [("mask_empty", f"annotation id {anns[i]['id']} ({VOC_NAMES[anns[i]['category_id']]})"),
                   ("mask_outside_box", f"annotation id {anns[j]['id']} ({VOC_NAMES[anns[j]['category_id']]})"),
                   ("mask_unreadable", "annotation id 1 (person)")], data["problems"]
    detail = {p["kind"]: p["detail"] for p in data["problems"]}
    assert "an RLE mask of size [100, 120] (height, width) on a 500x338 image" in detail["mask_unreadable"]
    # the moved box: every polygon pixel more than 1 px left of the box is outside it (pixel centres on the
    # contour's diagonal steps: inside or not by the rasterizer's tie rule)
    seg = anns[j]["segmentation"]
    x0, y0, bw, bh = anns[j]["bbox"]
    near = np.zeros((375, 500), bool)
    near[max(y0 - 1, 0):y0 + bh + 1, max(x0 - 1, 0):x0 + bw + 1] = True
    low, high = (int((centre_mask(seg, 500, 375, edge) & ~near).sum()) for edge in (False, True))
    count = int(detail["mask_outside_box"].split(": ")[1].split()[0])
    assert low <= count <= high and high - low < 0.01 * high


def test_info_reads_no_masks_for_box_only_data_or_with_no_masks(shared, tmp_path, monkeypatch):
    import dsprep.dataset
    voc = write_voc_tree(tmp_path / "voc", {"a": (60, 40, [("cat", (11, 6, 30, 25))])})
    root = copy_masked_voc(shared, tmp_path / "masked")
    yolo = tmp_path / "yolo"
    run("convert", root, "--to", "yolo", "--out", yolo)

    def refuse(*a, **k):
        raise AssertionError("masks read")
    assert json.loads(run("info", voc, "--json").stdout)["masks"] is None  # VOC without SegmentationObject
    for name in ("p.h5", "p.pkl"):  # (packing a VOC tree asks for its masks: a file test per image)
        run("voc-to-h5" if name.endswith(".h5") else "voc-to-pickle", voc, tmp_path / name, "--size", "64x64")
    monkeypatch.setattr(dsprep.dataset, "object_masks", refuse)
    assert json.loads(run("info", yolo, "--json").stdout)["masks"] is None  # a box-only format: never asked
    data = json.loads(run("info", root, "--json", "--no-masks").stdout)
    assert data["masks"] is None and "masks:" not in run("info", root, "--no-masks").stdout
    res = run("info", yolo, "--masks", ok=False)
    assert res.exit_code == 2 and "--masks: yolo data sets have no object masks" in res.output
    for name in ("p.h5", "p.pkl"):  # packed files (a pickle's data set says format "pickle")
        assert json.loads(run("info", tmp_path / name, "--json").stdout)["masks"] is None
        assert run("visualize", "boxes", tmp_path / name, "--out", tmp_path / f"vis_{name}", "--masks",
                   ok=False).exit_code == 2


def test_info_masks_with_two_workers_give_the_same_report(shared, tmp_path):
    root = copy_masked_voc(shared, tmp_path / "voc")
    one = json.loads(run("info", root, "--json").stdout)
    two = json.loads(run("info", root, "--json", "--workers", "2").stdout)
    assert one == two and one["masks"]["objects"] == 9


# ---- the growing windows ------------------------------------------------------------------------------------------

def _convex(rng, w, h):
    pts = rng.uniform([5, 5], [w - 5, h - 5], size=(12, 2))
    hull = shapely.convex_hull(shapely.multipoints(pts))
    return np.asarray(hull.exterior.coords)[:-1]


@pytest.mark.parametrize("seed", range(6))
def test_pixels_beyond_boxes_equal_the_whole_mask_count(seed):
    """Polygons (COCO objects) whose boxes were cut or moved: the count of mask pixels beyond the ring around each
    box, found by growing windows, equals the count over the whole image (one convex piece each)."""
    from dsprep.jobs.masks import beyond_boxes
    rng = np.random.default_rng(seed)
    w, h = 160, 120
    rings = [_convex(rng, w, h) for _ in range(5)]
    true_boxes = np.array([[r[:, 0].min(), r[:, 1].min(), r[:, 0].max(), r[:, 1].max()] for r in rings])
    size = true_boxes[:, 2:] - true_boxes[:, :2]
    cut = rng.uniform(0, 0.35, size=(5, 4)) * np.concatenate([size, size], axis=1)
    boxes = true_boxes + cut * np.array([1, 1, -1, -1])
    rec = ImageRecord("x.jpg", w, h, boxes=boxes, names=["a"] * 5,
                      attrs={"segmentation": [[r.reshape(-1).tolist()] for r in rings]})
    masks = object_masks("coco", rec)
    bounds = pixel_bounds(boxes, w, h)
    outside, whole, capped = beyond_boxes("coco", rec, masks, bounds)
    for k, r in enumerate(rings):
        full = centre_mask([r], w, h)
        x0, y0, x1, y1 = bounds[k].tolist()
        near = np.zeros_like(full)
        near[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = True
        assert not capped[k]
        assert whole[k] == full.sum() and outside[k] == (full & ~near).sum()


def test_grow_windows_and_edges():
    m = np.zeros((4, 5), bool)
    m[0, 2] = m[3, 4] = True
    assert maskstats.edges_reached(m).tolist() == [False, True, True, True]
    assert maskstats.edges_reached(np.zeros((0, 3), bool)).tolist() == [False] * 4
    win = np.array([[10, 20, 60, 40], [0, 0, 100, 50]])
    reach = np.array([[True, False, True, True], [True, True, True, True]])
    grown = maskstats.grow_windows(win, reach, 100, 50)
    assert grown.tolist() == [[5, 20, 65, 42], [0, 0, 100, 50]]  # a tenth (at least 2 px), clipped to the image
    assert maskstats.can_grow(win, reach, 100, 50).tolist() == [[True, False, True, True], [False] * 4]
    assert maskstats.outside_count(np.ones((6, 6), bool), (0, 0, 6, 6), (2, 2, 4, 4), 6, 6) == 36 - 16
