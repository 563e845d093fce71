"""dsprep split: the stratification on arrays (against a plain loss and a random split) and the command on VOC,
COCO and YOLO data sets."""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from dsprep.dataset import load_dataset
from dsprep.ops.stratify import (class_counts, groups_by_regex, groups_from_sets, parse_ratios, random_split,
                             split_quality, stratified_split)

from helpers import run_cli, write_voc_tree

DATA = Path(__file__).parent / "data"
FRACTIONS = [0.7, 0.2, 0.1]
CLASSES = ["car", "person", "bicycle", "dog", "bus", "kite"]


def long_tailed_counts(n, c, seed):
    """Per-image class counts as detection data has them: a few classes per image, several objects each, class
    frequencies falling as 1/rank."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, c + 1)
    p /= p.sum()
    out = np.zeros((n, c), np.int64)
    for i in range(n):
        cls = rng.choice(c, size=int(rng.integers(1, 4)), replace=False, p=p)
        out[i, cls] = rng.integers(1, 5, len(cls))
    return out


@pytest.fixture(scope="module")
def voc_tree(tmp_path_factory):
    """80 annotated images (and 4 without objects) with long-tailed classes, as a standard VOC tree."""
    root = tmp_path_factory.mktemp("split") / "voc"
    counts = long_tailed_counts(80, len(CLASSES), 7)
    rng = np.random.default_rng(3)
    items = {}
    for i, row in enumerate(counts):
        objects = []
        for c in np.flatnonzero(row):
            for _ in range(row[c]):
                x, y = int(rng.integers(0, 30)), int(rng.integers(0, 20))
                objects.append((CLASSES[c], (x + 1, y + 1, x + 10, y + 8)))
        items[f"clip{i // 4:02d}_frame{i % 4}"] = (48, 32, objects)
    for i in range(4):
        items[f"empty{i}"] = (48, 32, [])
    return write_voc_tree(root, items, splits={"trainval": list(items)})


@pytest.fixture(scope="module")
def trees(voc_tree, tmp_path_factory):
    """The same data set as VOC, and converted by dsprep to COCO and YOLO."""
    out = {"voc": voc_tree}
    for fmt in ("coco", "yolo"):
        dest = tmp_path_factory.mktemp("split") / fmt
        run_cli("convert", voc_tree, "--to", fmt, "--out", dest, "-q")
        out[fmt] = dest
    return out


# ---- parsing ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("train=0.7,val=0.2,test=0.1", {"train": 0.7, "val": 0.2, "test": 0.1}),
    ("a=0.5, b=0.5", {"a": 0.5, "b": 0.5}),
    ("train=1", {"train": 1.0}),
    ("x=0.333,y=0.333,z=0.333", {"x": 1 / 3, "y": 1 / 3, "z": 1 / 3}),
])
def test_parse_ratios(text, want):
    got = parse_ratios(text)
    assert list(got) == list(want) and np.allclose(list(got.values()), list(want.values()))


@pytest.mark.parametrize("text, problem", [
    ("train=0.7,val=0.2", "sum to 0.9"),
    ("train=0.7,train=0.3", "twice"),
    ("train", "NAME=FRACTION"),
    ("train=x,val=1", "not a number"),
    ("train=0,val=1", "above 0"),
    ("a/b=0.5,c=0.5", "cannot name a split"),
    ("=0.5,c=0.5", "NAME=FRACTION"),
])
def test_parse_ratios_refuses(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_ratios(text)


def test_class_counts():
    counts = class_counts([["a", "b", "a"], [], ["c", "zz"], ["b"]], ["c", "b", "a"])
    assert counts.tolist() == [[0, 1, 2], [0, 0, 0], [1, 0, 0], [0, 1, 0]]


def test_groups_by_regex_and_sets():
    names = ["v1_f0.jpg", "v1_f1.jpg", "v2_f0.jpg", "single.jpg", "v2_f9.jpg"]
    labels = groups_by_regex(names, r"^(v\d+)_f")
    assert labels.tolist() == [0, 0, 1, 2, 1]
    joined = groups_from_sets(5, [[3, 4]], labels)
    assert joined[2] == joined[3] == joined[4] and joined[0] == joined[1] != joined[2]
    with pytest.raises(ValueError, match="no group"):
        groups_by_regex(names, r"v\d+")
    with pytest.raises(ValueError, match="regular expression"):
        groups_by_regex(names, r"(")


# ---- the stratification ----------------------------------------------------------------------------------------

def plain_loss(counts, assign, r, groups_ok=None):
    """The refinement's loss written out directly, one class and split at a time (the slow reference)."""
    from dsprep.ops.stratify import IMAGE_TOLERANCE
    n, c = counts.shape
    s = len(r)
    loss = 0.0
    for k in range(c):
        total = counts[:, k].sum()
        if total == 0:
            continue
        for j in range(s):
            e = counts[assign == j, k].sum() - total * r[j]
            loss += e * e / total ** 2 / c
    tol = max(IMAGE_TOLERANCE * n, 1.0)
    for j in range(s):
        e = (assign == j).sum() - n * r[j]
        loss += e * e / n ** 2 + 10.0 * max(abs(e) - tol, 0) ** 2
    for k in range(c):
        if (counts[:, k] > 0).sum() >= s:
            for j in range(s):
                loss += 100.0 * ((counts[assign == j, k] > 0).sum() == 0)
    return loss


