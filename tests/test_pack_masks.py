"""Packs with object masks: stored as the images are resized, read back by DetectionH5 and dsprep.torch (through a
real DataLoader and torchvision v2 transforms), checked when opened; packs without masks read as before."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from dsprep.cli import main
from dsprep.dataset import load_dataset, object_masks
from dsprep.geometry import pixel_bounds
from dsprep.hdf5 import DetectionH5
from dsprep.pack.prepare import mask_runs
from dsprep.pack.reader import decode_runs
from helpers import coco_from_voc_masks, write_voc_tree


def run(*args, ok=True):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def nearest(n, m):
    """The source pixel under each of ``m`` destination pixel centres when ``n`` pixels are resized to ``m``, in
    exact fractions (a centre on a border between two source pixels: the one starting there).  OpenCV's
    INTER_NEAREST_EXACT picks the same except on such borders (tests/test_tile_masks.py)."""
    from fractions import Fraction
    return np.array([min(int((d + Fraction(1, 2)) * n / m), n - 1) for d in range(m)], np.int64)


def reference_masks(fmt, rec, transform, canvas):
    """Each object's mask (dsprep.dataset.object_masks) on the whole image, resized as the image was fitted
    (:func:`nearest` to the fitted size, then placed at the padding): ``(k, H, W) bool`` and which objects have
    one."""
    sx, sy, px, py = transform
    nw, nh = int(round(sx * rec.width)), int(round(sy * rec.height))
    rows, cols = nearest(rec.height, nh), nearest(rec.width, nw)
    masks = object_masks(fmt, rec) or [None] * len(rec)
    out = np.zeros((len(rec),) + tuple(canvas), bool)
    for k, (m, (x0, y0, x1, y1)) in enumerate(zip(masks, pixel_bounds(rec.boxes, rec.width, rec.height))):
        if m is None:
            continue
        full = np.zeros((rec.height, rec.width), bool)
        full[y0:y1, x0:x1] = m
        out[k, int(py):int(py) + nh, int(px):int(px) + nw] = full[rows][:, cols]
    return out, np.array([m is not None for m in masks], bool)


def check_pack(path, source, split=None):
    """Every image's masks read back equal the source's resized; returns the number of objects with a mask."""
    src = {r.stem: r for r in source.records}
    r = DetectionH5(path, split)
    assert r.has_masks
    n = 0
    for i in range(len(r)):
        s = r[i]
        rec = src[s["filename"].rsplit(".", 1)[0]]
        want, has = reference_masks(source.format, rec, s["transform"], s["image"].shape[:2])
        assert s["masks"].dtype == bool and s["masks"].shape == want.shape, s["filename"]
        assert np.array_equal(s["masks"], want), s["filename"]
        assert np.array_equal(s["has_mask"], has)
        n += int(has.sum())
    return n


def test_runs_round_trip():
    rng = np.random.default_rng(5)
    for shape in [(0, 0), (1, 1), (3, 7), (40, 31)]:
        for p in (0.0, 0.3, 1.0):
            m = rng.random(shape) < p
            runs = mask_runs(m)
            assert runs[0] >= 0 and runs.sum() == m.size
            assert np.array_equal(decode_runs(runs, *shape), m)
    assert mask_runs(np.array([[True, True], [False, True]])).tolist() == [0, 2, 1, 1]


@pytest.mark.parametrize("args", [["--size", "320x256"], ["--size", "200x200", "--resize", "stretch"],
                                  ["--encoded"], ["--size", "320x256", "--encode", "png"],
                                  ["--size", "320x256", "--shards", "2"]])
def test_voc_masks_packed_as_the_images_are_resized(shared, tmp_path, args):
    """The real VOC sample (three images with palette masks, ten without): each object's mask stored on the stored
    image, equal to the source's resized by nearest neighbour (letterbox with its padding, stretch, originals,
    re-encoded, sharded); objects of images without masks have an empty one and has_mask False."""
    out = tmp_path / "p.h5"
    res = run("voc-to-h5", shared / "voc_sample", out, *args, "--json", "-q")
    source = load_dataset(shared / "voc_sample")
    n = check_pack(out, source)
    assert n == 9 and f'"masks": {n}' in res.stdout
    r = DetectionH5(out)
    assert r.mask_runs.dtype == np.uint32
    assert r.get_batch([12, 0])["masks"][0].shape[0] == 3  # (2011_000025: three objects)


def test_pickle_and_annotations_only_hold_the_same_masks(shared, tmp_path):
    src = shared / "voc_sample"
    run("voc-to-pickle", src, tmp_path / "p.pkl", "--size", "320x256", "-q")
    run("voc-to-pickle", src, tmp_path / "a.pkl", "--annotations-only", "-q")
    source = load_dataset(src)
    assert check_pack(tmp_path / "p.pkl", source) == 9
    assert check_pack(tmp_path / "a.pkl", source) == 9  # on the source files' own pixels
    run("voc-to-h5", src, tmp_path / "p.h5", "--size", "320x256", "-q")
    a, b = DetectionH5(tmp_path / "p.pkl"), DetectionH5(tmp_path / "p.h5")
    for k in ("mask_boxes", "mask_runs", "mask_offsets"):
        assert np.array_equal(getattr(a, k), getattr(b, k))


def test_coco_polygon_and_rle_masks_packed(shared, tmp_path):
    pytest.importorskip("pycocotools")
    ann = coco_from_voc_masks(shared / "voc_sample", tmp_path / "coco")
    run("voc-to-h5", ann, tmp_path / "c.h5", "--size", "256x256", "-q")
    assert check_pack(tmp_path / "c.h5", load_dataset(ann)) == 12


def test_packs_without_masks_read_as_before(tmp_path):
    """A data set without masks packs no mask arrays (DOTA's quadrilaterals are polygons, not masks); its samples
    have no masks key.  A pack written before masks existed (no masks_from option) still opens."""
    import h5py
    voc = write_voc_tree(tmp_path / "voc", {"a": (64, 48, [("cat", (5, 5, 30, 30))])})
    run("voc-to-h5", voc, tmp_path / "p.h5", "--size", "32x32", "-q")
    with h5py.File(tmp_path / "p.h5", "r") as f:
        assert not any(k.startswith("mask") for k in f["all"].keys())
    with h5py.File(tmp_path / "p.h5", "r+") as f:  # the options an older dsprep wrote
        opts = json.loads(f.attrs["options"])
        assert opts.pop("masks_from") == "voc"
        f.attrs["options"] = json.dumps(opts)
    r = DetectionH5(tmp_path / "p.h5")
    assert not r.has_masks and "masks" not in r[0] and "has_mask" not in r[0]
    assert "masks" not in r.get_batch([0])


def test_damaged_mask_arrays_are_one_clear_error(shared, tmp_path):
    import h5py
    from dsprep.core import DatasetError
    good = tmp_path / "good.h5"
    run("voc-to-h5", shared / "voc_sample", good, "--size", "64x64", "-q")

    def damaged(name, change):
        path = tmp_path / f"{name}.h5"
        path.write_bytes(good.read_bytes())
        with h5py.File(path, "r+") as f:
            change(f["all"])
        return path

    def replace(g, name, data):
        del g[name]
        g.create_dataset(name, data=data)

    with h5py.File(good, "r") as f:
        boxes, runs, off = (f["all"][k][()] for k in ("mask_boxes", "mask_runs", "mask_offsets"))
    far = boxes.copy()
    far[np.flatnonzero(np.diff(off))[0], 2] = 65
    short = runs.astype(np.int64)
    short[0] += 1
    cases = {
        "missing": (lambda g: g.__delitem__("mask_runs"), "masks lack mask_runs"),
        "outside": (lambda g: replace(g, "mask_boxes", far), "reach outside their images"),
        "runs": (lambda g: replace(g, "mask_runs", short.astype(np.uint32)), "do not cover"),
        "offsets": (lambda g: replace(g, "mask_offsets", off[::-1].copy()), "mask_offsets do not run"),
        "negative": (lambda g: replace(g, "mask_runs", -short), "negative or impossibly long"),
        "floats": (lambda g: replace(g, "mask_runs", runs.astype(float)), "not an integer array"),
    }
    for name, (change, says) in cases.items():
        path = damaged(name, change)
        with pytest.raises(DatasetError, match=says):
            DetectionH5(path)
        res = run("info", path, ok=False)
        assert res.exit_code != 0 and says in res.output and "Traceback" not in res.output, name


@pytest.mark.parametrize("target", ["mask_runs", "mask_boxes"])
def test_mask_arrays_reading_outside_the_pack_are_refused(shared, tmp_path, target):
    """The untrusted-pack checks cover the mask arrays: kept in an external file, or an external link."""
    import h5py
    from dsprep.core import DatasetError
    good = tmp_path / "good.h5"
    run("voc-to-h5", shared / "voc_sample", good, "--size", "64x64", "-q")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(range(256)) * 64)
    for kind in ("external", "link"):
        path = tmp_path / f"{kind}.h5"
        path.write_bytes(good.read_bytes())
        with h5py.File(path, "r+") as f:
            g = f["all"]
            ds = g[target]
            shape, dtype = ds.shape, ds.dtype
            del g[target]
            if kind == "external":
                g.create_dataset(target, shape=shape, dtype=dtype,
                                 external=[(str(secret), 0, int(np.prod(shape)) * dtype.itemsize)])
            else:
                g[target] = h5py.ExternalLink(str(good), f"/all/{target}")
        with pytest.raises(DatasetError, match="external"):
            DetectionH5(path)


# ---- dsprep.torch ---------------------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def mask_pack(tmp_path_factory):
    from conftest import SHARED
    if not SHARED.is_dir():
        pytest.skip("shared conformance data not found")
    out = tmp_path_factory.mktemp("mp") / "voc.h5"
    run("voc-to-h5", SHARED / "voc_sample", out, "--size", "160x128", "-q")
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_batches_carry_masks(mask_pack, workers):
    """Without transforms (a batch read at once) and with v2 transforms (per sample): each target's masks are a
    tv_tensors.Mask (k, H, W) bool on its image, equal to the pack's; flipped and resized with the pixels."""
    from torch.utils.data import DataLoader
    from torchvision import tv_tensors
    from torchvision.transforms import v2
    from dsprep.torch import DetectionDataset, collate
    reader = DetectionH5(mask_pack)
    ids = [f.rsplit(".", 1)[0] for f in reader.filenames]
    plain = DetectionDataset(mask_pack)
    flip = DetectionDataset(mask_pack, transforms=v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.Resize((64, 80))]))
    seen = 0
    for data, flipped in ((plain, False), (flip, True)):
        loader = DataLoader(data, batch_size=5, shuffle=False, num_workers=workers, collate_fn=collate)
        for images, targets in loader:
            for image, t in zip(images, targets):
                s = reader[ids.index(t["image_id"])]
                assert isinstance(t["masks"], tv_tensors.Mask) and t["masks"].dtype == torch.bool
                assert t["masks"].shape == (len(s["boxes"]),) + tuple(image.shape[-2:])
                assert np.array_equal(t["has_mask"].numpy(), s["has_mask"])
                want = torch.from_numpy(s["masks"])
                if flipped:
                    want = v2.functional.resize(tv_tensors.Mask(want.flip(-1)), [64, 80])
                assert torch.equal(t["masks"].as_subclass(torch.Tensor), want.as_subclass(torch.Tensor))
                seen += int(t["has_mask"].sum())
    assert seen == 2 * 9


def test_collate_keeps_masks_of_different_sizes_per_sample(mask_pack):
    from torchvision import tv_tensors
    from dsprep.torch import DetectionDataset, collate
    data = DetectionDataset(mask_pack)
    a, b = data[10], data[11]
    small = (a[0][:, :64, :64], dict(a[1], masks=tv_tensors.Mask(a[1]["masks"][:, :64, :64])))
    images, targets = collate([small, b])
    assert targets[0]["masks"].shape[1:] == (64, 64) and targets[1]["masks"].shape[1:] == (128, 160)
    assert isinstance(targets[0]["masks"], tv_tensors.Mask) and isinstance(targets[1]["masks"], tv_tensors.Mask)
