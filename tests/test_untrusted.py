"""Data sets from strangers: every file here is made as an attacker would make it.  dsprep must never read or copy
anything outside the data set, run or crash native code, trust bytes it has not verified, or stop with a
traceback: each is refused with one line naming the file (or read correctly), and the inputs stay unchanged."""
import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli as run, write_voc_tree

REPO = Path(__file__).resolve().parent.parent


def _digest(root: Path) -> dict:
    """Every file under ``root`` (or the file itself) with the SHA-256 of its bytes: inputs must stay unchanged."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _one_line_error(res, *says, code=None):
    out = res.output if hasattr(res, "output") else res.stdout + res.stderr
    rc = res.exit_code if hasattr(res, "exit_code") else res.returncode
    lines = [line for line in out.splitlines() if line.strip()]
    assert rc != 0 and (code is None or rc == code) and "Traceback" not in out, out
    assert lines and lines[-1].startswith("error: ") and all(s in lines[-1] for s in says), out
    return lines[-1]


def _dsprep(*args, cwd=None):
    """dsprep in its own process: a crash of native code shows as a signal, not as a dead test runner."""
    return subprocess.run([sys.executable, "-m", "dsprep", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)


# ---- pickles: object dtypes are refused before any array is made ------------------------------------------------------

class _Reduce:
    """Pickles as ``func(*args)`` followed by ``__setstate__(state)``: any object numpy's pickling could spell."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _pointer_dtype(kind="O8", flags=0, fields=None, names=None, subarray=None, size=-1):
    """A dtype whose saved state says what the attacker likes: by default the object kind with flags 0 (so numpy
    no longer treats its items as references it owns)."""
    return _Reduce(np.dtype, (kind, False, True), (3, "|", subarray, names, fields, size, -1, flags))


def _reconstructed(dtype, raw: bytes, shape=(1,)):
    """``_reconstruct`` + ``ndarray.__setstate__`` with raw bytes: the array's memory is the file's bytes."""
    from numpy._core import multiarray
    return _Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, raw))


POINTER = struct.pack("<Q", 0x4141414141410)  # 8 bytes of the file read as a PyObject* by numpy
ATTACKS = {
    "object dtype with flags 0": _reconstructed(_pointer_dtype(), POINTER),
    "structured, an object field": _reconstructed(_Reduce(np.dtype, ([("x", "f4"), ("p", "O")],)), POINTER * 2),
    "nested structured, an object field": _reconstructed(
        _Reduce(np.dtype, ([("a", [("b", "i4"), ("p", "O")])],)), POINTER * 2),
    "subarray of objects": _reconstructed(_Reduce(np.dtype, (("O", (2,)),)), POINTER * 2),
    "void dtype whose state sets pointer flags": _reconstructed(_pointer_dtype("V8", flags=63, size=8), POINTER),
    "numpy scalar of an object dtype": _Reduce(np.float64(0).__reduce__()[0], (_pointer_dtype(), POINTER)),
    "object array by ndarray()": _Reduce(np.ndarray, ((2,), "O")),
}


def _resized_after_use() -> bytes:
    """A pickle written opcode by opcode: a ``V8`` dtype, an 8-byte array made with it, then a second
    ``__setstate__`` on the same dtype that makes its items 1 MiB: the array then reaches 1 MiB past its buffer."""
    def text(t):
        return b"X" + struct.pack("<I", len(t)) + t.encode()

    def state(size):
        return b"(" + b"K\x03" + text("|") + b"NNN" + b"J" + struct.pack("<i", size) + b"K\x01K\x00" + b"t"

    return (b"\x80\x03]q\x00" + b"cnumpy\ndtype\n" + text("V8") + b"\x89\x88\x87Rq\x01" + state(8) + b"b0"
            + b"cnumpy._core.numeric\n_frombuffer\n(C\x0812345678h\x01K\x01\x85" + text("C") + b"tRa"
            + b"h\x01" + state(1 << 20) + b"b0.")