def test_refinement_ends_where_no_single_move_lowers_the_plain_loss():
    counts = long_tailed_counts(60, 5, 1)
    r = np.array(FRACTIONS)
    assign = stratified_split(counts, r, np.random.default_rng(0))
    best = plain_loss(counts, assign, r)
    for i in range(len(counts)):
        for j in range(len(r)):
            if j != assign[i]:
                moved = assign.copy()
                moved[i] = j
                assert plain_loss(counts, moved, r) >= best - 1e-9, (i, j)
    # and the refinement did lower it below where the first stage left it
    start = stratified_split(counts, r, np.random.default_rng(0), max_moves=0)
    assert best < plain_loss(counts, start, r)


@pytest.mark.parametrize("n, c", [(200, 8), (1500, 25)])
def test_classes_far_closer_than_a_random_split(n, c):
    counts = long_tailed_counts(n, c, n)
    ours, rnd = [], []
    for seed in range(4):
        q = split_quality(counts, stratified_split(counts, FRACTIONS, np.random.default_rng(seed)), FRACTIONS)
        ours.append(q["mean_class_deviation"])
        rnd.append(split_quality(counts, random_split(n, FRACTIONS, np.random.default_rng(seed)),
                                 FRACTIONS)["mean_class_deviation"])
        assert np.abs(q["image_fractions"] - FRACTIONS).max() <= 0.02
        assert q["missing"] == []
    assert np.mean(ours) < np.mean(rnd) / 4, (ours, rnd)


def test_every_class_with_enough_images_in_every_split():
    # a rare class in exactly 3 images, each also holding many objects of a common class
    counts = np.zeros((40, 2), np.int64)
    counts[:, 0] = 1
    counts[:3, 0] = 12
    counts[:3, 1] = 1
    for seed in range(5):
        assign = stratified_split(counts, FRACTIONS, np.random.default_rng(seed))
        assert sorted(assign[:3].tolist()) == [0, 1, 2]
        assert split_quality(counts, assign, FRACTIONS)["missing"] == []


def test_groups_stay_together_and_seeds_differ():
    counts = long_tailed_counts(300, 6, 5)
    groups = np.arange(300) // 5  # 60 clips of 5 frames
    a = stratified_split(counts, FRACTIONS, np.random.default_rng(1), groups)
    for g in range(60):
        assert len(set(a[groups == g].tolist())) == 1
    assert np.abs(np.bincount(a, minlength=3) / 300 - FRACTIONS).max() <= 0.02
    assert np.array_equal(a, stratified_split(counts, FRACTIONS, np.random.default_rng(1), groups))
    assert not np.array_equal(a, stratified_split(counts, FRACTIONS, np.random.default_rng(2), groups))


def test_images_without_objects_are_split_too():
    counts = np.zeros((50, 3), np.int64)
    assign = stratified_split(counts, FRACTIONS, np.random.default_rng(0))
    assert np.bincount(assign, minlength=3).tolist() == [35, 10, 5]


# ---- the command -----------------------------------------------------------------------------------------------

def splits_of(root):
    """``{stem: split}`` of a data set written by split: VOC from its split lists (a VOC tree read whole has no
    split per record), the others from their records."""
    ds = load_dataset(root)
    if ds.format != "voc":
        return {r.stem: r.split for r in ds.records}
    out = {}
    for lst in (Path(root) / "ImageSets" / "Main").iterdir():
        for stem in lst.read_text().split():
            assert stem not in out, f"{stem} in two splits"
            out[stem] = lst.stem
    return out


