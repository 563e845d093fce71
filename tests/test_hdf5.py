import json
import os
import pickle
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import cv2
import h5py
import numpy as np
import pytest

from dsprep.dataset import load_dataset
from dsprep.hdf5 import DetectionH5
from dsprep.resize import fit_image, map_boxes, unmap_boxes

from helpers import run_cli as run, gradient, write_voc_tree




@pytest.fixture
def voc(tmp_path):
    root = write_voc_tree(tmp_path / "voc", {
        "a": (64, 48, [("cat", (11, 6, 30, 25)), ("dog", (31, 1, 64, 48), "<difficult>1</difficult>")]),
        "b": (33, 71, [("cat", (1, 1, 10, 10))]),    # odd size, portrait
        "c": (50, 50, [])},                            # no objects
        splits={"train": ["a", "b"], "val": ["c"]})
    cv2.imwrite(str(root / "JPEGImages" / "b.jpg"), gradient(33, 71)[:, :, 0])  # grayscale file
    return root


@pytest.mark.parametrize("mode", [["--size", "64x64"], ["--size", "40x30", "--resize", "stretch"], ["--encoded"],
                                  ["--size", "64x64", "--compression", "gzip"]])
def test_round_trip_every_value(voc, tmp_path, mode):
    out = tmp_path / "p.h5"
    run("voc-to-h5", voc, out, "--split", "train", "--split", "val", *mode)
    source = {r.stem: r for r in load_dataset(voc).records}
    for split, stems in (("train", ["a", "b"]), ("val", ["c"])):
        d = DetectionH5(out, split)
        assert len(d) == len(stems) and d.classes == ["cat", "dog"]
        for i, stem in enumerate(stems):
            s = d[i]
            rec = source[stem]
            assert s["filename"] == f"{stem}.jpg"
            assert tuple(s["orig_size"]) == (rec.width, rec.height)
            # boxes mapped back through the stored transform match the XML
            np.testing.assert_allclose(unmap_boxes(s["boxes"], s["transform"]), rec.boxes, atol=1e-3)
            assert [d.classes[k] for k in s["labels"]] == rec.names
            assert s["difficult"].tolist() == rec.difficult.astype(bool).tolist()
            img = s["image"]
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
            src_rgb = cv2.cvtColor(cv2.imread(rec.image_path), cv2.COLOR_BGR2RGB)
            if "--encoded" in mode:
                np.testing.assert_array_equal(img, src_rgb)
            else:
                w, h = (int(v) for v in mode[1].split("x"))
                want, t = fit_image(cv2.imread(rec.image_path), (w, h), "stretch" if "stretch" in mode else "letterbox")
                np.testing.assert_array_equal(img, cv2.cvtColor(want, cv2.COLOR_BGR2RGB))
                np.testing.assert_allclose(s["boxes"], map_boxes(rec.boxes, t).astype(np.float32))


def test_layout_readable_with_plain_h5py(voc, tmp_path):
    out = tmp_path / "p.h5"
    run("voc-to-h5", voc, out, "--size", "32x32")
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "dsprep-detection" and json.loads(f.attrs["classes"]) == ["cat", "dog"]
        g = f["all"]
        assert g["images"].shape == (3, 32, 32, 3) and g["images"].chunks is None  # contiguous, not auto-chunked
        assert g["boxes"].dtype == np.float32 and g["boxes"].shape == (3, 4)
        assert g["box_offsets"][()].tolist() == [0, 2, 3, 3]
        assert g["labels"][()].tolist() == [0, 1, 0] and g["difficult"][()].tolist() == [False, True, False]
        assert g["orig_size"][()].tolist() == [[64, 48], [33, 71], [50, 50]]
        assert [x.decode() for x in g["filenames"][()]] == ["a.jpg", "b.jpg", "c.jpg"]
    run("voc-to-h5", voc, tmp_path / "e.h5")
    with h5py.File(tmp_path / "e.h5", "r") as f:
        g = f["all"]
        offs = g["encoded_offsets"][()]
        assert g["encoded"].chunks is None and offs[-1] == g["encoded"].shape[0]
        assert bytes(g["encoded"][offs[0]:offs[1]]) == (voc / "JPEGImages" / "a.jpg").read_bytes()


def test_existing_output_needs_overwrite_and_bad_options(voc, tmp_path):
    out = tmp_path / "p.h5"
    out.write_bytes(b"precious")
    res = run("voc-to-h5", voc, out, "--size", "32x32", ok=False)
    assert res.exit_code == 2 and "already exists" in res.output and out.read_bytes() == b"precious"
    res = run("voc-to-h5", voc, tmp_path / "q.h5", "--size", "32x32", "--encoded", ok=False)
    assert res.exit_code == 2 and "exclude each other" in res.output
    res = run("voc-to-h5", voc, tmp_path / "q.h5", "--size", "big", ok=False)
    assert res.exit_code == 2 and "Invalid value for '--size': size must look like 512x512" in res.output
    assert not (tmp_path / "q.h5").exists()


def test_failed_pack_leaves_nothing(voc, tmp_path):
    (voc / "JPEGImages" / "b.jpg").write_bytes(b"garbage")
    out = tmp_path / "p.h5"
    res = run("voc-to-h5", voc, out, "--size", "32x32", ok=False)
    assert res.exit_code == 1 and "b.jpg: not a readable image" in res.output
    assert os.listdir(tmp_path) == ["voc"]  # no target, no temporary left behind
    res = run("voc-to-h5", voc, out, "--size", "32x32", "--on-error", "skip")
    assert "1 skipped" in res.output
    assert [DetectionH5(out)[i]["filename"] for i in range(2)] == ["a.jpg", "c.jpg"]