def test_a_dtype_resized_after_an_array_uses_it_is_refused(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(_resized_after_use())
    # the attack is real: unguarded, the array claims 1 MiB over its 8-byte buffer (looked at in another process:
    # reading it reads whatever memory follows)
    res = subprocess.run([sys.executable, "-c", "import pickle, sys; a = pickle.load(open(sys.argv[1], 'rb'))[0]; "
                          "print(a.nbytes)", str(evil)], capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == [str(1 << 20)], res.stderr  # (the file holds 8 bytes for it: C\x0812345678)
    res = _dsprep("info", evil)
    assert res.returncode > 0
    _one_line_error(res, str(evil), "already in use")


@pytest.fixture(scope="module")
def good_pickle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pk")
    voc = write_voc_tree(tmp / "voc", {"a": (64, 48, [("cat", (5, 5, 30, 30))])})
    run("voc-to-pickle", voc, tmp / "good.pkl", "--size", "32x32")
    with open(tmp / "good.pkl", "rb") as f:
        return pickle.load(f)  # our own file


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_pickle_with_object_pointers_is_refused_before_any_array_is_built(good_pickle, tmp_path, attack):
    payload = {**good_pickle, "splits": {"all": {**good_pickle["splits"]["all"], "mode": ATTACKS[attack]}}}
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(payload, protocol=5))
    before = _digest(evil)
    for args in (["info", evil], ["visualize", "boxes", evil, "--out", tmp_path / "vis"]):
        res = _dsprep(*args)
        assert res.returncode > 0, (attack, res.returncode, res.stderr)  # negative: killed by a signal
        line = _one_line_error(res, str(evil), "refused to load")
        assert "object" in line or "state" in line, line
    assert _digest(evil) == before and not (tmp_path / "vis").exists()


def test_the_object_pointer_pickle_really_crashes_an_unguarded_load(tmp_path):
    """The file is the real attack: a plain pickle.load and one look at the array dies of a signal."""
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"images": ATTACKS["object dtype with flags 0"]}, protocol=5))
    res = subprocess.run([sys.executable, "-c", "import pickle, sys; a = pickle.load(open(sys.argv[1], 'rb'))"
                          "['images']; print(repr(a[0]))", str(evil)], capture_output=True, timeout=60)
    assert res.returncode < 0  # SIGSEGV (or SIGBUS): numpy followed the file's pointer


# ---- packed .h5: nothing is read from outside the pack and its own shards --------------------------------------------

@pytest.fixture
def packs(tmp_path):
    """A real pack (two 16x16 images), a real sharded one, and a private file beside the data set."""
    voc = write_voc_tree(tmp_path / "voc", {"a": (64, 48, [("cat", (5, 5, 30, 30))]),
                                            "b": (40, 40, [("dog", (1, 1, 20, 20))])})
    run("voc-to-h5", voc, tmp_path / "good.h5", "--size", "16x16")
    (tmp_path / "sharded").mkdir()
    run("voc-to-h5", voc, tmp_path / "sharded" / "s.h5", "--size", "16x16", "--shards", "2")
    (tmp_path / "private").mkdir()
    secret = tmp_path / "private" / "secret.bin"
    secret.write_bytes(bytes(range(256)) * 6)  # 2 x 16 x 16 x 3 bytes
    (tmp_path / "private" / "notes.txt").write_text("the password is hunter2\n" * 64)
    return tmp_path


def _pack_copy(packs, name, change):
    """A copy of the good pack changed with h5py as an attacker would."""
    import h5py
    path = packs / "evil" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes((packs / "good.h5").read_bytes())
    with h5py.File(path, "r+") as f:
        change(f)
    return path


def _external_storage(secret):
    def change(f):
        del f["all/images"]
        f["all"].create_dataset("images", shape=(2, 16, 16, 3), dtype="u1", external=[(str(secret), 0, 1536)])
    return change


def _virtual_onto(file_name, dset="x", shards=None):
    import h5py

    def change(f):
        del f["all/images"]
        layout = h5py.VirtualLayout(shape=(2, 16, 16, 3), dtype="u1")
        layout[:] = h5py.VirtualSource(file_name, dset, shape=(2, 16, 16, 3))
        f["all"].create_virtual_dataset("images", layout)
        if shards is not None:
            f.attrs["shards"] = json.dumps(shards)
    return change


def _external_link(target):
    import h5py

    def change(f):
        del f["all/images"]
        f["all/images"] = h5py.ExternalLink(str(target), "/all/images")
    return change