def tree_digest(root):
    """Every file's relative path and content hash (for byte-identical output)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo"])
def test_split_command_each_format(trees, tmp_path, fmt):
    src = load_dataset(trees[fmt])
    res = run_cli("split", trees[fmt], "--out", tmp_path / "a", "--ratios", "train=0.7,val=0.2,test=0.1",
                  "--seed", "4", "--json", "-q")
    summary = json.loads(res.stdout)
    out = load_dataset(tmp_path / "a")
    assert out.format == fmt
    assert sorted(r.stem for r in out.records) == sorted(r.stem for r in src.records)
    # every image in exactly one split, the split files as each format names them
    splits = splits_of(tmp_path / "a")
    assert set(splits.values()) == {"train", "val", "test"} and len(splits) == len(src.records)
    if fmt == "voc":
        sets = tmp_path / "a" / "ImageSets" / "Main"
        assert sorted(p.name for p in sets.iterdir()) == ["test.txt", "train.txt", "val.txt"]
        listed = [s for p in sets.iterdir() for s in p.read_text().split()]
        assert sorted(listed) == sorted(splits)
    elif fmt == "coco":
        assert sorted(p.name for p in (tmp_path / "a" / "annotations").iterdir()) == \
            ["instances_test.json", "instances_train.json", "instances_val.json"]
    else:
        yaml = (tmp_path / "a" / "data.yaml").read_text()
        assert "train: images/train" in yaml and "val: images/val" in yaml and "test: images/test" in yaml
        assert sorted(p.name for p in (tmp_path / "a" / "labels").iterdir()) == ["test", "train", "val"]
    # the objects went with their images; nothing lost
    by_stem = {r.stem: r for r in src.records}
    for rec in out.records:
        assert sorted(rec.names) == sorted(by_stem[rec.stem].names)
    n = len(out.records)
    for name, f in zip(["train", "val", "test"], FRACTIONS):
        assert summary["counts"][f"images_{name}"] == sum(v == name for v in splits.values())
        assert abs(summary["counts"][f"images_{name}"] / n - f) <= 0.02 + 1 / n
    # each class's objects near the asked fractions, every class present in every split
    counts = class_counts([r.names for r in out.records], out.classes)
    assign = np.array([["train", "val", "test"].index(splits[r.stem]) for r in out.records])
    q = split_quality(counts, assign, FRACTIONS)
    assert q["missing"] == [] and q["max_class_deviation"] < 0.08
    # images hard-linked by default
    img = next(p for p in (tmp_path / "a").rglob("*.jpg"))
    assert img.stat().st_nlink >= 2


def test_same_seed_same_bytes_other_seed_other_split(trees, tmp_path):
    args = ["--ratios", "train=0.7,val=0.2,test=0.1", "-q"]
    run_cli("split", trees["coco"], "--out", tmp_path / "a", "--seed", "5", *args)
    run_cli("split", trees["coco"], "--out", tmp_path / "b", "--seed", "5", "--workers", "2", *args)
    run_cli("split", trees["coco"], "--out", tmp_path / "c", "--seed", "6", *args)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    a, c = splits_of(tmp_path / "a"), splits_of(tmp_path / "c")
    assert a != c and set(a) == set(c)


def test_group_regex_keeps_clips_together(trees, tmp_path):
    run_cli("split", trees["yolo"], "--out", tmp_path / "a", "--ratios", "train=0.8,val=0.2", "--group",
            r"regex:^(clip\d+)_", "-q")
    by_clip = {}
    for rec in load_dataset(tmp_path / "a").records:
        by_clip.setdefault(rec.stem.split("_")[0], set()).add(rec.split)
    assert all(len(v) == 1 for v in by_clip.values())
    assert {s for v in by_clip.values() for s in v} == {"train", "val"}


@pytest.mark.parametrize("link", ["symlink", "copy"])
def test_link_modes(trees, tmp_path, link):
    run_cli("split", trees["voc"], "--out", tmp_path / "a", "--ratios", "train=0.5,val=0.5", "--link", link, "-q")
    imgs = sorted((tmp_path / "a" / "JPEGImages").iterdir())
    assert imgs
    for img in imgs:
        src = trees["voc"] / "JPEGImages" / img.name
        if link == "symlink":
            assert img.is_symlink() and os.path.realpath(img) == os.path.realpath(src)
        else:
            assert not img.is_symlink() and img.stat().st_nlink == 1 and img.read_bytes() == src.read_bytes()


def test_to_another_format_with_map_and_drop(trees, tmp_path):
    res = run_cli("split", trees["voc"], "--out", tmp_path / "a", "--ratios", "train=0.7,val=0.3", "--to", "coco",
                  "--map", "bus:car,kite:toy", "--drop", "dog", "--json", "-q")
    counts = json.loads(res.stdout)["counts"]
    src = load_dataset(trees["voc"])
    names = [n for r in src.records for n in r.names]
    assert counts["class_renamed"] == names.count("bus") + names.count("kite")
    assert counts["class_dropped"] == names.count("dog")
    out = load_dataset(tmp_path / "a")
    assert out.format == "coco" and "dog" not in out.classes and "bus" not in out.classes and "toy" in out.classes
    assert sorted({r.split for r in out.records}) == ["train", "val"]
    assert sum(len(r) for r in out.records) == len(names) - names.count("dog")


def test_real_small_sets(shared, tmp_path):
    for k, src in enumerate([shared / "voc_sample", DATA / "coco_cvat", DATA / "yolo_ultralytics"]):
        run_cli("split", src, "--out", tmp_path / str(k), "--ratios", "train=0.6,val=0.4", "-q")
        splits = splits_of(tmp_path / str(k))
        assert sorted(splits) == sorted(r.stem for r in load_dataset(src).records)
        assert set(splits.values()) == {"train", "val"}


@pytest.mark.parametrize("args, problem", [
    (["--ratios", "train=0.7,val=0.2"], "sum to"),
    (["--ratios", "train=0.5,val=0.5", "--group", "videos"], "regex:PATTERN"),
    (["--ratios", "train=0.5,val=0.5", "--group", "regex:frame"], "no group"),
    (["--ratios", "train=0.5,val=0.5", "--link", "hardest"], "hardest"),
    (["--ratios", "train=0.5,val=0.5", "--map", "zebra:horse"], "zebra"),
    (["--ratios", "train=0.5,val=0.5", "--drop", "zebra"], "zebra"),
])
def test_usage_errors(trees, tmp_path, args, problem):
    res = run_cli("split", trees["voc"], "--out", tmp_path / "a", *args, ok=False)
    assert res.exit_code == 2 and problem in res.output
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_output_inside_input_refused(trees):
    res = run_cli("split", trees["voc"], "--out", trees["voc"] / "out", "--ratios", "a=0.5,b=0.5", ok=False)
    assert res.exit_code == 2 and "input" in res.output


def test_group_duplicates_keeps_copies_together(tmp_path):
    """Exact copies under other names (the same photo saved twice) always land in one split."""
    import cv2
    items = {f"img{i:02d}": (64, 48, [(CLASSES[i % 3], (1, 1, 20, 20))]) for i in range(30)}
    root = write_voc_tree(tmp_path / "voc", items)
    rng = np.random.default_rng(0)
    for i in range(30):  # every image its own content: smooth random blobs, alike in nothing
        blobs = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)
        img = cv2.resize(blobs, (64, 48), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(root / "JPEGImages" / f"img{i:02d}.jpg"), img)
    copies = {"copy_a": "img00", "copy_b": "img07", "copy_c": "img07"}
    for new, old in copies.items():
        (root / "JPEGImages" / f"{new}.jpg").write_bytes((root / "JPEGImages" / f"{old}.jpg").read_bytes())
        (root / "Annotations" / f"{new}.xml").write_bytes(
            (root / "Annotations" / f"{old}.xml").read_bytes().replace(old.encode(), new.encode()))
    together = 0
    for seed in range(6):
        out = tmp_path / f"s{seed}"
        res = run_cli("split", root, "--out", out, "--ratios", "train=0.5,val=0.5", "--group", "duplicates",
                      "--seed", seed, "-q")
        where = splits_of(out)
        assert where["copy_a"] == where["img00"]
        assert where["copy_b"] == where["copy_c"] == where["img07"]
        assert "2 groups of images kept together" in res.stderr
        plain = splits_of(run_cli("split", root, "--out", tmp_path / f"p{seed}", "--ratios", "train=0.5,val=0.5",
                                  "--seed", seed, "-q") and tmp_path / f"p{seed}")
        together += plain["copy_a"] == plain["img00"] and plain["copy_b"] == plain["copy_c"] == plain["img07"]
    assert together < 6  # without --group the copies do get parted
