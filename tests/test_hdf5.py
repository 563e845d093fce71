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

from dsprep.core import DatasetError
from dsprep.dataset import load_dataset
from dsprep.hdf5 import DetectionH5
from dsprep.pickles import read_pickle
from dsprep.resize import fit_image, map_boxes, map_polygons, unmap_boxes, unmap_polygons

from helpers import run_cli as run, gradient, voc_xml, write_voc_tree


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
    assert "1 of 3 inputs skipped (1 not a readable image)" in res.output
    assert [DetectionH5(out)[i]["filename"] for i in range(2)] == ["a.jpg", "c.jpg"]


def test_killed_packer_leaves_no_file(tmp_path):
    root = tmp_path / "big"
    items = {f"i{k:03d}": (400, 300, [("x", (1, 1, 50, 50))]) for k in range(600)}
    write_voc_tree(root, items)
    out = tmp_path / "p.h5"
    proc = subprocess.Popen([sys.executable, "-m", "dsprep", "voc-to-h5", str(root), str(out), "--size", "512x512",
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith(".p.h5.") for p in tmp_path.iterdir()):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # Ctrl-C in the middle of writing
    assert proc.wait(timeout=60) == 130  # it was interrupted (not finished before the signal)
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


# ---- pickle caches: a restricted unpickler --------------------------------------------------------------------------

class _Runs:
    """Unpickling this calls ``func(*args)``: the classic way a pickle runs code."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch_with(kind, marker):
    if kind == "os.system":
        return _Runs(os.system, f"touch {marker}"), "posix.system"
    if kind == "eval":
        return _Runs(eval, f"open({str(marker)!r}, 'w').close()"), "builtins.eval"
    return _Runs(subprocess.call, ["touch", str(marker)]), "subprocess.call"


@pytest.mark.parametrize("kind", ["os.system", "eval", "subprocess.call"])
def test_pickle_that_would_run_code_is_refused(voc, tmp_path, kind):
    run("voc-to-pickle", voc, tmp_path / "good.pkl", "--annotations-only")
    with open(tmp_path / "good.pkl", "rb") as f:
        payload = pickle.load(f)  # our own file
    marker = tmp_path / "ran"
    payload["splits"]["all"]["boxes"] = _touch_with(kind, marker)[0]  # deep inside a valid-looking cache
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    refused = _touch_with(kind, marker)[1]

    with pytest.raises(DatasetError) as e:
        DetectionH5(evil)
    assert str(evil) in str(e.value) and refused in str(e.value) and "refused" in str(e.value)
    for args in (["info", evil], ["visualize", "boxes", evil, "--out", tmp_path / "vis"]):
        res = run(*args, ok=False)
        assert res.exit_code == 2 and res.output.startswith("error: ") and res.output.count("\n") == 1
        assert str(evil) in res.output and refused in res.output
    assert not marker.exists()
    # the file really is dangerous: a plain pickle.load runs it
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(evil)!r}, 'rb'))"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    assert marker.exists()


def _numpy1_names(data: bytes) -> bytes:
    """A protocol-5 pickle as numpy 1.x writes it: numpy.core.* instead of numpy._core.* (frames dropped, so the
    shorter names fit)."""
    import pickletools
    frames = [pos for op, _, pos in pickletools.genops(data) if op.name == "FRAME"]
    for pos in reversed(frames):
        data = data[:pos] + data[pos + 9:]
    for new in ("numpy.core.numeric", "numpy.core.multiarray"):
        old = new.replace("numpy.core", "numpy._core")
        data = data.replace(bytes([0x8C, len(old)]) + old.encode(), bytes([0x8C, len(new)]) + new.encode())
    assert b"numpy._core" not in data and b"numpy.core" in data
    return data


def test_pickle_loader_accepts_every_array_kind(tmp_path):
    values = {
        "f32": np.arange(8, dtype=np.float32).reshape(2, 4), "i64": np.arange(3), "i32": np.array([1, -2], np.int32),
        "bool": np.array([True, False]), "u8": np.arange(24, dtype=np.uint8).reshape(1, 2, 4, 3),
        "empty": np.zeros((0, 4, 2), np.float32), "text": np.array(["a.jpg", "bé.png"]),
        "strided": np.arange(12).reshape(3, 4)[:, ::2],
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "scalar": np.float64(2.5),
        "int_scalar": np.int32(7), "dtype": np.dtype("<f4"),
        "plain": [None, True, 1, 2.5, 1 + 2j, "s", b"b", (1, 2), {"k": [1]}, {3}, frozenset([4])],
    }
    for protocol in (3, 4, 5):
        data = pickle.dumps(values, protocol=protocol)
        variants = [data] + ([_numpy1_names(data)] if protocol == 5 else [])
        for k, blob in enumerate(variants):
            path = tmp_path / f"v{protocol}{k}.pkl"
            path.write_bytes(blob)
            got = read_pickle(path)
            assert got.keys() == values.keys()
            for key, want in values.items():
                if isinstance(want, np.ndarray):
                    assert got[key].dtype == want.dtype
                    np.testing.assert_array_equal(got[key], want)
                else:
                    assert got[key] == want and type(got[key]) is type(want)


def test_damaged_packs_are_one_clear_error(voc, tmp_path):
    run("voc-to-pickle", voc, tmp_path / "good.pkl", "--size", "16x16")
    run("voc-to-h5", voc, tmp_path / "good.h5", "--size", "16x16")
    h5_data = (tmp_path / "good.h5").read_bytes()
    data = (tmp_path / "good.pkl").read_bytes()
    with open(tmp_path / "good.pkl", "rb") as f:
        payload = pickle.load(f)
    cases = {"truncated.pkl": data[: len(data) // 2], "garbage.pkl": b"\x80\x05not a pickle at all",
             "list.pkl": pickle.dumps([1, 2, 3]), "empty.pkl": b""}
    broken = {"labels": np.array([0, 9, 0], np.int32), "box_offsets": np.array([0, 2, 9, 3]),
              "filenames": ["a.jpg"], "images": np.zeros((2, 16, 16, 3), np.uint8), "mode": "other"}
    for key, value in broken.items():
        p = {**payload, "splits": {"all": {**payload["splits"]["all"], key: value}}}
        cases[f"bad_{key}.pkl"] = pickle.dumps(p, protocol=5)
    without = {k: v for k, v in payload["splits"]["all"].items() if k != "boxes"}
    cases["no_boxes.pkl"] = pickle.dumps({**payload, "splits": {"all": without}}, protocol=5)
    cases["truncated.h5"] = h5_data[: len(h5_data) // 2]
    h5_changes = {"labels.h5": lambda g: g["labels"].__setitem__(0, 7),
                  "offsets.h5": lambda g: g["box_offsets"].__setitem__(1, 5),
                  "no_paths.h5": lambda g: g.__delitem__("paths")}
    for name in h5_changes:
        cases[name] = h5_data
    for name, blob in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        if name in h5_changes:
            with h5py.File(path, "r+") as f:
                h5_changes[name](f["all"])
        with pytest.raises(DatasetError, match=str(path)):
            DetectionH5(path)
        res = run("info", path, ok=False)
        assert res.exit_code == 2 and res.output.startswith("error: ") and res.output.count("\n") == 1, name


# ---- DOTA polygons in packs ------------------------------------------------------------------------------------------

DOTA_MODES = [
    ["voc-to-h5", "--size", "512x512"],
    ["voc-to-h5", "--size", "300x200", "--resize", "stretch"],
    ["voc-to-h5", "--size", "256x256", "--compression", "gzip"],
    ["voc-to-h5", "--encoded"],
    ["voc-to-h5", "--size", "512x512", "--shards", "2", "--workers", "2"],
    ["voc-to-h5", "--encoded", "--shards", "3"],  # one shard holds no image at all
    ["voc-to-pickle", "--size", "512x384"],
    ["voc-to-pickle", "--encoded"],
    ["voc-to-pickle", "--annotations-only"],
]


@pytest.mark.parametrize("mode", DOTA_MODES, ids=lambda m: " ".join(m))
def test_dota_polygons_kept_in_every_mode(shared, tmp_path, mode):
    source = load_dataset(shared / "dota_example")
    assert all(r.polygons is not None for r in source.records) and sum(map(len, source.records)) == 600
    out = tmp_path / ("p.pkl" if mode[0] == "voc-to-pickle" else "p.h5")
    run(mode[0], shared / "dota_example", out, *mode[1:])
    d = DetectionH5(out)
    assert d.polygons.dtype == np.float32 and d.polygons.shape == (600, 4, 2)
    assert len(d) == 2 and d.classes == source.classes
    batch = d.get_batch([1, 0])
    for i, rec in enumerate(source.records):
        s = d[i]
        assert s["filename"] == os.path.basename(rec.image_path)
        want = map_polygons(rec.polygons, s["transform"]).astype(np.float32)
        np.testing.assert_array_equal(s["polygons"], want)  # stored-image pixels, like the boxes
        np.testing.assert_allclose(unmap_polygons(s["polygons"], s["transform"]), rec.polygons, atol=1e-3)
        np.testing.assert_allclose(unmap_boxes(s["boxes"], s["transform"]), rec.boxes, atol=1e-3)
        assert [d.classes[k] for k in s["labels"]] == rec.names
        np.testing.assert_array_equal(batch["polygons"][1 - i], s["polygons"])
        if "--size" in mode:
            w, h = (int(v) for v in mode[mode.index("--size") + 1].split("x"))
            assert s["image"].shape == (h, w, 3)
        else:
            assert s["image"].shape == (rec.height, rec.width, 3)
            np.testing.assert_array_equal(s["transform"], [1, 1, 0, 0])
    # info/visualize read the pack as records with their polygons
    packed = load_dataset(out)
    assert [r.split for r in packed.records] == ["all", "all"]
    for i, rec in enumerate(packed.records):
        np.testing.assert_array_equal(rec.polygons, d[i]["polygons"].astype(np.float64))


def test_visualize_draws_packed_polygons(shared, tmp_path):
    from dsprep.draw import draw_record
    out = tmp_path / "p.h5"
    run("voc-to-h5", shared / "dota_example", out, "--size", "512x512")
    run("visualize", "boxes", out, "--out", tmp_path / "vis", "--ext", ".png")
    d = DetectionH5(out)
    index = {c: i for i, c in enumerate(d.classes)}
    for i, rec in enumerate(load_dataset(out).records):
        drawn = cv2.imread(str(tmp_path / "vis" / f"{rec.stem}.png"))
        image = cv2.cvtColor(d[i]["image"], cv2.COLOR_RGB2BGR)
        np.testing.assert_array_equal(drawn, draw_record(image, rec, index))
        rec.polygons = None  # the same objects drawn as boxes look different: the polygons were used
        assert not np.array_equal(drawn, draw_record(image, rec, index))


def test_packs_without_polygons_have_none(voc, tmp_path):
    run("voc-to-h5", voc, tmp_path / "p.h5", "--size", "32x32")
    run("voc-to-pickle", voc, tmp_path / "p.pkl", "--annotations-only")
    with h5py.File(tmp_path / "p.h5", "r") as f:
        assert "polygons" not in f["all"]
    for name in ("p.h5", "p.pkl"):
        d = DetectionH5(tmp_path / name)
        assert d.polygons is None and "polygons" not in d[0] and "polygons" not in d.get_batch([0])
        assert all(r.polygons is None for r in load_dataset(tmp_path / name).records)


# ---- permissions ----------------------------------------------------------------------------------------------------

def test_every_output_gets_the_umask_mode(voc, tmp_path):
    def dsprep(*args):
        subprocess.run([sys.executable, "-m", "dsprep", *map(str, args), "--quiet"], check=True, umask=0o027,
                       cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))

    dsprep("voc-to-h5", voc, "fixed.h5", "--size", "32x32")
    dsprep("voc-to-h5", voc, "gzip.h5", "--size", "32x32", "--compression", "gzip")
    dsprep("voc-to-h5", voc, "encoded.h5")
    dsprep("voc-to-h5", voc, "sharded.h5", "--size", "32x32", "--shards", "2", "--workers", "2")
    dsprep("voc-to-pickle", voc, "fixed.pkl", "--size", "32x32")
    dsprep("voc-to-pickle", voc, "ann.pkl", "--annotations-only")
    dsprep("visualize", "boxes", voc, "--out", "vis")  # any other output, for comparison
    outputs = [p for p in tmp_path.iterdir() if p.is_file()] + list((tmp_path / "vis").iterdir())
    assert {p.name for p in outputs} >= {"fixed.h5", "gzip.h5", "encoded.h5", "sharded.h5", "fixed.pkl", "ann.pkl",
                                         "sharded.shard-00000-of-00002.h5", "sharded.shard-00001-of-00002.h5",
                                         "a.jpg"}
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in outputs} == {p.name: "0o640" for p in outputs}


# ---- every split of a packed file ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["p.h5", "p.pkl"])
def test_info_and_visualize_cover_every_split(voc, tmp_path, name):
    out = tmp_path / name
    run("voc-to-h5" if name.endswith(".h5") else "voc-to-pickle", voc, out, "--size", "64x64", "--split", "train",
        "--split", "val")
    data = json.loads(run("info", out, "--json").output)
    assert data["images"] == 3 and data["objects"] == 3 and data["classes"] == {"cat": 2, "dog": 1}
    data = json.loads(run("info", out, "--split", "val", "--json").output)
    assert data["images"] == 1 and data["objects"] == 0
    assert [(r.split, r.stem) for r in load_dataset(out).records] == [("train", "a"), ("train", "b"), ("val", "c")]

    res = run("info", out, "--split", "test", ok=False)
    assert res.exit_code == 2 and "--split" in res.output and "train, val" in res.output
    assert "split=" not in res.output
    with pytest.raises(DatasetError, match='split="train"'):
        DetectionH5(out)

    run("visualize", "boxes", out, "--out", tmp_path / "vis", "--ext", ".png")
    assert sorted(os.listdir(tmp_path / "vis")) == ["a.png", "b.png", "c.png"]
    val = DetectionH5(out, "val")
    # c has no objects: drawn as stored, from the val split (row 0 of val; row 0 of train is a)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "vis" / "c.png")),
                                  cv2.cvtColor(val[0]["image"], cv2.COLOR_RGB2BGR))
    assert DetectionH5.open_splits(out).keys() == {"train", "val"}


# ---- sharded packing: a run that does not complete leaves nothing ---------------------------------------------------

def _shard_litter(folder, stem="p"):
    return sorted(n for n in os.listdir(folder) if n.startswith((f"{stem}.", f".{stem}.")))


def test_failed_sharded_run_removes_only_its_own_files(voc, tmp_path):
    (voc / "JPEGImages" / "c.jpg").write_bytes(b"garbage")  # the last shard fails
    out = tmp_path / "p.h5"
    older = [tmp_path / "p.shard-00000-of-00008.h5", tmp_path / ".p.shard-00000-of-00003.h5.0ld.partial"]
    for p in older:
        p.write_bytes(b"not this run's")
    res = run("voc-to-h5", voc, out, "--size", "16x16", "--shards", "3", ok=False)
    assert res.exit_code == 1 and "c.jpg" in res.output
    assert _shard_litter(tmp_path) == sorted(p.name for p in older)

    mine = tmp_path / "p.shard-00000-of-00003.h5"
    mine.write_bytes(b"old shard")
    res = run("voc-to-h5", voc, out, "--size", "16x16", "--shards", "3", ok=False)
    assert res.exit_code == 2 and "already exists" in res.output and mine.read_bytes() == b"old shard"
    res = run("voc-to-h5", voc, out, "--size", "16x16", "--shards", "3", "--overwrite", ok=False)
    assert res.exit_code == 1 and not mine.exists()  # --overwrite allowed replacing it: no stale shard is left
    assert _shard_litter(tmp_path) == sorted(p.name for p in older)

    cv2.imwrite(str(voc / "JPEGImages" / "c.jpg"), gradient(50, 50))
    run("voc-to-h5", voc, out, "--size", "16x16", "--shards", "3")
    assert len(DetectionH5(out)) == 3


def _big_voc(root, n=400):
    """n images of 2000 x 1500 (one JPEG hard-linked): a sharded pack of them takes a few seconds."""
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    first = root / "JPEGImages" / "i0000.jpg"
    cv2.imwrite(str(first), gradient(2000, 1500))
    for k in range(n):
        if k:
            os.link(first, root / "JPEGImages" / f"i{k:04d}.jpg")
        (root / "Annotations" / f"i{k:04d}.xml").write_bytes(voc_xml(f"i{k:04d}.jpg", 2000, 1500,
                                                                     [("x", (1, 1, 50, 50))]))
    return root


def _start_sharded_pack(root, out):
    cmd = [sys.executable, "-m", "dsprep", "voc-to-h5", str(root), str(out), "--size", "256x256", "--shards", "4",
           "-j", "2", "--quiet"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    # a session of its own, as a terminal's job: Ctrl-C is SIGINT to the whole process group
    return cmd, env, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                                      start_new_session=True)


def _wait_for(condition, timeout=60.0):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def _end_and_check_rerun(proc, cmd, env, folder, out):
    try:
        err = proc.communicate(timeout=60)[1]
        assert proc.returncode != 0, err
        # every process of the run is gone: nothing can write a file after this check
        _wait_for(lambda: not _group_alive(proc.pid), timeout=30)
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert _shard_litter(folder) == []
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(DetectionH5(out)) == 400 and len(_shard_litter(folder)) == 5
    return err


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("target", ["group", "parent"])
def test_ctrl_c_during_sharded_pack_leaves_nothing(tmp_path, target):
    root = _big_voc(tmp_path / "voc")
    out = tmp_path / "p.h5"
    cmd, env, proc = _start_sharded_pack(root, out)
    _wait_for(lambda: any(n.startswith("p.shard-") for n in os.listdir(tmp_path)) or proc.poll() is not None)
    assert proc.poll() is None and not out.exists(), "the run ended before it could be interrupted"
    if target == "group":
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal
    else:
        proc.send_signal(signal.SIGINT)  # kill -INT of the main process alone
    _end_and_check_rerun(proc, cmd, env, tmp_path, out)


def _partial_holder(folder):
    """(pid, path) of a process with a shard's .partial file open, or None."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                name = os.path.basename(target)
                if os.path.dirname(target) == str(folder) and name.startswith(".p.shard-") \
                        and name.endswith(".partial"):
                    return int(pid), target
        except OSError:
            continue
    return None


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_killed_shard_worker_leaves_nothing(tmp_path):
    root = _big_voc(tmp_path / "voc")
    out = tmp_path / "p.h5"
    cmd, env, proc = _start_sharded_pack(root, out)
    _wait_for(lambda: _partial_holder(tmp_path) is not None or proc.poll() is not None)
    assert proc.poll() is None, "the run ended before a worker could be killed"
    pid, _ = _partial_holder(tmp_path)
    os.kill(pid, signal.SIGKILL)  # dies mid-write: its temporary stays behind unless the run removes it
    err = _end_and_check_rerun(proc, cmd, env, tmp_path, out)
    assert err.startswith("error: ") and err.count("\n") == 1
