"""tile / tile-dota cut masks with the pixels: VOC's palette mask files (the real VOC sample), COCO segmentations
(polygons as contour tracers write them, RLE as pycocotools encodes it), labelme polygons; object masks of the tiles
read back equal to the source's cut by each tile's window."""
import json
import re
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image
from click.testing import CliRunner

from dsprep.cli import main
from dsprep.dataset import load_dataset, object_masks
from dsprep.geometry import pixel_bounds
from dsprep.ops.maskcut import rate_index, resize_index, tile_instance_lut
from helpers import full_masks, coco_from_voc_masks, gradient

TILE = re.compile(r"^(?P<stem>.+)__(?P<rate>[^_]+)__(?P<left>\d+)___(?P<up>\d+)$")
MASKED = ("2011_000003", "2011_000006", "2011_000025")


def run(*args, ok=True):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def png_values(path):
    """The stored indices and the palette of a palette PNG, read by PIL (not by dsprep)."""
    with Image.open(path) as im:
        assert im.mode == "P", path
        return np.array(im), np.array(im.getpalette()[:768], np.uint8).reshape(-1, 3)


def origin(stem):
    m = TILE.match(stem)
    return m.group("stem"), float(m.group("rate")), int(m.group("left")), int(m.group("up"))


def window(values, left, up, h, w):
    """``values[up:up+h, left:left+w]`` padded with 0 where the window leaves the image."""
    out = np.zeros((h, w), values.dtype)
    part = values[up:up + h, left:left + w]
    out[:part.shape[0], :part.shape[1]] = part
    return out


def check_object_masks(source, tiles, scale=None):
    """Every tile object with a mask has the mask of one source object of its class, cut by the tile's window
    (whole: nothing of it lies outside the object's box in the tile), and every source object with mask pixels in
    a tile's window is one of the tile's objects.  ``scale(rec, k, mask, rate)`` gives object ``k``'s mask on the
    image resized by ``rate``, for tiles cut at another rate.  Returns the number of tile objects checked."""
    src = {r.stem: r for r in source.records}
    full = {stem: full_masks(source.format, r) for stem, r in src.items()}
    checked = 0
    for rec in tiles.records:
        stem, rate, left, up = origin(rec.stem)
        s = src[stem]
        cut = [None if m is None else window(m if rate == 1 else scale(s, k, m, rate), left, up, rec.height,
                                             rec.width) for k, m in enumerate(full[stem])]
        got = object_masks(tiles.format, rec) or [None] * len(rec)
        bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
        matched = set()
        for j, (m, (x0, y0, x1, y1)) in enumerate(zip(got, bounds)):
            if m is None:
                continue
            same = [k for k, c in enumerate(cut) if c is not None and s.names[k] == rec.names[j]
                    and np.array_equal(c[y0:y1, x0:x1], m) and c[y0:y1, x0:x1].sum() == c.sum()]
            assert same, f"{rec.stem}: object {j} ({rec.names[j]}) is no source object's mask cut by the window"
            matched.update(same)
            checked += 1
        reaching = {k for k, c in enumerate(cut) if c is not None and c.any()}
        assert reaching <= matched, f"{rec.stem}: source objects {sorted(reaching - matched)} lost"
    return checked


# ---- the pure pieces ----------------------------------------------------------------------------------------------

def test_nearest_index_is_opencvs_except_on_exact_borders():
    """Fitting n pixels to m: the source pixel under each destination centre, as OpenCV's INTER_NEAREST_EXACT picks
    it, except where a centre falls exactly on a border between two source pixels (OpenCV's 16-bit fixed point
    goes either way there; dsprep takes the pixel starting at the border)."""
    rng = np.random.default_rng(3)
    ties = 0
    for _ in range(200):
        n, m = int(rng.integers(1, 3000)), int(rng.integers(1, 3000))
        ref = cv2.resize(np.repeat(np.arange(n, dtype=np.float32)[None], 2, 0), (m, 2),
                         interpolation=cv2.INTER_NEAREST_EXACT)[0].astype(np.int64)
        got = resize_index(0, m, n, m)
        d = np.arange(m)
        on_border = ((2 * d + 1) * n) % (2 * m) == 0
        assert np.array_equal(got[~on_border], ref[~on_border]), (n, m)
        assert np.all(np.abs(got - ref)[on_border] <= 1)
        ties += int((got != ref).sum())
    assert ties > 0  # the border cases were met
    assert rate_index(0, 6, 11, 0.5).tolist() == [1, 3, 5, 7, 9, 10]  # (2d + 1, clipped to the image)


