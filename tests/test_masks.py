"""Object masks through the format registry: VOC SegmentationObject/SegmentationClass, DOTA quads, the dispatch."""
import shutil
import struct
import zlib

import cv2
import numpy as np
import pytest
import shapely

from dsprep import dataset
from dsprep.crop import pixel_bounds
from dsprep.dataset import load_dataset, object_masks
from dsprep.vocmasks import encode_palette_png, voc_palette
from dsprep.vocmasks import colors_to_indices, instance_table, mask_indices, match_instances
from helpers import with_exif_orientation, write_voc_tree


# ---- a slow, obviously correct PNG reader and writer (the references) ---------------------------------------------

def _chunks(data):
    pos, out = 8, []
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        out.append((kind, data[pos + 8:pos + 8 + n]))
        pos += 12 + n
    return out


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def reference_png_values(data):
    """The stored sample values of a non-interlaced grey or palette PNG, one Python step per byte."""
    chunks = _chunks(data)
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert ctype in (0, 3) and interlace == 0
    raw = zlib.decompress(b"".join(v for k, v in chunks if k == b"IDAT"))
    stride = (w * depth + 7) // 8
    prev = [0] * stride
    values = []
    for y in range(h):
        ftype = raw[y * (stride + 1)]
        line = list(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 1] if i >= 1 else 0
            b, c = prev[i], prev[i - 1] if i >= 1 else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][ftype]
            line[i] = (line[i] + pred) & 0xFF
        row = []
        for i in range(w):
            bit = i * depth
            byte = line[bit // 8]
            row.append((byte >> (8 - depth - bit % 8)) & ((1 << depth) - 1))
        values.append(row)
        prev = line
    return np.array(values, np.uint8)


def write_png(values, depth, ctype, filters, palette=None):
    """A PNG of ``values`` with bit depth ``depth``, colour type 0 or 3, row filters cycling through ``filters``."""
    h, w = values.shape
    stride = (w * depth + 7) // 8
    rows, prev = [], [0] * stride
    for y in range(h):
        packed = [0] * stride
        for x in range(w):
            bit = x * depth
            packed[bit // 8] |= int(values[y, x]) << (8 - depth - bit % 8)
        ftype = filters[y % len(filters)]
        out = []
        for i in range(stride):
            a = packed[i - 1] if i >= 1 else 0
            b, c = prev[i], prev[i - 1] if i >= 1 else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][ftype]
            out.append((packed[i] - pred) & 0xFF)
        rows.append(bytes([ftype] + out))
        prev = packed

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
    if ctype == 3:
        body += chunk(b"PLTE", bytes(palette)) + chunk(b"tRNS", bytes([0] * (len(palette) // 3)))
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")


# ---- decoding mask values ---------------------------------------------------------------------------------------

def test_palette_masks_decode_to_their_stored_values(shared):
    """VOC's palette PNGs give their stored indices (not their colours), as the slow reader says."""
    files = sorted((shared / "voc_sample").glob("Segmentation*/*.png"))
    assert len(files) == 6
    for path in files:
        data = path.read_bytes()
        np.testing.assert_array_equal(mask_indices(data, str(path)), reference_png_values(data))


@pytest.mark.parametrize("depth,ctype,filters", [(8, 3, [0, 1, 2, 3, 4]), (4, 3, [4, 3]), (2, 3, [1]),
                                                 (1, 3, [2]), (8, 0, [4, 1]), (4, 0, [0])])
def test_every_bit_depth_and_filter(depth, ctype, filters):
    rng = np.random.default_rng(depth * 10 + ctype)
    values = rng.integers(0, 1 << depth, (13, 21)).astype(np.uint8)
    values[3:9, 4:15] = (1 << depth) - 1  # runs, as masks have
    palette = rng.integers(0, 256, 3 * (1 << depth)).tolist() if ctype == 3 else None
    if palette is not None:
        palette[:6] = [7, 7, 7, 7, 7, 7]  # two entries with the same colour: values must stay apart
    data = write_png(values, depth, ctype, filters, palette)
    np.testing.assert_array_equal(reference_png_values(data), values)  # the reference reads its own writer
    np.testing.assert_array_equal(mask_indices(data), values)


def test_rgb_masks_are_mapped_through_the_palette(shared):
    """voc_edge_cases saves its masks as RGB: instance 1 everywhere, class 2 (bicycle) everywhere."""
    root = shared / "voc_edge_cases" / "datumaro" / "voc_dataset1"
    obj = mask_indices((root / "SegmentationObject" / "2007_000001.png").read_bytes())
    cls = mask_indices((root / "SegmentationClass" / "2007_000001.png").read_bytes())
    assert obj.shape == (10, 20) and (obj == 1).all() and (cls == 2).all()
    pal = voc_palette()
    rgb = pal[np.array([[0, 1], [15, 255]])]
    np.testing.assert_array_equal(colors_to_indices(rgb, pal), [[0, 1], [15, 255]])
    rgb[0, 0] = (1, 2, 3)
    with pytest.raises(Exception, match=r"pixel \(0, 0\) has colour \(1, 2, 3\)"):
        colors_to_indices(rgb, pal, "m.png")


# ---- VOC object masks -------------------------------------------------------------------------------------------

def _instances(shared, stem):
    return reference_png_values((shared / "voc_sample" / "SegmentationObject" / f"{stem}.png").read_bytes())


def test_voc_sample_masks_match_their_objects(shared):
    """Object k takes instance k + 1 when class and box agree; labelme numbered 2011_000006 its own way (instance 4
    is a chair, the 4th person is instance 5), and 2011_000003's bottle (instance 3) has no object."""
    ds = load_dataset(shared / "voc_sample")
    expected = {"2011_000003": [1, 2], "2011_000006": [1, 2, 3, 5], "2011_000025": [1, 2, 3]}
    seen = set()
    for rec in ds.records:
        masks = object_masks("voc", rec)
        if rec.stem not in expected:
            assert masks is None  # no SegmentationObject file
            continue
        seen.add(rec.stem)
        inst = _instances(shared, rec.stem)
        bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
        assert len(masks) == len(rec)
        for m, i, (x0, y0, x1, y1) in zip(masks, expected[rec.stem], bounds):
            np.testing.assert_array_equal(m, inst[y0:y1, x0:x1] == i)
    assert seen == set(expected)


def test_class_check_refuses_a_mismatched_instance(shared):
    """voc_dataset1's instance 1 is a bicycle (SegmentationClass 2): the cat and the person get no mask."""
    ds = load_dataset(shared / "voc_edge_cases" / "datumaro" / "voc_dataset1")
    rec = next(r for r in ds.records if r.stem == "2007_000001")
    assert object_masks("voc", rec) == [None, None]


def test_matching_rules():
    inst = np.zeros((40, 60), np.uint8)
    inst[2:12, 2:12] = 1     # a dog, where object 1 is
    inst[20:30, 30:50] = 2   # a cat, where object 0 is
    inst[0:2, :] = 255       # void
    cls = np.zeros_like(inst)
    cls[inst == 1], cls[inst == 2], cls[inst == 255] = 12, 8, 255
    count, box, icls = instance_table(inst, cls)
    assert count[1] == 100 and tuple(box[2]) == (30, 20, 50, 30) and icls[1] == 12 and icls[2] == 8
    assert count[0] == count[255] == 0
    bounds = np.array([[30, 20, 50, 30], [2, 2, 12, 12], [40, 0, 60, 10]])
    ids = match_instances(count, box, icls, bounds, np.array([8, 12, 8]))
    assert ids.tolist() == [2, 1, 0]  # swapped numbering found by class and box; the third has none
    ids = match_instances(count, box, icls, bounds, np.array([-1, -1, -1]))  # unknown names: boxes decide
    assert ids.tolist() == [2, 1, 0]


def _masked_voc(root, size=(60, 40)):
    """A VOC tree with one object and its masks: instance 1 a disc, class 8 (cat)."""
    w, h = size
    write_voc_tree(root, {"a": (w, h, [("cat", (11, 6, 40, 35))])})
    inst = np.zeros((h, w), np.uint8)
    cv2.circle(inst, (25, 20), 13, 1, -1)
    for folder, values in (("SegmentationObject", inst), ("SegmentationClass", inst * 8)):
        (root / folder).mkdir()
        (root / folder / "a.png").write_bytes(encode_palette_png(values, voc_palette()))
    return inst


def test_masks_follow_the_exif_rotation_of_the_photo(tmp_path):
    """A photo stored 40x60 with EXIF 'rotate 90 clockwise', annotated as the 60x40 picture people see: a mask in
    the annotated grid is used as it is; a mask saved in the stored grid is turned the same way as the photo."""
    root = tmp_path / "voc"
    inst = _masked_voc(root)
    shown = cv2.imread(str(root / "JPEGImages" / "a.jpg"))
    stored = cv2.rotate(shown, cv2.ROTATE_90_COUNTERCLOCKWISE)  # what the camera wrote
    ok, jpg = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 100])
    (root / "JPEGImages" / "a.jpg").write_bytes(with_exif_orientation(jpg.tobytes(), 6))
    rec = load_dataset(root).records[0]
    assert rec.meta["orient"] and (rec.width, rec.height) == (60, 40)
    want = inst[5:35, 10:40] == 1
    np.testing.assert_array_equal(object_masks("voc", rec)[0], want)
    turned = cv2.rotate(inst, cv2.ROTATE_90_COUNTERCLOCKWISE)
    (root / "SegmentationObject" / "a.png").write_bytes(encode_palette_png(turned, voc_palette()))
    (root / "SegmentationClass" / "a.png").write_bytes(encode_palette_png(turned * 8, voc_palette()))
    np.testing.assert_array_equal(object_masks("voc", rec)[0], want)
    (root / "SegmentationObject" / "a.png").write_bytes(encode_palette_png(inst[:30], voc_palette()))
    with pytest.raises(Exception, match="the mask is 60x30, the image's boxes refer to 60x40"):
        object_masks("voc", rec)


def test_labelmap_names_the_classes(tmp_path):
    root = tmp_path / "voc"
    inst = _masked_voc(root)
    (root / "SegmentationClass" / "a.png").write_bytes(encode_palette_png(inst * 3, voc_palette()))
    rec = load_dataset(root).records[0]
    assert object_masks("voc", rec) == [None]  # class 3 is a bird in VOC's list
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\ndog:1,1,1::\n"
                                       "fox:2,2,2::\ncat:3,3,3::\n")
    assert object_masks("voc", rec)[0].sum() == (inst == 1).sum()


def test_dispatch_checks_the_protocol(tmp_path, monkeypatch):
    root = tmp_path / "voc"
    _masked_voc(root)
    rec = load_dataset(root).records[0]
    assert object_masks("voc", rec)[0].shape == (30, 30)
    import dsprep.voc as voc
    monkeypatch.setattr(voc, "object_masks", lambda r: [np.ones((30, 29), bool)])
    with pytest.raises(ValueError, match=r"expected a bool mask of shape \(30, 30\)"):
        object_masks("voc", rec)
    monkeypatch.setattr(voc, "object_masks", lambda r: [])
    with pytest.raises(ValueError, match="0 masks for 1 objects"):
        object_masks("voc", rec)
    assert dataset.object_masks("h5", rec) is None  # a format without masks


# ---- DOTA ---------------------------------------------------------------------------------------------------------

def test_dota_masks_are_the_pixels_whose_centres_lie_in_the_quad(shared):
    ds = load_dataset(shared / "dota_example")
    for rec in ds.records:
        masks = object_masks("dota", rec)
        bounds = pixel_bounds(rec.boxes, rec.width, rec.height)
        for k in range(0, len(rec), max(1, len(rec) // 12)):  # a dozen objects per image: the reference is slow
            x0, y0, x1, y1 = bounds[k]
            poly = shapely.Polygon(rec.polygons[k])
            ref = np.array([[poly.intersects(shapely.Point(x + 0.5, y + 0.5)) for x in range(x0, x1)]
                            for y in range(y0, y1)], bool).reshape(y1 - y0, x1 - x0)
            np.testing.assert_array_equal(masks[k], ref)


def test_crop_writes_silhouettes_where_masks_exist(shared, tmp_path):
    from helpers import run_cli as run
    res = run("crop", shared / "voc_sample", "--out", tmp_path / "c", "--pad", "2")
    assert "37 crops, 9 masked" in res.output
    ds = load_dataset(shared / "voc_sample")
    for rec in ds.records:
        masks = object_masks("voc", rec)
        for k in range(len(rec)):
            img = cv2.imread(str(tmp_path / "c" / rec.names[k] / f"{rec.stem}_{k}.png"), cv2.IMREAD_UNCHANGED)
            if masks is None or masks[k] is None:
                assert img.shape[2] == 3
                continue
            x0, y0, x1, y1 = pixel_bounds(rec.boxes[k:k + 1], rec.width, rec.height)[0]
            px0, py0 = max(0, x0 - 2), max(0, y0 - 2)
            # opaque: the object's pixels whose four neighbours are the object's too (its outermost pixels mix it
            # with the old background: no rim); beyond the image's border counts as the object
            full = np.zeros((rec.height, rec.width), bool)
            full[y0:y1, x0:x1] = masks[k]
            big = np.pad(full, 1, constant_values=True)
            inner = full & big[:-2, 1:-1] & big[2:, 1:-1] & big[1:-1, :-2] & big[1:-1, 2:]
            alpha = inner[py0:py0 + img.shape[0], px0:px0 + img.shape[1]]
            np.testing.assert_array_equal(img[..., 3] == 255, alpha)
            assert alpha.sum() >= 0.6 * masks[k].sum()
            assert set(np.unique(img[..., 3])) <= {0, 255} and not alpha.all()
    # the same data set without its mask folders: plain rectangles, or GrabCut's silhouettes
    plain = tmp_path / "plain"
    shutil.copytree(shared / "voc_sample", plain, ignore=shutil.ignore_patterns("Segmentation*"))
    res = run("crop", plain, "--out", tmp_path / "p", "--only", "car,bus")
    assert "10 crops, 0 masked, 0 grabcut" in res.output


def test_grabcut_finds_the_silhouettes_of_objects_without_masks(tmp_path):
    """On demo scenes (textured backgrounds, shaded balls, turned boxes and cones) with their mask files removed,
    GrabCut's masks agree with the true ones (mean IoU >= 0.9; 0.98 when written), the same bytes in any process
    order."""
    from dsprep.crop import inner_mask
    from dsprep.demo import make_voc_demo
    from helpers import run_cli as run
    truth = tmp_path / "truth"
    make_voc_demo(truth, n_images=6, seed=3)
    plain = tmp_path / "plain"
    shutil.copytree(truth, plain, ignore=shutil.ignore_patterns("Segmentation*"))
    res = run("crop", plain, "--out", tmp_path / "g1", "--mask", "grabcut")
    run("crop", plain, "--out", tmp_path / "g2", "--mask", "grabcut", "--workers", "2")
    ds = load_dataset(truth)
    n = sum(len(r) for r in ds.records)
    assert f"{n} crops, 0 masked" in res.output
    ious = []
    for rec in ds.records:
        masks = object_masks("voc", rec)
        for k in range(len(rec)):
            name = f"{rec.names[k]}/{rec.stem}_{k}.png"
            assert (tmp_path / "g1" / name).read_bytes() == (tmp_path / "g2" / name).read_bytes()
            img = cv2.imread(str(tmp_path / "g1" / name), cv2.IMREAD_UNCHANGED)
            if img.shape[2] == 3:
                ious.append(0.0)  # GrabCut gave up: a rectangle
                continue
            got = img[..., 3] > 0
            # crops leave out a mask's outermost pixels (no rim of the old background): so does the truth here
            want = inner_mask(masks[k], pixel_bounds(rec.boxes[k:k + 1], rec.width, rec.height)[0],
                              (rec.width, rec.height))
            ious.append((got & want).sum() / (got | want).sum())
    assert np.mean(ious) >= 0.9, ious


def test_grabcut_beats_the_rectangle_on_real_photos(shared):
    """On the VOC sample's objects that have true masks, GrabCut's mask (from the box alone) is closer to the truth
    than the box itself (mean IoU 0.68 against 0.59 when written)."""
    from dsprep.crop import grabcut_mask
    from dsprep.images import read_record_image
    ours, rect = [], []
    for rec in load_dataset(shared / "voc_sample").records:
        masks = object_masks("voc", rec)
        if masks is None:
            continue
        img = read_record_image(rec)
        for b, m in zip(pixel_bounds(rec.boxes, rec.width, rec.height), masks):
            if m is None:
                continue
            g = grabcut_mask(img, b)
            ours.append(0.0 if g is None else (g & m).sum() / (g | m).sum())
            rect.append(m.mean())
    assert len(ours) == 9 and np.mean(ours) > np.mean(rect) + 0.05


def test_crop_takes_masks_from_any_format_module(tmp_path, monkeypatch):
    """crop asks the registry, not VOC: whatever a format module's object_masks answers (COCO's polygons and RLE,
    labelme's shapes) becomes the crops' alpha and what the backgrounds blank."""
    from helpers import run_cli as run
    root = write_voc_tree(tmp_path / "d", {"a": (60, 40, [("cat", (11, 6, 40, 35)), ("dog", (45, 5, 55, 15))])})
    disc = np.zeros((30, 30), np.uint8)
    cv2.circle(disc, (15, 15), 12, 1, -1)
    import dsprep.voc as voc
    monkeypatch.setattr(voc, "object_masks", lambda rec: [disc.astype(bool), None])
    res = run("crop", root, "--out", tmp_path / "c", "--backgrounds", tmp_path / "b", "--blank-margin", "0",
              "--fill", "black")
    assert "2 crops, 1 masked" in res.output
    cat = cv2.imread(str(tmp_path / "c" / "cat" / "a_0.png"), cv2.IMREAD_UNCHANGED)
    inner = cv2.erode(disc, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)), borderValue=0)
    np.testing.assert_array_equal(cat[..., 3] > 0, inner.astype(bool))  # less the outermost pixels (no rim)
    assert cv2.imread(str(tmp_path / "c" / "dog" / "a_1.png"), cv2.IMREAD_UNCHANGED).shape == (11, 11, 3)
    bg = cv2.imread(str(tmp_path / "b" / "a.png"))
    black = (bg == 0).all(axis=-1)
    np.testing.assert_array_equal(black[5:35, 10:40], disc.astype(bool))  # the silhouette, not its box
    assert black[4:15, 44:55].all()  # the dog has no mask: its box


def test_instance_table_against_a_per_instance_reference(shared):
    for path in sorted((shared / "voc_sample" / "SegmentationObject").glob("*.png")):
        inst = reference_png_values(path.read_bytes())
        cls = reference_png_values((path.parent.parent / "SegmentationClass" / path.name).read_bytes())
        count, box, icls = instance_table(inst, cls)
        for i in range(256):
            ys, xs = np.nonzero(inst == i)
            if i in (0, 255) or len(ys) == 0:
                assert count[i] == 0 and icls[i] == -1
                continue
            assert count[i] == len(ys)
            assert tuple(box[i]) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            values, n = np.unique(cls[ys, xs], return_counts=True)
            n[(values == 0) | (values == 255)] = 0
            assert icls[i] == (values[np.argmax(n)] if n.max() > 0 else -1)
