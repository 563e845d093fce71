"""``dsprep dedup`` on real photographs (the VOC sample) with near copies planted the way people make them: a crop
of a few percent, a resize, a recompression, a brightened copy, the same file under another name, and the same
pixels in another file format.  Every copy sits in another split than its original, so each is also a leak."""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import run_cli

from dsprep.core import ImageRecord
from dsprep.dataset import load_dataset
from dsprep.dedup import (collect_features, find_duplicate_groups, find_duplicates, hamming_pairs,
                          dct_hashes, shifted_similarity, thumbnails)

# copy name -> (original stem, how it is made)
PLANTED = {
    "copy_crop": ("2007_000027", "crop"),
    "copy_small": ("2007_000032", "resize"),
    "copy_q30": ("2007_000033", "recompress"),
    "copy_bright": ("2007_000039", "bright"),
    "copy_same": ("000001", "same_file"),
    "copy_png": ("000002", "png"),
}


def make_copy(img, how):
    h, w = img.shape[:2]
    if how == "crop":
        return img[int(0.04 * h):, int(0.03 * w):w - int(0.02 * w)]
    if how == "resize":
        return cv2.resize(img, (int(w * 0.55), int(h * 0.55)), interpolation=cv2.INTER_AREA)
    if how == "bright":
        return np.clip(img.astype(np.int16) + 40, 0, 255).astype(np.uint8)
    return img


def build(src: Path, root: Path, layout: str) -> Path:
    """The 13 real VOC images (train: the first 7, val: the rest) plus the planted copies, each in the other
    split than its original.  ``layout``: ``lists`` (one VOC tree, ImageSets/Main/train.txt and val.txt) or
    ``folders`` (train/ and val/ each holding XML and images, as Roboflow exports VOC)."""
    stems = sorted(p.stem for p in (src / "JPEGImages").glob("*.jpg"))
    train, val = stems[:7], stems[7:]
    files = {}  # stem -> (xml text, image file name, bytes)
    for s in stems:
        files[s] = ((src / "Annotations" / f"{s}.xml").read_text(), f"{s}.jpg",
                    (src / "JPEGImages" / f"{s}.jpg").read_bytes())
    for copy, (orig, how) in PLANTED.items():
        ext = ".png" if how == "png" else ".jpg"
        data = (src / "JPEGImages" / f"{orig}.jpg").read_bytes()
        if how != "same_file":
            img = make_copy(cv2.imread(str(src / "JPEGImages" / f"{orig}.jpg")), how)
            q = [cv2.IMWRITE_JPEG_QUALITY, 30 if how == "recompress" else 85] if ext == ".jpg" else []
            data = cv2.imencode(ext, img, q)[1].tobytes()
        out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        xml = files[orig][0].replace(f"{orig}.jpg", f"{copy}{ext}")
        xml = re.sub(r"<width>\d+</width>", f"<width>{out.shape[1]}</width>", xml)
        xml = re.sub(r"<height>\d+</height>", f"<height>{out.shape[0]}</height>", xml)
        files[copy] = (xml, f"{copy}{ext}", data)
        (val if orig in train else train).append(copy)
    if layout == "lists":
        for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (root / d).mkdir(parents=True)
        for s, (xml, name, data) in files.items():
            (root / "Annotations" / f"{s}.xml").write_text(xml)
            (root / "JPEGImages" / name).write_bytes(data)
        (root / "ImageSets" / "Main" / "train.txt").write_text("".join(f"{s}\n" for s in train))
        (root / "ImageSets" / "Main" / "val.txt").write_text("".join(f"{s}\n" for s in val))
    else:
        for split, members in (("train", train), ("val", val)):
            (root / split).mkdir(parents=True)
            for s in members:
                xml, name, data = files[s]
                (root / split / f"{s}.xml").write_text(xml)
                (root / split / name).write_bytes(data)
    return root


@pytest.fixture
def voc_with_copies(shared, tmp_path):
    return build(shared / "voc_sample", tmp_path / "voc", "lists")


@pytest.fixture(params=["voc", "coco", "yolo"])
def any_format(request, shared, tmp_path):
    """The data set with copies in VOC (split folders), and converted by dsprep to COCO and YOLO (splits kept)."""
    root = build(shared / "voc_sample", tmp_path / "voc", "folders")
    if request.param != "voc":
        run_cli("convert", root, "--to", request.param, "--out", tmp_path / request.param, "-q")
        root = tmp_path / request.param
    assert load_dataset(root).format == request.param
    return root