def test_instance_lut_numbers_the_tiles_objects_first():
    present = np.zeros(256, bool)
    present[[0, 2, 3, 7, 9, 255]] = True
    lut = tile_instance_lut(present, np.array([7, 0, 3]))  # objects 0 and 2 have instances 7 and 3
    assert lut[[0, 255, 7, 3, 2, 9]].tolist() == [0, 255, 1, 3, 2, 4]  # the others: the free ids 2, 4
    # 300 objects, the last ones with instances: ids beyond 254 cannot be j + 1, they take free ids
    kept = np.zeros(300, np.int64)
    kept[[0, 299, 298]] = [5, 6, 7]
    present[:] = False
    present[[5, 6, 7, 8]] = True
    lut = tile_instance_lut(present, kept)
    assert lut[[5, 7, 6, 8]].tolist() == [1, 2, 3, 4] and len(set(lut[1:255].tolist()) - {0}) <= 254


# ---- VOC mask files ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pad", [False, True])
def test_voc_masks_cut_with_the_tiles(shared, tmp_path, pad):
    """The real VOC sample (three palette masks drawn apart from the boxes, one with an instance no box has): each
    tile's SegmentationClass is the source's cut (padding 0), its SegmentationObject the same regions renumbered,
    the palette kept; object_masks of the tiles give the source objects' masks cut; the Segmentation list follows."""
    src = shared / "voc_sample"
    out = tmp_path / "t"
    res = run("tile", src, "--out", out, "--size", "256", "--gap", "56", *(["--pad"] if pad else []), "--json", "-q")
    assert f'"mask_tiles": {3 * 6}' in res.output  # 500 x 375 at 256 / 56: 3 x 2 tiles each
    tiles = sorted(p.stem for p in (out / "SegmentationObject").iterdir())
    assert sorted(p.stem for p in (out / "SegmentationClass").iterdir()) == tiles
    assert {origin(t)[0] for t in tiles} == set(MASKED)
    tiles_read = {r.stem: r for r in load_dataset(out).records}
    for tile in tiles:
        stem, _, left, up = origin(tile)
        cls, cls_pal = png_values(out / "SegmentationClass" / f"{tile}.png")
        inst, inst_pal = png_values(out / "SegmentationObject" / f"{tile}.png")
        src_cls, src_cls_pal = png_values(src / "SegmentationClass" / f"{stem}.png")
        src_inst, src_inst_pal = png_values(src / "SegmentationObject" / f"{stem}.png")
        image = cv2.imread(str(out / "JPEGImages" / f"{tile}.jpg"))
        assert cls.shape == inst.shape == image.shape[:2] == ((256, 256) if pad else cls.shape)
        h, w = cls.shape
        assert np.array_equal(cls, window(src_cls, left, up, h, w))  # pixel-exact, padding 0
        assert np.array_equal(cls_pal[:len(src_cls_pal)], src_cls_pal)
        assert np.array_equal(inst_pal[:len(src_inst_pal)], src_inst_pal)
        was = window(src_inst, left, up, h, w)
        assert np.array_equal(inst == 0, was == 0) and np.array_equal(inst == 255, was == 255)
        pairs = np.unique(np.stack([was.ravel(), inst.ravel()]), axis=1)  # the renumbering is one to one
        assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]
        rec = tiles_read[tile]
        bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
        for j, m in enumerate(object_masks("voc", rec) or []):  # the tile's object j is instance j + 1
            x0, y0, x1, y1 = bounds[j]
            assert m is None or np.array_equal(m, (inst == j + 1)[y0:y1, x0:x1])
    assert check_object_masks(load_dataset(src), load_dataset(out)) >= 30
    listed = (out / "ImageSets" / "Segmentation" / "trainval.txt").read_text().split()
    assert listed == tiles


