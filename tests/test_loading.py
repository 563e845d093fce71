"""Loading many files: the forked readers give the same data set, problems and errors as one process."""
import pytest

from dsprep.dataset import load_dataset, pack_records, unpack_records
from helpers import voc_xml, write_voc_tree


def _same(a, b):
    assert [r.image_path for r in a.records] == [r.image_path for r in b.records]
    assert all(x == y and x.meta == y.meta for x, y in zip(a.records, b.records))
    assert a.problems == b.problems and a.skipped == b.skipped and a.classes == b.classes


def _tree(root, n=40):
    items = {f"{k:03d}": (60, 40, [("cat", (11, 6, 30, 25)), ("dog", (1, 1, 70, 40))]) for k in range(n)}
    items["010"] = (60, 40, [])
    write_voc_tree(root, items, splits={"train": [f"{k:03d}" for k in range(0, n, 2)]})
    (root / "Annotations" / "004.xml").write_text("<annotation><object>")  # broken
    (root / "Annotations" / "008.xml").write_bytes(voc_xml("008.jpg", 61, 40, [("cat", (1, 1, 5, 5))]))  # mismatch
    (root / "JPEGImages" / "006.jpg").write_bytes(b"")  # empty image
    return root


@pytest.mark.parametrize("split", [None, "train"])
def test_forked_readers_give_the_same_data_set(tmp_path, monkeypatch, split):
    root = _tree(tmp_path / "voc")
    monkeypatch.setenv("DSPREP_READERS", "1")
    one = load_dataset(root, split=split, on_error="skip")
    monkeypatch.setenv("DSPREP_READERS", "2")
    calls = []
    real = __import__("dsprep.parallel", fromlist=["fork_map"]).fork_map
    monkeypatch.setattr("dsprep.parallel.fork_map", lambda fn, chunks: calls.append(len(chunks)) or real(fn, chunks))
    two = load_dataset(root, split=split, on_error="skip")
    assert calls == [2]  # annotations and image headers in one trip
    _same(one, two)
    assert any(p.kind == "size_mismatch" for p in two.problems)
    assert any(p.kind == "image_unreadable" for p in two.problems)
    assert any("004.xml" in f for f, _ in two.skipped)


def test_forked_header_readers_for_other_formats(tmp_path, monkeypatch):
    """DOTA files are read in this process; their image headers by forked readers."""
    from helpers import write_dota_tree
    items = {f"P{k:02d}": (50 + k, 40, "1 1 20 1 20 10 1 10 car 0\n0 0 90 0 90 10 0 10 ship 1\n") for k in range(12)}
    root = write_dota_tree(tmp_path / "dota", items)
    (root / "images" / "P03.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # truncated
    monkeypatch.setenv("DSPREP_READERS", "1")
    one = load_dataset(root)
    monkeypatch.setenv("DSPREP_READERS", "2")
    calls = []
    real = __import__("dsprep.parallel", fromlist=["fork_map"]).fork_map
    monkeypatch.setattr("dsprep.parallel.fork_map", lambda fn, chunks: calls.append(len(chunks)) or real(fn, chunks))
    two = load_dataset(root)
    assert calls == [2]
    _same(one, two)
    assert any(p.kind == "polygon_outside_image" for p in two.problems)
    assert any(p.kind == "image_unreadable" for p in two.problems)


def test_forked_readers_raise_the_first_error(tmp_path, monkeypatch):
    root = _tree(tmp_path / "voc")
    monkeypatch.setenv("DSPREP_READERS", "3")
    with pytest.raises(Exception, match="004.xml: malformed XML"):
        load_dataset(root)


def test_pack_round_trip():
    from dsprep.core import ImageRecord
    import numpy as np
    recs = [ImageRecord("a.png", 10, 20, 3, boxes=[[0, 0, 1, 1]], names=["x"], polygons=np.zeros((1, 4, 2)),
                        meta={"k": 1}),
            ImageRecord("b.png", 5, 6, 1),
            ImageRecord("c.png", 7, 8, 3, boxes=[[0, 0, 2, 2], [1, 1, 3, 3]], names=["y", "z"], difficult=[1, 0],
                        truncated=[0, 1], attrs={"id": [4, 5]}, split="val")]
    back = unpack_records(pack_records(recs))
    assert back == recs and [r.meta for r in back] == [r.meta for r in recs]
    assert back[2].attrs == {"id": [4, 5]} and back[0].polygons.shape == (1, 4, 2) and back[1].polygons is None