H5_ATTACKS = {
    "external storage, absolute path": (lambda p: _external_storage(p / "private" / "secret.bin"),
                                        "external file"),
    "external storage, relative path": (lambda p: _external_storage("../private/secret.bin"), "external file"),
    "virtual dataset onto a text file": (lambda p: _virtual_onto(str(p / "private" / "notes.txt")),
                                         "not one of this pack's shard files"),
    "virtual dataset onto a missing file": (lambda p: _virtual_onto("gone.h5"), "not one of this pack's shard"),
    "virtual dataset onto a listed shard that is missing": (lambda p: _virtual_onto("gone.h5", shards=["gone.h5"]),
                                                            "missing beside it: gone.h5"),
    "shard attribute naming a path": (lambda p: _virtual_onto("../good.h5", "all/images", shards=["../good.h5"]),
                                      "is not a file name beside the pack"),
    "virtual dataset onto a listed shard that is no pack": (
        lambda p: _virtual_onto("notes.h5", shards=["notes.h5"]), "not a readable HDF5 file"),
    "external link to another file": (lambda p: _external_link(p / "good.h5"), "external link"),
}


@pytest.mark.parametrize("attack", list(H5_ATTACKS))
def test_pack_reading_outside_itself_is_refused(packs, attack):
    make, says = H5_ATTACKS[attack]
    evil = _pack_copy(packs, "evil.h5", make(packs))
    (evil.parent / "notes.h5").write_text("not hdf5 at all\n")
    before = {**_digest(packs / "private"), **_digest(evil.parent)}
    for args in (["info", evil], ["visualize", "boxes", evil, "--out", packs / "vis"]):
        _one_line_error(run(*args, ok=False), str(evil.parent), says)
    assert not (packs / "vis").exists()
    from dsprep.core import DatasetError
    from dsprep.hdf5 import DetectionH5
    with pytest.raises(DatasetError, match=says.split(":")[0]):
        DetectionH5(evil)[0]
    assert {**_digest(packs / "private"), **_digest(evil.parent)} == before


def test_the_external_storage_pack_really_reads_the_private_file(packs):
    """Without the check, h5py hands the private file's bytes over as pixels."""
    import h5py
    evil = _pack_copy(packs, "evil.h5", _external_storage(packs / "private" / "secret.bin"))
    with h5py.File(evil, "r") as f:
        assert f["all/images"][()].tobytes() == (packs / "private" / "secret.bin").read_bytes()


def test_dsprep_shards_are_still_read_and_each_checked(packs):
    import h5py
    master = packs / "sharded" / "s.h5"
    res = run("info", master)
    assert "images: 2" in res.output
    shards = sorted((packs / "sharded").glob("s.shard-*"))
    assert len(shards) == 2
    with h5py.File(shards[1], "r+") as f:  # a shard that is itself virtual, onto a private file
        del f["all/images"]
        layout = h5py.VirtualLayout(shape=(1, 16, 16, 3), dtype="u1")  # one image per shard
        layout[:] = h5py.VirtualSource(str(packs / "private" / "notes.txt"), "x", shape=(1, 16, 16, 3))
        f["all"].create_virtual_dataset("images", layout)
    _one_line_error(run("info", master, ok=False), shards[1].name, "of a shard is a virtual dataset")
    shards[1].unlink()
    _one_line_error(run("info", master, ok=False), str(master), "missing beside it", shards[1].name)


# ---- paths outside the data set: never read, never copied --------------------------------------------------------------

DATA = Path(__file__).parent / "data"


@pytest.fixture
def private(tmp_path):
    p = tmp_path / "private"
    p.mkdir()
    (p / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n")
    import shutil
    shutil.copy(DATA / "labelme" / "IMG_0042.jpg", p / "holiday.jpg")  # a private *image*, too
    return p


def _labelme_set(tmp_path, image_path):
    """The labelme example, plus b.json naming ``image_path`` (and no b.jpg beside it)."""
    import shutil
    root = tmp_path / "ds"
    root.mkdir(parents=True)
    for name in ("IMG_0041.json", "IMG_0041.jpg"):
        shutil.copy(DATA / "labelme" / name, root / name)
    doc = json.loads((DATA / "labelme" / "IMG_0041.json").read_text())
    doc["imagePath"] = image_path
    (root / "b.json").write_text(json.dumps(doc))
    return root


@pytest.mark.parametrize("named", ["../private/id_rsa", "ABS/private/id_rsa", "../private/holiday.jpg",
                                   "..\\private\\holiday.jpg", "sub/../../private/id_rsa"])
def test_labelme_image_path_outside_the_data_set_is_refused(tmp_path, private, named):
    root = _labelme_set(tmp_path, named.replace("ABS/", str(tmp_path) + "/"))
    before = {**_digest(root), **_digest(private)}
    for args in (["convert", root, "--to", "coco", "--out", tmp_path / "out"], ["info", root],
                 ["visualize", "boxes", root, "--out", tmp_path / "vis"]):
        _one_line_error(run(*args, ok=False), "b.json", "lies outside the data set", "refused")
    assert not (tmp_path / "out").exists() and not (tmp_path / "vis").exists()
    res = run("convert", root, "--to", "coco", "--out", tmp_path / "out", "--on-error", "skip", "--json")
    summary = json.loads(res.stdout)
    assert [Path(s["input"]).name for s in summary["skipped"]] == ["b.json"]
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file() and p.suffix != ".json") == \
        ["IMG_0041.jpg"]
    coco = json.loads(next((tmp_path / "out").rglob("*.json")).read_text())
    assert [im["file_name"] for im in coco["images"]] == ["IMG_0041.jpg"]
    assert {**_digest(root), **_digest(private)} == before