def test_voc_masks_at_another_rate(shared, tmp_path):
    """--rate 0.5: the mask files are the source's resized by nearest neighbour on the resized image's pixel grid
    (the pixel under each centre: every centre lies on a border between two source pixels, the one starting there
    is taken: source 2d + 1, clipped to the image), then cut."""
    src = shared / "voc_sample"
    out = tmp_path / "t"
    run("tile", src, "--out", out, "--size", "200", "--gap", "20", "--rate", "0.5", "-q")
    tiles = sorted(p.stem for p in (out / "SegmentationClass").iterdir())
    assert tiles and all(origin(t)[1] == 0.5 for t in tiles)

    def half(values):  # at the size cv2.resize(fx=0.5) gives (rounded, ties to even)
        h, w = values.shape
        rows = np.minimum(2 * np.arange(int(round(h / 2))) + 1, h - 1)
        cols = np.minimum(2 * np.arange(int(round(w / 2))) + 1, w - 1)
        return values[rows][:, cols]
    for tile in tiles:
        stem, _, left, up = origin(tile)
        src_cls, _ = png_values(src / "SegmentationClass" / f"{stem}.png")
        cls, _ = png_values(out / "SegmentationClass" / f"{tile}.png")
        assert np.array_equal(cls, window(half(src_cls), left, up, *cls.shape))
    assert check_object_masks(load_dataset(src), load_dataset(out),
                              lambda rec, k, m, rate: half(m.astype(np.uint8)) > 0) >= 6


def _voc_with_masks(shared, root, write=None):
    """The three VOC sample images with masks as a VOC tree of their own; ``write(path without extension, pixels)``
    writes each image in another form (returning its file name), else the JPEGs are copied."""
    src = shared / "voc_sample"
    for sub in ("Annotations", "JPEGImages", "SegmentationClass", "SegmentationObject"):
        (root / sub).mkdir(parents=True)
    for stem in MASKED:
        shutil.copy(src / "SegmentationClass" / f"{stem}.png", root / "SegmentationClass")
        shutil.copy(src / "SegmentationObject" / f"{stem}.png", root / "SegmentationObject")
        xml = (src / "Annotations" / f"{stem}.xml").read_text()
        if write is None:
            shutil.copy(src / "JPEGImages" / f"{stem}.jpg", root / "JPEGImages")
        else:
            name = write(root / "JPEGImages" / stem, cv2.imread(str(src / "JPEGImages" / f"{stem}.jpg")))
            xml = xml.replace(f"{stem}.jpg", name)
        (root / "Annotations" / f"{stem}.xml").write_text(xml)
    return root


