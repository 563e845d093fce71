"""dsprep.torch: packs through a real torch DataLoader (CPU), with real torchvision v2 transforms."""
import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from torch.utils.data import DataLoader  # noqa: E402
from torch.utils.data.distributed import DistributedSampler  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from dsprep.hdf5 import DetectionH5  # noqa: E402
from dsprep.torch import DetectionBatch, DetectionDataset, collate  # noqa: E402
from helpers import run_cli, write_dota_tree, write_voc_tree  # noqa: E402

N = 70  # more than two batches of 32, not a multiple of 32


def _items(rng, n, size=None):
    items = {}
    for k in range(n):
        w, h = size or (int(rng.integers(50, 90)), int(rng.integers(40, 70)))
        objects = []
        for j in range(int(rng.integers(0, 5))):  # some images without any object
            x0, y0 = int(rng.integers(1, w // 2)), int(rng.integers(1, h // 2))
            x1, y1 = x0 + int(rng.integers(3, w // 2)), y0 + int(rng.integers(3, h // 2))
            objects.append((["cat", "dog", "bird"][j % 3], (x0, y0, x1, y1),
                            "<difficult>1</difficult>" if (k + j) % 4 == 0 else ""))
        items[f"im{k:03d}"] = (w, h, objects)
    return items


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    root = tmp_path_factory.mktemp("packs")
    rng = np.random.default_rng(7)
    write_voc_tree(root / "voc", _items(rng, N))
    write_voc_tree(root / "same", _items(rng, N, size=(64, 48)), ext=".png")
    out = {}
    for name, args in {"raw": ["--size", "64x48"], "gzip": ["--size", "64x48", "--compression", "gzip"],
                       "jpeg": ["--size", "64x48", "--encode", "jpeg"], "png": ["--size", "64x48", "--encode", "png"],
                       "original": [], "shards": ["--size", "64x48", "--shards", "2"]}.items():
        out[name] = root / f"{name}.h5"
        run_cli("voc-to-h5", str(root / "voc"), str(out[name]), "-q", *args)
    out["pickle"] = root / "raw.pkl"
    run_cli("voc-to-pickle", str(root / "voc"), str(out["pickle"]), "--size", "64x48", "-q")
    # stored at the images' own size (lossless PNG): boxes keep their integer pixel corners
    out["exact"] = root / "exact.h5"
    run_cli("voc-to-h5", str(root / "same"), str(out["exact"]), "--size", "64x48", "--resize", "stretch", "-q")
    dota = {f"d{k}": (60, 40, "imagesource:x\ngsd:1\n10 5 22 9 20 15 8 11 plane 0\n40 10 55 10 55 30 40 30 ship 1\n")
            for k in range(6)}
    write_dota_tree(root / "dota", dota)
    out["dota"] = root / "dota.h5"
    run_cli("voc-to-h5", str(root / "dota"), str(out["dota"]), "--size", "60x40", "--resize", "stretch", "-q")
    return out


def _check_sample(path, image, target, reference_index=None):
    r = DetectionH5(path)
    ids = [Path(f).stem for f in r.filenames]
    i = ids.index(target["image_id"]) if reference_index is None else reference_index
    s = r[i]
    assert target["image_id"] == Path(s["filename"]).stem
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3,) + s["image"].shape[:2]
    assert np.array_equal(image.permute(1, 2, 0).numpy(), s["image"])
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
    assert target["boxes"].format == tv_tensors.BoundingBoxFormat.XYXY
    assert tuple(target["boxes"].canvas_size) == s["image"].shape[:2]
    assert np.array_equal(target["boxes"].numpy(), s["boxes"])
    assert target["labels"].dtype == torch.int64 and np.array_equal(target["labels"].numpy(), s["labels"])
    assert np.array_equal(target["difficult"].numpy(), s["difficult"])
    if "polygons" in s:
        assert np.array_equal(target["polygons"].numpy().reshape(-1, 4, 2), s["polygons"])
    else:
        assert "polygons" not in target
    return i


@pytest.mark.parametrize("kind", ["raw", "gzip", "jpeg", "png", "original", "pickle", "shards", "dota"])
def test_batches_from_two_workers_equal_the_samples_read_directly(packs, kind):
    ds = DetectionDataset(packs[kind])
    loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=2, collate_fn=collate,
                        generator=torch.Generator().manual_seed(1))
    seen = []
    batches = 0
    for images, targets in loader:
        batches += 1
        assert len(targets) == min(32, len(ds) - 32 * (batches - 1))
        if kind == "original":  # the original files' sizes differ: a list of images
            assert isinstance(images, list)
        else:
            assert isinstance(images, torch.Tensor) and images.shape[0] == len(targets)
        for image, target in zip(images, targets):
            seen.append(_check_sample(packs[kind], image, target))
    assert sorted(seen) == list(range(len(ds)))
    assert seen != sorted(seen)  # shuffled


def test_one_sample_is_the_reader_sample_as_torchvision_types(packs):
    ds = DetectionDataset(packs["raw"])
    image, target = ds[5]
    assert isinstance(image, tv_tensors.Image)
    _check_sample(packs["raw"], image, target, reference_index=5)
    image, target = ds[-1]
    _check_sample(packs["raw"], image, target, reference_index=len(ds) - 1)
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert ds.classes == DetectionH5(packs["raw"]).classes


def _crop(image, box):
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    return image[:, y0:y1, x0:x1]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_flip_moves_every_box_as_it_moves_the_pixels(packs, workers):
    plain = DetectionDataset(packs["exact"])
    flipped = DetectionDataset(packs["exact"], transforms=v2.RandomHorizontalFlip(p=1.0))
    loader = DataLoader(flipped, batch_size=32, num_workers=workers, collate_fn=collate)
    k = 0
    boxes_checked = 0
    for images, targets in loader:
        for image, target in zip(images, targets):
            before, t0 = plain[k]
            assert target["image_id"] == t0["image_id"]
            assert torch.equal(image, before.flip(-1))
            width = image.shape[-1]
            assert torch.equal(target["boxes"][:, [0, 2]], width - t0["boxes"][:, [2, 0]])
            assert torch.equal(target["labels"], t0["labels"])
            for b_new, b_old in zip(target["boxes"], t0["boxes"]):
                # the pixels inside each new box are those inside the old box, mirrored
                assert torch.equal(_crop(image, b_new), _crop(before, b_old).flip(-1))
                boxes_checked += 1
            k += 1
    assert k == len(plain) and boxes_checked > 50


def test_a_flip_and_a_resize_move_polygons_too(packs):
    # torchvision moves XYXYXYXY boxes as rotated rectangles: DOTA's quadrilaterals here are rectangles (one turned)
    ds = DetectionDataset(packs["dota"], transforms=v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.Resize((20, 30))]))
    plain = DetectionDataset(packs["dota"])
    image, target = ds[0]
    _, t0 = plain[0]
    assert tuple(image.shape) == (3, 20, 30)
    assert tuple(target["polygons"].canvas_size) == (20, 30)
    old = t0["polygons"].reshape(-1, 4, 2)
    expected_x = (60 - old[..., 0]) * 0.5
    expected_y = old[..., 1] * 0.5
    new = target["polygons"].reshape(-1, 4, 2)
    for p_new, ex, ey in zip(new, expected_x, expected_y):  # the same corners (torchvision may start elsewhere)
        got = sorted(map(tuple, p_new.tolist()))
        want = sorted(zip(ex.tolist(), ey.tolist()))
        assert np.allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("world", [3, 4])