def test_killed_packer_leaves_no_file(tmp_path):
    root = tmp_path / "big"
    items = {f"i{k:03d}": (400, 300, [("x", (1, 1, 50, 50))]) for k in range(150)}
    write_voc_tree(root, items)
    out = tmp_path / "p.h5"
    proc = subprocess.Popen([sys.executable, "-m", "dsprep", "voc-to-h5", str(root), str(out), "--size", "512x512",
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith(".p.h5.") for p in tmp_path.iterdir()):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # Ctrl-C in the middle of writing
    proc.wait(timeout=60)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".p.h5")] == []


def test_reader_in_two_processes_and_pickles(voc, tmp_path):
    out = tmp_path / "p.h5"
    run("voc-to-h5", voc, out, "--size", "48x48")
    d = DetectionH5(out)
    first = d[0]["image"]  # opened in this process before handing it over
    clone = pickle.loads(pickle.dumps(d))
    np.testing.assert_array_equal(clone[0]["image"], first)
    with ProcessPoolExecutor(2) as ex:
        images = list(ex.map(_read_image, [d] * 4, [0, 1, 2, 0]))
    for i, img in zip([0, 1, 2, 0], images):
        np.testing.assert_array_equal(img, d[i]["image"])


def _read_image(dataset, i):
    return dataset[i]["image"]


def test_get_batch_and_index_errors(voc, tmp_path):
    out = tmp_path / "p.h5"
    run("voc-to-h5", voc, out, "--size", "48x48")
    d = DetectionH5(out)
    batch = d.get_batch([2, 0])
    assert batch["images"].shape == (2, 48, 48, 3)
    np.testing.assert_array_equal(batch["images"][1], d[0]["image"])
    assert batch["filenames"] == ["c.jpg", "a.jpg"] and len(batch["boxes"][0]) == 0
    with pytest.raises(IndexError):
        d[3]
    np.testing.assert_array_equal(d[-1]["image"], d[2]["image"])


def test_pickle_equals_h5(voc, tmp_path):
    for args in (["--size", "40x40"], ["--encoded"]):
        run("voc-to-h5", voc, tmp_path / "p.h5", *args, "--overwrite")
        run("voc-to-pickle", voc, tmp_path / "p.pkl", *args, "--overwrite")
        a, b = DetectionH5(tmp_path / "p.h5"), DetectionH5(tmp_path / "p.pkl")
        assert len(a) == len(b) and a.classes == b.classes
        for i in range(len(a)):
            x, y = a[i], b[i]
            for k in ("image", "boxes", "labels", "difficult", "transform", "orig_size"):
                np.testing.assert_array_equal(x[k], y[k])
    run("voc-to-pickle", voc, tmp_path / "ann.pkl", "--annotations-only")
    c = DetectionH5(tmp_path / "ann.pkl")
    np.testing.assert_array_equal(c[0]["image"], a[0]["image"])  # read from the original file
    np.testing.assert_array_equal(c[1]["boxes"], a[1]["boxes"])


def test_color_step_and_info_visualize_on_packed(voc, tmp_path):
    from dsprep.color import gray_world
    want = cv2.cvtColor(gray_world(cv2.imread(str(voc / "JPEGImages" / "a.jpg"))), cv2.COLOR_BGR2RGB)
    run("voc-to-h5", voc, tmp_path / "f.h5", "--size", "64x48", "--color", "gray-world")  # a.jpg is 64x48
    np.testing.assert_array_equal(DetectionH5(tmp_path / "f.h5")[0]["image"], want)
    run("voc-to-h5", voc, tmp_path / "c.h5", "--encoded", "--color", "gray-world")
    got = DetectionH5(tmp_path / "c.h5")[0]["image"]
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 2  # corrected, then re-encoded as JPEG q95
    run("voc-to-h5", voc, tmp_path / "p.h5", "--size", "64x64", "--split", "train", "--split", "val")
    data = json.loads(run("info", tmp_path / "p.h5", "--split", "train", "--json").output)
    assert data["images"] == 2 and data["objects"] == 3 and data["classes"] == {"cat": 2, "dog": 1}
    res = run("info", tmp_path / "p.h5", ok=False)
    assert "several splits" in res.output
    run("visualize", "boxes", tmp_path / "p.h5", "--split", "train", "--out", tmp_path / "vis", "--ext", ".png")
    drawn = cv2.imread(str(tmp_path / "vis" / "a.png"))
    assert drawn.shape == (64, 64, 3)


def test_real_voc_sample_packs(shared, tmp_path):
    out = tmp_path / "voc.h5"
    run("voc-to-h5", shared / "voc_sample", out, "--size", "320x320", "--split", "trainval", "--workers", "2")
    d = DetectionH5(out, "trainval")
    recs = load_dataset(shared / "voc_sample", split="trainval").records
    assert len(d) == len(recs) == 13
    for i, rec in enumerate(recs):
        np.testing.assert_allclose(unmap_boxes(d[i]["boxes"], d[i]["transform"]), rec.boxes, atol=1e-3)