def test_voc_masks_of_a_tiff_read_by_windows(shared, tmp_path):
    """A tiled TIFF is read window by window; its mask files are decoded whole and cut the same: the tiles' mask
    files equal those cut from the same image as a PNG, byte for byte."""
    tifffile = pytest.importorskip("tifffile")
    png, tif = tmp_path / "png", tmp_path / "tif"

    def as_png(path, img):
        cv2.imwrite(str(path) + ".png", img)
        return path.name + ".png"

    def as_tiff(path, img):
        tifffile.imwrite(str(path) + ".tif", img[..., ::-1], photometric="rgb", tile=(64, 64))
        return path.name + ".tif"
    _voc_with_masks(shared, png, as_png)
    _voc_with_masks(shared, tif, as_tiff)
    from dsprep.jobs.tile import plan_image
    assert plan_image(str(tif / "JPEGImages" / "2011_000003.tif")).layout is not None
    for root in (png, tif):
        run("tile", root, "--out", tmp_path / f"out_{root.name}", "--size", "128", "--gap", "16", "--ext", ".png",
            "-q")
    a, b = tmp_path / "out_png", tmp_path / "out_tif"
    names = sorted(p.relative_to(a) for p in a.rglob("Segmentation*/*.png"))
    assert len(names) == 2 * len(list((a / "JPEGImages").iterdir())) > 60  # two maps a tile
    assert names == sorted(p.relative_to(b) for p in b.rglob("Segmentation*/*.png"))
    for rel in names:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    for rel in sorted(p.relative_to(a) for p in (a / "Annotations").iterdir()):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_tile_dota_cuts_mask_files_beside_the_images(shared, tmp_path):
    """tile-dota on a DOTA folder with VOC-style mask files: the mask files are cut under the tiles' names; the
    tile's label line j is instance j + 1 of its SegmentationObject (the instance its source object has)."""
    src = shared / "voc_sample"
    root = tmp_path / "dota"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    for sub in ("SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        shutil.copytree(src / sub, root / sub)
    voc = {r.stem: r for r in load_dataset(src).records}
    for stem in MASKED:
        cv2.imwrite(str(root / "images" / f"{stem}.png"), cv2.imread(str(src / "JPEGImages" / f"{stem}.jpg")))
        lines = [" ".join(f"{v:g}" for v in (x0, y0, x1, y0, x1, y1, x0, y1)) + f" {n} 0"
                 for (x0, y0, x1, y1), n in zip(np.trunc(voc[stem].boxes).tolist(), voc[stem].names)]
        (root / "labelTxt" / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
    out = tmp_path / "t"
    run("tile-dota", root, "--out", out, "--size", "256", "--gap", "56", "-q")
    tiles = sorted(p.stem for p in (out / "images").iterdir())
    assert sorted(p.stem for p in (out / "SegmentationObject").iterdir()) == tiles
    checked = 0
    for tile in tiles:
        stem, _, left, up = origin(tile)
        rec = voc[stem]
        cls, _ = png_values(out / "SegmentationClass" / f"{tile}.png")
        src_cls, _ = png_values(src / "SegmentationClass" / f"{stem}.png")
        assert np.array_equal(cls, window(src_cls, left, up, *cls.shape))
        inst, _ = png_values(out / "SegmentationObject" / f"{tile}.png")
        src_inst, _ = png_values(src / "SegmentationObject" / f"{stem}.png")
        was = window(src_inst, left, up, *inst.shape)
        # the devkit keeps, in order, every object whose box overlaps [left, min(left + 256, W - 1)] x ...
        b = np.trunc(rec.boxes)
        right, down = min(left + 256, rec.width - 1), min(up + 256, rec.height - 1)
        kept = np.flatnonzero((b[:, 2] > left) & (b[:, 0] < right) & (b[:, 3] > up) & (b[:, 1] < down))
        assert len((out / "labelTxt" / f"{tile}.txt").read_text().splitlines()) == len(kept)
        masks = object_masks("voc", rec)
        bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
        for j, k in enumerate(kept):
            if masks[k] is None:
                continue
            x0, y0, x1, y1 = bounds[k]
            own = int(np.unique(src_inst[y0:y1, x0:x1][masks[k]])[0])  # the source object's instance
            assert np.array_equal(inst == j + 1, was == own), (tile, j)
            checked += 1
    assert checked >= 30
    assert (out / "ImageSets" / "Segmentation" / "trainval.txt").read_text().split() == tiles


def test_voc_masks_into_coco_tiles_as_segmentations(shared, tmp_path):
    """tile --to coco: each object's mask cut becomes its segmentation as convert writes VOC masks (its outline, or
    an RLE pycocotools decodes alike); what the mask files hold beyond the objects is counted once per image."""
    mask_util = pytest.importorskip("pycocotools.mask")
    src = _voc_with_masks(shared, tmp_path / "voc")
    res = run("tile", src, "--out", tmp_path / "c", "--size", "256", "--gap", "56", "--to", "coco", "--json", "-q")
    tiles = load_dataset(tmp_path / "c")
    assert check_object_masks(load_dataset(src), tiles) >= 30
    kinds = set()
    for rec in tiles.records:
        for seg, m in zip(rec.attrs["segmentation"], full_masks("coco", rec)):
            kinds.add(type(seg))
            if isinstance(seg, dict):
                assert isinstance(seg["counts"], str)
                assert np.array_equal(mask_util.decode(seg).astype(bool), m)
    assert kinds == {list, dict}
    counts = json.loads(res.stdout)["counts"]
    whole = json.loads(run("convert", src, "--out", tmp_path / "w", "--to", "coco", "--json", "-q").stdout)["counts"]
    kinds = ("mask_instance_without_object", "mask_cut_to_box", "mask_void_dropped")
    assert counts["mask_instance_without_object"] >= 1  # the bottle of 2011_000003 no XML object names
    assert {k: counts.get(k) for k in kinds} == {k: whole.get(k) for k in kinds}  # as convert counts them


# ---- segmentations --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pad", [False, True])
def test_coco_polygons_and_rle_clipped_exactly(shared, tmp_path, pad):
    """COCO polygons are clipped to each tile and RLE masks cropped (compressed strings stay strings): rasterized,
    every tile object is its source object's mask cut by the window, IoU 1; pycocotools decodes the RLEs alike."""
    mask_util = pytest.importorskip("pycocotools.mask")
    ann = coco_from_voc_masks(shared / "voc_sample", tmp_path / "coco")
    out = tmp_path / "t"
    run("tile", ann, "--out", out, "--size", "256", "--gap", "56", *(["--pad"] if pad else []), "-q")
    source, tiles = load_dataset(ann), load_dataset(out)
    assert check_object_masks(source, tiles) >= 30
    kinds = set()
    for rec in tiles.records:
        for seg, m in zip(rec.attrs["segmentation"], full_masks("coco", rec)):
            if isinstance(seg, dict):
                kinds.add("rle")
                assert isinstance(seg["counts"], str) and seg["size"] == [rec.height, rec.width]
                assert np.array_equal(mask_util.decode(seg).astype(bool), m)
            else:
                kinds.add("polygon")
                xy = np.concatenate([np.reshape(r, (-1, 2)) for r in seg])
                assert xy.min() >= 0 and (xy[:, 0].max() <= rec.width) and (xy[:, 1].max() <= rec.height)
    assert kinds == {"rle", "polygon"}
    if pad:
        assert all((r.width, r.height) == (256, 256) for r in tiles.records)


def test_labelme_polygons_clipped_and_rate(tmp_path):
    """labelme polygons cut by the tiles at rate 0.5: rasterized, each tile object is the source polygon scaled by
    the rate and cut by the window, a ring that crosses itself (a star) included; an object whose polygon does not
    reach a tile its box reaches is left out there (remnant_dropped)."""
    from dsprep.formats.shapes import rings_mask
    root = tmp_path / "lm"
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), gradient(400, 300))
    points = [
        [[10, 10], [390, 10], [390, 40], [40, 40], [40, 290], [10, 290]],   # an L: its box reaches tiles it does not
        [[100.25, 120.5], [300.75, 150.5], [130.5, 280.25], [200.5, 90.75], [270.25, 280.5]],  # a star
        [[150.3, 60.7], [250.9, 70.2], [230.4, 200.6], [160.1, 180.8]],
    ]
    doc = {"version": "5.4.1", "flags": {}, "imagePath": "a.png", "imageData": None, "imageHeight": 300,
           "imageWidth": 400, "shapes": [{"label": n, "points": p, "group_id": None, "shape_type": "polygon",
                                          "flags": {}, "description": ""}
                                         for n, p in zip(("ell", "star", "blob"), points)]}
    (root / "a.json").write_text(json.dumps(doc))
    out = tmp_path / "t"
    res = run("tile", root, "--out", out, "--size", "64", "--gap", "0", "--rate", "0.5", "--json", "-q")
    source, tiles = load_dataset(root), load_dataset(out)
    assert tiles.format == "labelme"

    def scale(rec, k, m, rate):  # the source polygon rasterized on the resized image
        return rings_mask([np.asarray(points[k], float) * rate], (0, 0, 200, 150))
    assert check_object_masks(source, tiles, scale) >= 12
    assert json.loads(res.stdout)["counts"]["remnant_dropped"] >= 1
    stars = [r.attrs["segmentation"][r.names.index("star")] for r in tiles.records if "star" in r.names]
    assert stars and all(isinstance(s, list) for s in stars)  # polygons, the pieces the even-odd rule fills
    assert not any("ell" in r.names for r in tiles.records if origin(r.stem)[2] >= 64 and origin(r.stem)[3] >= 64)


