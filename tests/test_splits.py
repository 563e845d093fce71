"""A data set's splits survive every command: reading VOC lists without --split, convert between every format pair,
tile, crop, synth --append, packing; --split given twice; eval scoring the split its results are for."""
import json
import shutil
from pathlib import Path

import pytest

from dsprep.dataset import load_dataset
from dsprep.splits import read_list, splits_of

from helpers import run_cli, write_voc_tree

# a VOC 2007-like tree: train, val, test and their union trainval (an image in train is in trainval too)
SPLITS = {"train": ["a", "b", "c"], "val": ["d", "e"], "trainval": ["a", "b", "c", "d", "e"], "test": ["f"]}


def voc_with_splits(root: Path) -> Path:
    items = {s: (64, 48, [("cat", (5, 6, 30, 40)), ("dog", (20, 10, 60, 44), "<difficult>1</difficult>")])
             for s in "abcdef"}
    return write_voc_tree(root, items, splits=SPLITS)


def members(ds):
    out = {}
    for r in ds.records:
        for s in splits_of(r):
            out.setdefault(s, set()).add(r.stem)
    return out


def test_voc_lists_are_read_without_split(tmp_path):
    ds = load_dataset(voc_with_splits(tmp_path / "voc"))
    got = members(ds)
    assert got == {k: set(v) for k, v in SPLITS.items()}
    primary = {r.stem: r.split for r in ds.records}
    assert primary == {"a": "train", "b": "train", "c": "train", "d": "val", "e": "val", "f": "test"}


def test_primary_split_set_by_a_command_wins_over_stale_memberships(tmp_path):
    ds = load_dataset(voc_with_splits(tmp_path / "voc"))
    rec = next(r for r in ds.records if r.stem == "a")
    assert splits_of(rec) == ["train", "trainval"]
    rec.split = "val"  # as a split/merge command re-assigns it
    assert splits_of(rec) == ["val"]


@pytest.mark.parametrize("target,expect", [
    ("yolo", {"train": "abc", "val": "de", "test": "f"}),
    ("yolo-obb", {"train": "abc", "val": "de", "test": "f"}),
    ("coco", {"train": "abc", "val": "de", "test": "f"}),
    ("labelme", {"train": "abc", "val": "de", "test": "f"}),
    ("voc", {"train": "abc", "val": "de", "test": "f", "trainval": "abcde"}),
    ("dota", {"train": "abc", "val": "de", "test": "f", "trainval": "abcde"}),
])
def test_convert_keeps_every_split(tmp_path, target, expect):
    src = voc_with_splits(tmp_path / "voc")
    res = run_cli("convert", src, "--to", target, "--out", tmp_path / "out", "--json")
    counts = json.loads(res.stdout)["counts"]
    out = load_dataset(tmp_path / "out")
    assert members(out) == {k: set(v) for k, v in expect.items()}
    if "trainval" in expect:  # the format can say an image is in two splits: nothing to count
        assert "split_membership_not_kept" not in counts
    else:  # written once, under its first split: the five trainval images are counted and named
        assert counts["split_membership_not_kept"] == 5
        assert "split_membership_not_kept: 5" in res.stderr


def test_yolo_data_yaml_names_train_val_test(tmp_path):
    run_cli("convert", voc_with_splits(tmp_path / "voc"), "--to", "yolo", "--out", tmp_path / "out")
    text = (tmp_path / "out" / "data.yaml").read_text()
    assert "train: images/train" in text and "val: images/val" in text and "test: images/test" in text
    assert "no validation split" not in text


def test_coco_writes_one_file_per_split(tmp_path):
    run_cli("convert", voc_with_splits(tmp_path / "voc"), "--to", "coco", "--out", tmp_path / "out")
    files = sorted(p.name for p in (tmp_path / "out" / "annotations").iterdir())
    assert files == ["instances_test.json", "instances_train.json", "instances_val.json"]
    doc = json.loads((tmp_path / "out" / "annotations" / "instances_val.json").read_text())
    assert sorted(i["file_name"] for i in doc["images"]) == ["d.jpg", "e.jpg"]


def test_a_split_given_twice_is_refused(tmp_path):
    src = voc_with_splits(tmp_path / "voc")
    res = run_cli("convert", src, "--to", "yolo", "--out", tmp_path / "out", "--split", "train", "--split", "val",
                  ok=False)
    assert res.exit_code == 2
    assert "--split" in res.output and "train, val" in res.output
    assert not (tmp_path / "out").exists()


def test_split_lists_with_comments_and_blank_lines(tmp_path):
    src = voc_with_splits(tmp_path / "voc")
    (src / "ImageSets" / "Main" / "val.txt").write_text("# validation images\n\nd\n  # e is held out\ne  # last\n\n")
    ds = load_dataset(src, split="val")
    assert sorted(r.stem for r in ds.records) == ["d", "e"]
    assert not [p for p in ds.problems if "#" in p.detail]
    assert read_list(src / "ImageSets" / "Main" / "val.txt") == ["d", "e"]