def test_images_outside_is_an_explicit_choice_and_still_needs_an_image(tmp_path, private):
    root = _labelme_set(tmp_path, "../private/holiday.jpg")
    run("convert", root, "--to", "coco", "--out", tmp_path / "out", "--images-outside")
    assert [p.read_bytes() for p in (tmp_path / "out").rglob("b.jpg")] == [(private / "holiday.jpg").read_bytes()]
    root2 = _labelme_set(tmp_path / "t2", "../private/id_rsa")
    (tmp_path / "t2" / "private").mkdir()
    (tmp_path / "t2" / "private" / "id_rsa").write_bytes((private / "id_rsa").read_bytes())
    _one_line_error(run("convert", root2, "--to", "coco", "--out", tmp_path / "out2", "--images-outside", ok=False),
                    "id_rsa")
    assert not (tmp_path / "out2").exists()


def test_coco_file_name_outside_the_data_set_is_refused(tmp_path, private):
    import shutil
    root = tmp_path / "ds"
    shutil.copytree(DATA / "coco_cvat", root)
    ann = root / "annotations" / "instances_default.json"
    doc = json.loads(ann.read_text())
    doc["images"][1]["file_name"] = "../../../private/id_rsa"  # from images/default/ up to tmp_path
    doc["images"][2]["file_name"] = str(private / "holiday.jpg")
    ann.write_text(json.dumps(doc))
    before = {**_digest(root), **_digest(private)}
    for args in (["convert", root, "--to", "yolo", "--out", tmp_path / "out"], ["info", root]):
        _one_line_error(run(*args, ok=False), "instances_default.json", "image id 2", "lies outside the data set")
    res = run("convert", root, "--to", "yolo", "--out", tmp_path / "out", "--on-error", "skip", "--json")
    skipped = json.loads(res.stdout)["skipped"]
    assert sorted(s["input"].rsplit("#", 1)[-1] for s in skipped) == ["image2", "image3"]
    copied = [p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert (private / "id_rsa").read_bytes() not in copied and (private / "holiday.jpg").read_bytes() not in copied
    assert {**_digest(root), **_digest(private)} == before


def test_a_symlink_placed_inside_the_data_set_is_followed(tmp_path, private):
    root = _labelme_set(tmp_path, "b.jpg")
    (root / "b.jpg").symlink_to(private / "holiday.jpg")  # the user's own choice
    run("convert", root, "--to", "labelme", "--out", tmp_path / "out")
    out = tmp_path / "out" / "b.jpg"
    assert not out.is_symlink() and out.read_bytes() == (private / "holiday.jpg").read_bytes()


def test_convert_copies_only_readable_images(tmp_path):
    root = _labelme_set(tmp_path, "b.jpg")
    (root / "b.jpg").write_bytes(b"")  # an empty a.jpg
    before = _digest(root)
    _one_line_error(run("convert", root, "--to", "coco", "--out", tmp_path / "out", ok=False), "b.jpg", "empty")
    assert not (tmp_path / "out").exists()
    jpg = (DATA / "labelme" / "IMG_0041.jpg").read_bytes()
    (root / "b.jpg").write_bytes(jpg[:len(jpg) // 2])  # cut short
    _one_line_error(run("convert", root, "--to", "coco", "--out", tmp_path / "out", ok=False), "b.jpg",
                    "end marker")
    res = run("convert", root, "--to", "coco", "--out", tmp_path / "out", "--on-error", "skip", "--json")
    assert [Path(s["input"]).name for s in json.loads(res.stdout)["skipped"]] == ["b.jpg"]
    coco = json.loads(next((tmp_path / "out").rglob("*.json")).read_text())
    assert [im["file_name"] for im in coco["images"]] == ["IMG_0041.jpg"]
    assert _digest(root) == {**before, str(root / "b.jpg"): hashlib.sha256(jpg[:len(jpg) // 2]).hexdigest()}


def test_labelme_image_only_embedded_is_written_out(tmp_path):
    import base64
    root = _labelme_set(tmp_path, "b.jpg")
    jpg = (DATA / "labelme" / "IMG_0041.jpg").read_bytes()
    doc = json.loads((root / "b.json").read_text())
    doc["imageData"] = base64.b64encode(jpg).decode()
    (root / "b.json").write_text(json.dumps(doc))
    doc.update(imageData=base64.b64encode(b"not an image at all").decode(), imagePath="c.jpg")
    (root / "c.json").write_text(json.dumps(doc))
    before = _digest(root)
    res = run("convert", root, "--to", "coco", "--out", tmp_path / "out", "--on-error", "skip", "--json")
    summary = json.loads(res.stdout)
    assert [Path(s["input"]).name for s in summary["skipped"]] == ["c.jpg"] and summary["counts"]["images"] == 2
    assert "c.json" in summary["skipped"][0]["reason"]
    coco = json.loads(next((tmp_path / "out").rglob("*.json")).read_text())
    names = sorted(im["file_name"] for im in coco["images"])
    assert names == ["IMG_0041.jpg", "b.jpg"]
    written = {p.name: p.read_bytes() for p in (tmp_path / "out").rglob("*.jpg")}
    assert written["b.jpg"] == jpg and "c.jpg" not in written
    _one_line_error(run("convert", root, "--to", "coco", "--out", tmp_path / "out2", ok=False), "c.json")
    assert _digest(root) == before


# ---- silent changes ---------------------------------------------------------------------------------------------------

def test_labelme_box_reaching_outside_the_image_is_kept_or_counted(tmp_path):
    root = _labelme_set(tmp_path, "b.jpg")
    (root / "b.json").unlink()
    doc = json.loads((root / "IMG_0041.json").read_text())
    doc["shapes"][0]["points"] = [[-10, -10], [30, 30]]  # rectangle, 10 px beyond the top-left corner
    (root / "IMG_0041.json").write_text(json.dumps(doc))
    before = _digest(root)
    res = run("convert", root, "--to", "labelme", "--out", tmp_path / "lm", "--json")
    assert "clipped_box" not in json.loads(res.stdout)["counts"]
    out = json.loads((tmp_path / "lm" / "IMG_0041.json").read_text())
    assert out["shapes"] == doc["shapes"]  # labelme -> labelme loses nothing
    res = run("convert", root, "--to", "coco", "--out", tmp_path / "coco", "--json")
    assert json.loads(res.stdout)["counts"]["clipped_box"] == 1 and "clipped_box: 1" in res.stderr
    coco = json.loads(next((tmp_path / "coco").rglob("*.json")).read_text())
    assert [0, 0, 30, 30] in [a["bbox"] for a in coco["annotations"]]
    assert _digest(root) == before


# ---- review: every format refuses what no file should hold -----------------------------------------------------------

def _review_sets(tmp_path):
    """One editable copy of each format dsprep review edits (VOC, YOLO, labelme, DOTA)."""
    import shutil
    from helpers import write_dota_tree
    sets = {"voc": write_voc_tree(tmp_path / "voc", {"a": (64, 48, [("cat", (5, 5, 30, 30))])})}
    shutil.copytree(DATA / "yolo_ultralytics", tmp_path / "yolo")
    sets["yolo"] = tmp_path / "yolo"
    sets["labelme"] = _labelme_set(tmp_path / "lm", "b.jpg").parent / "ds"
    (sets["labelme"] / "b.json").unlink()
    sets["dota"] = write_dota_tree(tmp_path / "dota", {"a": (64, 48, "5 5 30 5 30 30 5 30 plane 0\n")})
    return sets


def _first_with_objects(c):
    for it in c.json("GET", "/api/images")["items"]:
        rec = c.json("GET", f"/api/images/{it[0]}")
        if rec["objects"]:
            return it[0], rec


@pytest.mark.parametrize("fmt", ["voc", "yolo", "labelme", "dota"])
def test_review_refuses_an_inverted_or_empty_box_in_every_format(tmp_path, fmt):
    from review_support import Client, serving
    root = _review_sets(tmp_path)[fmt]
    before = _digest(root)
    with serving(root) as server:
        c = Client(server)
        i, rec = _first_with_objects(c)
        key = "polygon" if "polygon" in rec["objects"][0] and rec["objects"][0]["polygon"] else "box"
        bad = [[30, 30, 5, 5], [10, 10, 10, 20]] if key == "box" else \
            [[[10, 10], [10, 20], [10, 30], [10, 40]], [[1, 1], [5, 5], [9, 9], [20, 20]]]  # no width; on a line
        for shape in bad:  # inverted; zero width
            objects = [{"src": None, "name": "cat", "difficult": 0, "truncated": False, key: shape}]
            code, _, body = c.request("POST", f"/api/images/{i}/save",
                                      body={"version": rec["version"], "objects": objects})
            assert code == 400 and "has no area" in json.loads(body)["error"], body
    assert _digest(root) == before


@pytest.mark.parametrize("fmt", ["voc", "yolo"])
def test_review_class_name_with_a_lone_surrogate_is_a_400(tmp_path, fmt, capfd):
    from review_support import Client, serving
    root = _review_sets(tmp_path)[fmt]
    before = _digest(root)
    with serving(root) as server:
        c = Client(server)
        i, rec = _first_with_objects(c)
        objects = [{"src": 0, "name": "cat\ud800", "box": rec["objects"][0].get("box"), "difficult": 0,
                    "truncated": False}]
        raw = json.dumps({"version": rec["version"], "objects": objects}).encode()  # "cat\\ud800", as JSON.stringify
        assert b"\\ud800" in raw
        code, _, body = c.request("POST", f"/api/images/{i}/save", raw_body=raw,
                                  headers={"Content-Type": "application/json"})
        assert code == 400 and "lone UTF-16 surrogate" in json.loads(body)["error"]
    assert "Traceback" not in capfd.readouterr().err and _digest(root) == before


def test_review_client_resetting_its_connection_prints_no_traceback(tmp_path, capfd):
    import socket
    from review_support import serving
    root = _review_sets(tmp_path)["voc"]
    with serving(root) as server:
        for k in range(40):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            s.sendall(f"POST /api/images/0/save HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n".encode()
                      + b"{" * 4096)  # refused (no token) before its body is read
            if k % 2:
                s.recv(10)  # the refusal has begun to arrive
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # RST
        from review_support import Client
        assert Client(server).get("/api/dataset")[0] == 200  # still serving
    assert "Traceback" not in capfd.readouterr().err


# ---- nesting deep enough to exhaust the stack: one line naming the file ---------------------------------------------

def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [150, 20000])  # beyond dsprep's limit; beyond what Python's parser can take
@pytest.mark.parametrize("where", ["labelme", "coco", "eval results"])
def test_deeply_nested_json_is_one_line(tmp_path, where, levels):
    import shutil
    if where == "labelme":
        root = _labelme_set(tmp_path, "b.jpg")
        (root / "b.json").write_text(json.dumps(json.loads((root / "IMG_0041.json").read_text())
                                                | {"flags": {"x": "@"}}).replace('"@"', _nested(levels)))
        bad, args = root / "b.json", ["info", root]
    else:
        root = tmp_path / "ds"
        shutil.copytree(DATA / "coco_cvat", root)
        gt = root / "annotations" / "instances_default.json"
        if where == "coco":
            doc = json.loads(gt.read_text())
            doc["info"] = "@"
            gt.write_text(json.dumps(doc).replace('"@"', _nested(levels)))
            bad, args = gt, ["convert", root, "--to", "yolo", "--out", tmp_path / "out"]
        else:
            bad = tmp_path / "results.json"
            bad.write_text('[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5, "x": '
                           + _nested(levels) + "}]")
            args = ["eval", gt, bad]
    before = {**_digest(root), **_digest(bad)}
    _one_line_error(run(*args, ok=False), str(bad), "nested")
    assert {**_digest(root), **_digest(bad)} == before and not (tmp_path / "out").exists()


def test_deeply_nested_review_request_body_is_a_400(tmp_path, capfd):
    from review_support import Client, serving
    root = _review_sets(tmp_path)["voc"]
    with serving(root) as server:
        for levels in (150, 100000):
            raw = ('{"version": "x", "objects": ' + _nested(levels) + "}").encode()
            code, _, body = Client(server).request("POST", "/api/images/0/save", raw_body=raw,
                                                   headers={"Content-Type": "application/json"})
            assert code == 400 and "nested" in json.loads(body)["error"]
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("yaml_text", [
    "names: " + _nested(20000) + "\ntrain: images/train\nval: images/val\n",  # flow
    "train: images/train\nval: images/val\nnames:\n" + "".join(" " * (k + 1) + "a:\n" for k in range(3000)),
    "train: images/train\nval: images/val\nnames:\n" + "".join(" " * (k + 1) + "-\n" for k in range(3000)),
], ids=["flow 20000", "block mappings 3000", "block sequences 3000"])
def test_deeply_nested_data_yaml_is_one_line(tmp_path, yaml_text):
    import shutil
    root = tmp_path / "yolo"
    shutil.copytree(DATA / "yolo_ultralytics", root)
    (root / "data.yaml").write_text(yaml_text)
    before = _digest(root)
    _one_line_error(run("info", root, ok=False), "data.yaml:", "nested more than 64 levels")
    _one_line_error(run("convert", root, "--to", "coco", "--out", tmp_path / "out", ok=False), "data.yaml:")
    assert _digest(root) == before


# ---- COCO RLE: size checked against the image, counts against the size, before anything is decoded -------------------

@pytest.mark.parametrize("rle, says", [
    ({"counts": "o" * 20 + "0", "size": [64, 96]}, "longer than any image"),
    ({"counts": [0, 200000 * 200000], "size": [200000, 200000]}, "on a 96x64 image"),
    ({"counts": [2 ** 62, 2 ** 62, 2 ** 62, 2 ** 62 - 96 * 64], "size": [64, 96]}, "holds a run of"),
    ({"counts": [-5, 96 * 64 + 5], "size": [64, 96]}, "holds a run of -5"),
])
def test_hostile_rle_is_one_line(tmp_path, rle, says):
    import shutil
    root = tmp_path / "ds"
    shutil.copytree(DATA / "coco_cvat", root)
    gt = root / "annotations" / "instances_default.json"
    doc = json.loads(gt.read_text())
    doc["annotations"][0].update(segmentation=rle, iscrowd=1)
    doc["annotations"][0].pop("area", None)
    gt.write_text(json.dumps(doc))
    before = _digest(root)
    for args in (["crop", root, "--out", tmp_path / "crops"], ["convert", root, "--to", "coco", "--out", tmp_path / "c"]):
        _one_line_error(run(*args, ok=False), "instances_default.json", "annotation id", says)
    assert _digest(root) == before and not (tmp_path / "crops").exists() and not (tmp_path / "c").exists()
    # a target without masks keeps only the box: nothing decoded, nothing to refuse, the mask's loss is counted
    res = run("convert", root, "--to", "yolo", "--out", tmp_path / "y", "--json")
    assert json.loads(res.stdout)["counts"]["segmentation_dropped"] == 1


# ---- a size the image header contradicts: an error in every command that writes coordinates ---------------------------

@pytest.mark.parametrize("command", [
    ["convert", "--to", "yolo", "--out", "OUT"], ["convert", "--to", "voc", "--out", "OUT"],
    ["convert", "--to", "coco", "--out", "OUT"], ["convert", "--to", "labelme", "--out", "OUT"],
    ["convert", "--to", "dota", "--out", "OUT"], ["tile", "--size", "32", "--gap", "0", "--out", "OUT"],
    ["crop", "--out", "OUT"], ["visualize", "boxes", "--out", "OUT"], ["voc-to-h5", "OUT.h5"],
    ["voc-to-pickle", "OUT.pkl", "--annotations-only"],
], ids=lambda c: " ".join(c[:3]))
def test_coco_image_size_contradicted_by_its_header(tmp_path, command):
    import shutil
    root = tmp_path / "ds"
    shutil.copytree(DATA / "coco_cvat", root)
    gt = root / "annotations" / "instances_default.json"
    doc = json.loads(gt.read_text())
    doc["images"][0].update(width=2 ** 40, height=2 ** 40)  # the file is 96x64
    gt.write_text(json.dumps(doc))
    before = _digest(root)
    out = tmp_path / "out"
    args = [a.replace("OUT", str(out)) for a in command]
    args = args[:2] + [root] + args[2:] if args[0] == "visualize" else [args[0], root] + args[1:]
    _one_line_error(run(*args, ok=False), "instances_default.json", f"says {2 ** 40}x{2 ** 40}", "96x64")
    assert _digest(root) == before and not list(tmp_path.glob("out*"))


# ---- YOLO: detection never depends on the order a folder is listed in ------------------------------------------------

@pytest.mark.parametrize("name", ["000000000000.txt", "zzzzzzzzzzzz.txt"])  # read first, read last
@pytest.mark.parametrize("line", ["0 0.5 0.5 0.2 0.2 0.93", "2 0.1 0.1 0.2 0.1 0.2 0.2"])  # confidence; 3 points
def test_yolo_line_of_six_values_is_named_whatever_the_file_order(tmp_path, name, line):
    import shutil
    root = tmp_path / "yolo"
    shutil.copytree(DATA / "yolo_ultralytics", root)
    label = root / "labels" / "train" / name
    label.write_text(line + "\n")
    shutil.copy(next((root / "images" / "train").glob("*.jpg")), root / "images" / "train" / (label.stem + ".jpg"))
    from dsprep.dataset import detect_format
    assert detect_format(root) == "yolo"
    before = _digest(root)
    _one_line_error(run("info", root, ok=False), f"{name}:1")
    res = run("convert", root, "--to", "coco", "--out", tmp_path / "out", "--on-error", "skip", "--json")
    assert [s["input"] for s in json.loads(res.stdout)["skipped"]] == [f"{label}:1"]
    assert _digest(root) == before



@pytest.mark.parametrize("entry", ["../private/holiday.jpg", "ABS/private/holiday.jpg"])
def test_yolo_list_file_naming_an_image_outside_the_data_set_is_refused(tmp_path, private, entry):
    import shutil
    root = tmp_path / "ds"
    shutil.copytree(DATA / "yolo_darknet_cvat", root)
    (root / "obj_train_data" / "holiday.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with open(root / "train.txt", "a") as f:
        f.write(entry.replace("ABS/", str(tmp_path) + "/") + "\n")
    before = {**_digest(root), **_digest(private)}
    for args in (["info", root], ["convert", root, "--to", "coco", "--out", tmp_path / "out"]):
        _one_line_error(run(*args, ok=False), "train.txt:3", "lies outside the data set")
    assert {**_digest(root), **_digest(private)} == before and not (tmp_path / "out").exists()


def test_yolo_list_file_written_on_another_machine_is_found_inside(tmp_path):
    import shutil
    root = tmp_path / "ds"
    shutil.copytree(DATA / "yolo_darknet_cvat", root)
    (root / "train.txt").write_text("/content/data/obj_train_data/frame_000000.jpg\n"
                                    "/content/data/obj_train_data/frame_000001.jpg\n")
    assert "images: 2" in run("info", root).output


def test_convert_from_a_pack_still_writes_its_annotations(packs, tmp_path):
    """A packed source holds its pixels inside itself: convert writes the labels, copies no file, refuses nothing."""
    res = run("convert", packs / "good.h5", "--to", "yolo", "--out", tmp_path / "y", "--json")
    assert json.loads(res.stdout)["counts"]["images"] == 2
    assert sorted(p.name for p in (tmp_path / "y").rglob("*.txt")) == ["a.txt", "b.txt"]


def test_json_outside_what_orjson_reads_is_read_as_the_standard_parser_reads_it(tmp_path):
    """dsprep parses JSON with orjson; what orjson refuses but Python's json accepts (NaN, a BOM-less lone
    surrogate, deep nesting) gets the same answer as before: the standard parser's document or dsprep's one line."""
    from dsprep.core import ParseError
    from dsprep.inputs import parse_json
    assert parse_json(b'{"a": [1, 2.5, "x"]}', "f.json") == {"a": [1, 2.5, "x"]}
    nan = parse_json(b'[NaN]', "f.json")
    assert nan[0] != nan[0]  # NaN, as json.loads reads it
    with pytest.raises(ParseError, match="lone UTF-16 surrogate"):
        parse_json(b'["\\ud800"]', "f.json")
    with pytest.raises(ParseError, match="nested 101 levels deep"):
        parse_json(b"[" * 101 + b"]" * 101, "f.json")
    with pytest.raises(ParseError, match=r"f.json:2: malformed JSON"):
        parse_json(b'{"a": 1,\n "b": }', "f.json")


def test_a_coco_id_beyond_int64_is_one_line_not_a_rounded_float(tmp_path):
    import json as _json
    doc = {"images": [{"id": 2 ** 70, "file_name": "a.jpg", "width": 4, "height": 4}], "annotations": [],
           "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "instances_x.json").write_text(_json.dumps(doc))
    res = run("info", tmp_path / "instances_x.json", ok=False)
    assert res.exit_code == 1 and "too large" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