def expected_groups():
    return sorted(sorted([orig, copy]) for copy, (orig, _) in PLANTED.items())


def stems_of(groups):
    return sorted(sorted(Path(p).stem for p in g) for g in groups)


def test_finds_every_planted_copy_and_every_leak(any_format):
    root = any_format
    res = run_cli("dedup", root, "--json", "-q")
    doc = json.loads(res.stdout)
    assert stems_of(doc["groups"]) == expected_groups()
    assert stems_of(doc["leaks"]) == expected_groups()
    for g in doc["groups"]:
        for p in g:
            assert not Path(p).is_absolute() and (root / p).is_file()
    exact = {tuple(sorted(Path(p).stem for p in g)): e for g, e in zip(doc["groups"], doc["exact"])}
    assert exact[("000001", "copy_same")] and exact[("000002", "copy_png")]
    assert not exact[("2007_000027", "copy_crop")] and not exact[("2007_000039", "copy_bright")]
    assert doc["duplicates"] == len(PLANTED)


def test_leaks_between_voc_split_lists(voc_with_copies):
    """A VOC tree read whole: which list (ImageSets/Main) each image is in decides the leaks."""
    doc = json.loads(run_cli("dedup", voc_with_copies, "--json", "-q").stdout)
    assert stems_of(doc["leaks"]) == expected_groups()
    assert all(sorted(s) == ["train", "val"] for s in doc["leak_splits"])
    # one list only: nothing can leak
    doc = json.loads(run_cli("dedup", voc_with_copies, "--split", "train", "--json", "-q").stdout)
    assert doc["leaks"] == []