def test_an_image_listed_without_annotation_is_an_image_without_objects(tmp_path):
    src = voc_with_splits(tmp_path / "voc")
    (src / "Annotations" / "e.xml").unlink()
    for split in (None, "val"):
        ds = load_dataset(src, split=split)
        e = next(r for r in ds.records if r.stem == "e")
        assert len(e) == 0 and (e.width, e.height) == (64, 48) and e.split == "val"
        assert not [p for p in ds.problems if "e." in p.file]
    run_cli("convert", src, "--to", "yolo", "--out", tmp_path / "out")
    assert (tmp_path / "out" / "labels" / "val" / "e.txt").read_text() == ""
    assert (tmp_path / "out" / "images" / "val" / "e.jpg").is_file()


# ---- eval: the split the results are for ---------------------------------------------------------------------

def _eval_set(shared, tmp_path):
    """eval_ref/voc (ten real-layout images, the devkit's own result files) with train/val lists, and the val
    results renamed as the devkit names them: comp4_det_val_<class>.txt."""
    gt = tmp_path / "gt"
    shutil.copytree(shared / "eval_ref" / "voc" / "Annotations", gt / "Annotations")
    shutil.copytree(shared / "eval_ref" / "voc" / "JPEGImages", gt / "JPEGImages")
    ids = sorted(p.stem for p in (gt / "Annotations").iterdir())
    val = ids[::3]
    (gt / "ImageSets" / "Main").mkdir(parents=True)
    (gt / "ImageSets" / "Main" / "train.txt").write_text("".join(f"{i}\n" for i in ids if i not in val))
    (gt / "ImageSets" / "Main" / "val.txt").write_text("".join(f"{i}\n" for i in val))
    res = tmp_path / "results"
    res.mkdir()
    for f in (shared / "eval_ref" / "voc" / "results").glob("comp4_det_test_*.txt"):
        lines = [ln for ln in f.read_text().splitlines() if ln.split()[0] in val]
        (res / f.name.replace("_test_", "_val_")).write_text("".join(ln + "\n" for ln in lines))
    return gt, res, val


def _map(res):
    return json.loads(res.stdout)["mAP"]


def test_eval_scores_the_image_set_the_result_files_name(shared, tmp_path):
    gt, res, val = _eval_set(shared, tmp_path)
    explicit = _map(run_cli("eval", gt, res, "--split", "val", "--json"))
    auto = run_cli("eval", gt, res, "--json")
    assert _map(auto) == explicit
    assert json.loads(auto.stdout)["images"] == len(val)
    assert f"image set 'val'" in auto.stderr and f"its {len(val)} of 10 images" in auto.stderr
    # what scoring every image gives (the images without results count as all missed): far lower
    flat = tmp_path / "flat"
    shutil.copytree(gt, flat)
    shutil.rmtree(flat / "ImageSets")
    everything = _map(run_cli("eval", flat, res, "--json"))
    assert everything < explicit - 0.2


def test_eval_results_naming_some_images_score_the_matching_split(shared, tmp_path):
    gt, res, val = _eval_set(shared, tmp_path)
    for f in list(res.iterdir()):  # a set the ground truth has no list for: the images they name decide
        f.rename(res / f.name.replace("comp4_det_val_", "comp4_det_test_"))
    explicit = _map(run_cli("eval", gt, res, "--split", "val", "--json"))
    auto = run_cli("eval", gt, res, "--json")
    assert _map(auto) == explicit
    assert "all in split 'val'" in auto.stderr and auto.stderr.count("note:") == 1


def test_eval_refuses_when_two_splits_fit_alike(shared, tmp_path):
    gt, res, val = _eval_set(shared, tmp_path)
    lists = gt / "ImageSets" / "Main"
    ids = sorted(p.stem for p in (gt / "Annotations").iterdir())
    other = [i for i in ids if i not in val][:len(val) - 1] + [val[0]]
    (lists / "val2.txt").write_text("".join(f"{i}\n" for i in other))
    (lists / "val.txt").write_text("".join(f"{i}\n" for i in val))
    for f in list(res.iterdir()):  # results on val[0] only, which both lists hold
        keep = [ln for ln in f.read_text().splitlines() if ln.split()[0] == val[0]]
        (res / f.name.replace("comp4_det_val_", "comp4_det_test_")).write_text("".join(ln + "\n" for ln in keep))
        f.unlink()
    out = run_cli("eval", gt, res, ok=False)
    assert out.exit_code == 2 and "--split (val, val2)" in out.output and "Traceback" not in out.output


# ---- tile, tile-dota, crop, synth --append, packing -----------------------------------------------------------