def test_a_cut_piece_with_a_hole_becomes_a_mask(tmp_path):
    """A keyhole ring (a square with a slit to a square hole: it touches itself) cut by a tile border leaves a
    piece with a hole, which rings cannot hold: the tile's object is an RLE of exactly the source's pixels."""
    root = tmp_path / "coco"
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), gradient(200, 100))
    key = [20, 10, 180, 10, 180, 90, 20, 90, 20, 50, 30, 50, 30, 70, 60, 70, 60, 30, 30, 30, 30, 50, 20, 50]
    (root / "ann.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 100}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 10, 160, 80], "area": 8000,
                         "iscrowd": 0, "segmentation": [key]}],
        "categories": [{"id": 1, "name": "frame"}]}))
    run("tile", root / "ann.json", "--out", tmp_path / "t", "--size", "100", "--gap", "0", "-q")
    tiles = load_dataset(tmp_path / "t")
    segs = {r.stem: r.attrs["segmentation"][0] for r in tiles.records}
    assert isinstance(segs["a__1__0___0"], dict)  # the left half holds the hole
    assert isinstance(segs["a__1__100___0"], list)
    assert check_object_masks(load_dataset(root / "ann.json"), tiles) == 2


def test_segmentation_into_a_format_without_them_is_counted(shared, tmp_path):
    pytest.importorskip("pycocotools")
    ann = coco_from_voc_masks(shared / "voc_sample", tmp_path / "coco")
    res = run("tile", ann, "--out", tmp_path / "y", "--size", "256", "--gap", "56", "--to", "yolo", "--json", "-q")
    assert json.loads(res.stdout)["counts"]["segmentation_dropped"] >= 30