def test_out_keeps_the_largest_of_each_group(voc_with_copies, tmp_path):
    res = run_cli("dedup", voc_with_copies, "--out", tmp_path / "clean", "--json", "-q")
    doc = json.loads(res.stdout)
    kept = load_dataset(tmp_path / "clean")
    assert kept.format == "voc"
    stems = sorted(r.stem for r in kept.records)
    # the original is the larger one everywhere but the brightened and recompressed copies (same size): there the
    # first by name is kept, the original (digits sort before letters)
    assert stems == sorted(p.stem for p in (voc_with_copies / "JPEGImages").iterdir() if not p.stem.startswith("copy"))
    assert sorted(Path(p).stem for p in doc["left_out"]) == sorted(PLANTED)
    # the split lists are kept, without the copies
    for split in ("train", "val"):
        listed = (tmp_path / "clean" / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        original = (voc_with_copies / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        assert listed == [s for s in original if not s.startswith("copy")]
    # the input is untouched
    assert len(list((voc_with_copies / "JPEGImages").iterdir())) == 13 + len(PLANTED)


def test_text_report_names_groups_and_leaks(voc_with_copies):
    res = run_cli("dedup", voc_with_copies, "-q")
    out = res.stdout
    assert f"{len(PLANTED)} groups of copies (2 exact, {len(PLANTED) - 2} near); {len(PLANTED)} pairs leak" in out
    assert "JPEGImages/copy_crop.jpg [val]" in out or "JPEGImages/copy_crop.jpg [train]" in out


def test_distinct_photos_are_not_joined(shared):
    """The 13 VOC photographs are all different pictures: no group, whatever the hash says of their layout."""
    ds = load_dataset(shared / "voc_sample")
    assert find_duplicate_groups(ds) == []


def test_find_duplicate_groups_interface(voc_with_copies):
    ds = load_dataset(voc_with_copies)
    groups = find_duplicate_groups(ds)
    assert all(isinstance(i, int) for g in groups for i in g)
    assert all(len(g) >= 2 and g == sorted(g) for g in groups)
    assert sorted(sorted(ds.records[i].stem for i in g) for g in groups) == expected_groups()


def test_a_crop_is_joined_but_a_shifted_scene_is_not(shared):
    img = cv2.imread(str(shared / "voc_sample" / "JPEGImages" / "2007_000042.jpg"), cv2.IMREAD_GRAYSCALE)
    h, w = img.shape
    crop = img[int(0.05 * h):, : w - int(0.05 * w)]
    half = img[:, : w // 2]  # the same scene, not a copy
    a, b, c = thumbnails(np.stack([cv2.resize(x, (64, 64), interpolation=cv2.INTER_AREA) for x in (img, crop, half)]))
    assert shifted_similarity(a, b) > 0.9
    assert shifted_similarity(a, c) < 0.9


def test_batched_kernels_match_per_image_references(shared):
    """The DCT hash and the blur computed for all images at once equal OpenCV's per-image results."""
    paths = sorted((shared / "voc_sample" / "JPEGImages").glob("*.jpg"))
    small = np.stack([cv2.resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), (64, 64), interpolation=cv2.INTER_AREA)
                      for p in paths])
    for s, got in zip(small, dct_hashes(small)):
        low = cv2.dct(cv2.resize(s.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA))[:8, :8].ravel()
        want = int("".join("1" if v > np.median(low) else "0" for v in low), 2)
        assert int(got) == want
    thumbs = thumbnails(small)
    for s, t in zip(small, thumbs):
        k = np.array([1, 4, 6, 4, 1], np.float32) / 16
        ref = cv2.sepFilter2D(s.astype(np.float32), -1, k, k, borderType=cv2.BORDER_REPLICATE)
        ref -= ref.mean()
        ref /= np.linalg.norm(ref)
        assert np.allclose(t, ref, atol=1e-5)
        assert float(np.vdot(t, t)) == pytest.approx(1.0, abs=1e-5)


def test_hamming_pairs_matches_a_slow_reference():
    rng = np.random.default_rng(5)
    base = rng.integers(0, 2 ** 63, 40, dtype=np.uint64)
    flips = np.array([1 << int(b) for b in rng.integers(0, 64, 40)], np.uint64)
    hashes = np.concatenate([base, base ^ flips])
    got = hamming_pairs(hashes, 12, block=7)
    want = [(i, j) for i in range(len(hashes)) for j in range(i + 1, len(hashes))
            if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= 12]
    assert sorted(map(tuple, got.tolist())) == want


def test_unreadable_image_is_skipped_and_listed(voc_with_copies):
    (voc_with_copies / "JPEGImages" / "copy_bright.jpg").write_bytes(b"\xff\xd8 not really")
    res = run_cli("dedup", voc_with_copies, "--on-error", "skip", "--json", "-q")
    doc = json.loads(res.stdout)
    assert ["2007_000039", "copy_bright"] not in stems_of(doc["groups"])
    assert "copy_bright.jpg" in res.stderr
    res = run_cli("dedup", voc_with_copies, ok=False)
    assert res.exit_code == 1 and res.stderr.startswith("error: ") and "copy_bright.jpg" in res.stderr


@pytest.mark.parametrize("args", [["--threshold", "0"], ["--threshold", "1.5"], ["--hash-distance", "65"]])
def test_impossible_options_are_usage_errors(shared, args):
    res = run_cli("dedup", shared / "voc_sample", *args, ok=False)
    assert res.exit_code == 2


def test_out_inside_the_input_is_refused(voc_with_copies):
    res = run_cli("dedup", voc_with_copies, "--out", voc_with_copies / "clean", ok=False)
    assert res.exit_code == 2 and "error:" in res.output


def test_features_are_read_once_per_file():
    """Two records naming one image (a YOLO list naming a file in two splits) are one exact group, read once."""
    path = str(Path(__file__).parent / "data" / "coco2017_mini" / "val2017" / "000000397133.jpg")
    recs = [ImageRecord(path, 0, 0, split="train"), ImageRecord(path, 0, 0, split="val")]
    calls = []

    def run(fn, items, desc):
        calls.extend(items)
        for it in items:
            yield it, fn(it)
    res = find_duplicates(recs, collect_features(recs, run))
    assert len(calls) == 1
    assert [g.members for g in res.groups] == [[0, 1]] and res.groups[0].exact and res.leaks == [(0, 1)]


def test_same_report_whatever_the_workers(voc_with_copies):
    one = run_cli("dedup", voc_with_copies, "--json", "-q").stdout
    assert run_cli("dedup", voc_with_copies, "--json", "-q", "--workers", "2").stdout == one