def test_tile_keeps_every_split_and_both_memberships(tmp_path):
    src = voc_with_splits(tmp_path / "voc")
    run_cli("tile", src, "--out", tmp_path / "t", "--size", "32", "--gap", "0", "-q")
    lists = {p.stem: set(read_list(p)) for p in (tmp_path / "t" / "ImageSets" / "Main").glob("*.txt")}
    assert set(lists) == {"train", "val", "trainval", "test"}
    source = lambda tile: tile.split("__")[0]  # noqa: E731
    assert {k: {source(t) for t in v} for k, v in lists.items()} == {k: set(v) for k, v in SPLITS.items()}
    assert lists["trainval"] == lists["train"] | lists["val"]
    run_cli("tile", src, "--out", tmp_path / "y", "--size", "32", "--gap", "0", "--to", "yolo", "-q")
    assert sorted(p.name for p in (tmp_path / "y" / "images").iterdir()) == ["test", "train", "val"]


def test_tile_dota_keeps_the_split_lists_of_its_source(tmp_path):
    src = voc_with_splits(tmp_path / "voc")
    run_cli("convert", src, "--to", "dota", "--out", tmp_path / "dota")
    assert read_list(tmp_path / "dota" / "ImageSets" / "trainval.txt") == list("abcde")
    run_cli("tile-dota", tmp_path / "dota", "--out", tmp_path / "t", "--size", "32", "--gap", "0", "-q")
    lists = {p.stem: read_list(p) for p in (tmp_path / "t" / "ImageSets").glob("*.txt")}
    tiles = sorted(p.stem for p in (tmp_path / "t" / "images").iterdir())
    assert set(lists) == set(SPLITS)
    for split, stems in SPLITS.items():
        assert lists[split] == [t for t in tiles if t.split("__")[0] in stems]
    ds = load_dataset(tmp_path / "t", split="val")
    assert {r.stem.split("__")[0] for r in ds.records} == {"d", "e"}


def test_crop_lists_each_splits_crops(tmp_path):
    src = voc_with_splits(tmp_path / "voc")
    run_cli("crop", src, "--out", tmp_path / "c", "--backgrounds", tmp_path / "bg", "--max-blanked", "0.99", "-q")
    lists = {p.stem: read_list(p) for p in (tmp_path / "c" / "ImageSets").glob("*.txt")}
    assert lists["val"] == ["cat/d_0.png", "dog/d_1.png", "cat/e_0.png", "dog/e_1.png"]
    assert len(lists["trainval"]) == 10 and lists["test"] == ["cat/f_0.png", "dog/f_1.png"]
    assert all((tmp_path / "c" / f).is_file() for v in lists.values() for f in v)
    assert read_list(tmp_path / "bg" / "ImageSets" / "train.txt") == ["a.png", "b.png", "c.png"]
    # a split's crops feed synth alone; the lists are no class folder of their own
    run_cli("synth", "--backgrounds", tmp_path / "bg", "--objects", tmp_path / "c", "--out", tmp_path / "s",
            "-n", "2", "-q")
    assert set(load_dataset(tmp_path / "s").classes) <= {"cat", "dog"}


@pytest.mark.parametrize("fmt", ["yolo", "coco", "voc", "dota"])
def test_synth_append_keeps_the_splits_already_written(tmp_path, fmt):
    src = voc_with_splits(tmp_path / "voc")
    run_cli("crop", src, "--out", tmp_path / "c", "--backgrounds", tmp_path / "bg", "--max-blanked", "0.99", "-q")
    args = ["synth", "--backgrounds", tmp_path / "bg", "--objects", tmp_path / "c", "--out", tmp_path / "s",
            "--format", fmt, "-n", "2", "-q"]
    run_cli(*args, "--split-name", "val")
    run_cli(*args, "--split-name", "train", "--append")
    ds = load_dataset(tmp_path / "s")
    got = {r.stem: r.split for r in ds.records}
    assert got == {"synth_000000": "val", "synth_000001": "val", "synth_000002": "train", "synth_000003": "train"}


@pytest.mark.parametrize("command,suffix", [("voc-to-h5", ".h5"), ("voc-to-pickle", ".pkl")])
def test_packing_stores_each_images_splits(tmp_path, command, suffix):
    src = voc_with_splits(tmp_path / "voc")
    out = tmp_path / f"p{suffix}"
    run_cli(command, src, out, "--size", "32x32", "-q")
    ds = load_dataset(out)
    assert members(ds) == {k: set(v) for k, v in SPLITS.items()}
    assert {r.stem: r.split for r in ds.records}["d"] == "val"
    # and the packed images still come from their group
    assert ds.image_getter(ds.records[0]).shape == (32, 32, 3)
    from dsprep.hdf5 import DetectionH5
    (reader,) = DetectionH5.open_splits(out).values()
    assert reader.image_splits[0] == "train,trainval"