def test_help_mentions_masks():
    for cmd in ("tile", "tile-dota", "voc-to-h5", "voc-to-pickle"):
        assert "mask" in run(cmd, "--help").output.lower(), cmd


@pytest.mark.parametrize("command", ["tile", "tile-dota"])
def test_a_broken_mask_file_is_one_line_naming_it(shared, tmp_path, command):
    """A mask of the wrong size (or not a PNG) fails the run in one line naming the file; with --on-error skip the
    image is listed and none of its tiles is written."""
    src = shared / "voc_sample"
    if command == "tile":
        root = _voc_with_masks(shared, tmp_path / "voc")
    else:
        root = tmp_path / "dota"
        (root / "images").mkdir(parents=True)
        for sub in ("SegmentationClass", "SegmentationObject"):
            shutil.copytree(src / sub, root / sub)
        for stem in MASKED:
            shutil.copy(src / "JPEGImages" / f"{stem}.jpg", root / "images")
    bad = root / "SegmentationObject" / "2011_000006.png"
    Image.fromarray(np.zeros((10, 12), np.uint8), mode="L").save(bad)
    res = run(command, root, "--out", tmp_path / "t", "--size", "256", "--gap", "56", ok=False)
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert f"{bad}: the mask is 12x10" in res.output
    assert not (tmp_path / "t").exists()
    res = run(command, root, "--out", tmp_path / "s", "--size", "256", "--gap", "56", "--on-error", "skip")
    assert "skipped" in res.output and str(bad) in res.output
    names = {p.name for p in (tmp_path / "s").rglob("*.*") if p.is_file()}
    assert not any(n.startswith("2011_000006") for n in names)
    assert any(n.startswith("2011_000003") for n in names)


def test_the_sources_labelmap_goes_with_the_mask_files(shared, tmp_path):
    """A VOC tree whose labelmap.txt says what its class values are: the tiles' mask files keep the values, so the
    tiles get the same labelmap.txt (their readers then name the classes alike)."""
    from dsprep.formats.vocmasks import VOC_CLASSES, labelmap_text
    src = _voc_with_masks(shared, tmp_path / "voc")
    (src / "labelmap.txt").write_text(labelmap_text(list(VOC_CLASSES[1:])))
    run("tile", src, "--out", tmp_path / "t", "--size", "256", "--gap", "56", "-q")
    assert (tmp_path / "t" / "labelmap.txt").read_bytes() == (src / "labelmap.txt").read_bytes()
    assert check_object_masks(load_dataset(src), load_dataset(tmp_path / "t")) >= 30