def test_distributed_sampler_ranks_cover_the_data_set_once_without_overlap(packs, world):
    ds = DetectionDataset(packs["raw"])
    n = len(ds) - len(ds) % world  # DistributedSampler pads a remainder by repeating samples: drop it
    shares = []
    for rank in range(world):
        sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=3, drop_last=True)
        sampler.set_epoch(1)
        loader = DataLoader(ds, batch_size=8, sampler=sampler, num_workers=2, collate_fn=collate)
        ids = [t["image_id"] for _, targets in loader for t in targets]
        shares.append(set(ids))
        assert len(ids) == len(set(ids)) == n // world
    union = set().union(*shares)
    assert len(union) == n and sum(len(s) for s in shares) == n  # disjoint
    assert union <= {Path(f).stem for f in DetectionH5(packs["raw"]).filenames}


@pytest.mark.parametrize("kind", ["raw", "gzip", "jpeg"])
def test_a_pack_opened_in_the_parent_reads_correctly_in_forked_workers(packs, kind):
    ds = DetectionDataset(packs[kind])
    first = ds[0]  # the parent opens the file (its memory map, its descriptor for batches) before the workers fork
    ds.__getitems__([1, 2])
    assert ds._reader._file is not None
    loader = DataLoader(ds, batch_size=32, num_workers=2, collate_fn=collate, multiprocessing_context="fork")
    seen = [_check_sample(packs[kind], image, target) for images, targets in loader
            for image, target in zip(images, targets)]
    assert seen == list(range(len(ds)))
    again = ds[0]  # and the parent's own handle still reads
    assert torch.equal(again[0], first[0])


def test_persistent_workers_serve_two_shuffled_epochs(packs):
    ds = DetectionDataset(packs["jpeg"])
    loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=2, persistent_workers=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(5))
    orders = []
    for epoch in range(2):
        order = [_check_sample(packs["jpeg"], image, target) for images, targets in loader
                 for image, target in zip(images, targets)]
        assert sorted(order) == list(range(len(ds)))
        orders.append(order)
    assert orders[0] != orders[1]


def test_collate_batches_plain_samples_and_the_batch_pickles_whole(packs):
    ds = DetectionDataset(packs["original"], transforms=v2.Resize((30, 40)))
    batch = collate([ds[i] for i in range(5)])
    images, targets = batch
    assert tuple(images.shape) == (5, 3, 30, 40)
    again = pickle.loads(pickle.dumps(batch))
    assert isinstance(again, DetectionBatch)
    for (a, b) in zip(targets, again.targets):
        assert a["image_id"] == b["image_id"]
        assert torch.equal(a["boxes"], b["boxes"]) and tuple(b["boxes"].canvas_size) == (30, 40)
        assert torch.equal(a["labels"], b["labels"]) and torch.equal(a["difficult"], b["difficult"])
    assert torch.equal(again.images, images)


def test_metadata_are_arrays_not_python_objects_per_image(packs):
    ds = DetectionDataset(packs["raw"])
    for name in ("boxes", "labels", "difficult", "offsets"):
        assert isinstance(getattr(ds, name), np.ndarray)
    for strings in (ds.image_ids, ds._reader.filenames, ds._reader.paths):
        assert isinstance(strings.data, np.ndarray) and isinstance(strings.offsets, np.ndarray)
    assert list(ds.image_ids) == [Path(f).stem for f in DetectionH5(packs["raw"]).filenames]
