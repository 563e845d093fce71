"""voc-to-h5 / voc-to-pickle --size WxH --encode jpeg|png: images re-encoded at the packed size, decoded on read."""
from pathlib import Path

import numpy as np
import pytest

from dsprep.hdf5 import DetectionH5
from helpers import run_cli, write_voc_tree

ITEMS = {"a": (120, 90, [("cat", (10, 10, 60, 50))]), "b": (80, 100, [("dog", (5, 20, 70, 90)), ("cat", (1, 1, 9, 9))]),
         "c": (100, 60, [])}


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    write_voc_tree(root / "voc", ITEMS)
    out = {}
    for name, args in {"raw": [], "jpeg": ["--encode", "jpeg"], "png": ["--encode", "png"],
                       "png-shards": ["--encode", "png", "--shards", "2"]}.items():
        out[name] = root / f"{name}.h5"
        run_cli("voc-to-h5", str(root / "voc"), str(out[name]), "--size", "64x48", "-q", *args)
    out["png-pickle"] = root / "png.pkl"
    run_cli("voc-to-pickle", str(root / "voc"), str(out["png-pickle"]), "--size", "64x48", "--encode", "png", "-q")
    out["root"] = root
    return out


@pytest.mark.parametrize("kind", ["png", "png-shards", "png-pickle"])
def test_png_at_size_holds_the_raw_packs_pixels_and_boxes(packed, kind):
    raw, enc = DetectionH5(packed["raw"]), DetectionH5(packed[kind])
    assert enc.mode == "encoded" and enc.size == raw.size == (64, 48)
    for i in range(len(raw)):
        a, b = raw[i], enc[i]
        assert np.array_equal(a["image"], b["image"])  # PNG is lossless: the same resized pixels
        assert np.array_equal(a["boxes"], b["boxes"]) and np.array_equal(a["labels"], b["labels"])
        assert np.array_equal(a["transform"], b["transform"]) and a["filename"] == b["filename"]


def test_jpeg_at_size_is_the_raw_pixels_as_a_quality_95_jpeg(packed):
    import cv2
    raw, enc = DetectionH5(packed["raw"]), DetectionH5(packed["jpeg"])
    for i in range(len(raw)):
        a, b = raw[i], enc[i]
        bgr = cv2.cvtColor(a["image"], cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert np.array_equal(b["image"], cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
        assert np.array_equal(a["boxes"], b["boxes"])
    assert enc.encoded_offsets[-1] < 0.5 * 3 * 64 * 48 * len(raw)


def test_info_reads_an_encoded_pack_at_its_stored_size(packed):
    from dsprep.dataset import load_dataset
    ds = load_dataset(packed["jpeg"])
    assert sorted((r.width, r.height) for r in ds.records) == [(64, 48)] * 3
    run_cli("info", str(packed["jpeg"]))


@pytest.mark.parametrize("args, message", [
    (["--encode", "jpeg"], "--encode needs --size"),
    (["--encode", "png", "--encoded"], "--encode needs --size"),
    (["--encode", "gif", "--size", "64x48"], "'gif' is not one of"),
])
def test_impossible_encode_options_are_usage_errors(packed, args, message, tmp_path):
    res = run_cli("voc-to-h5", str(packed["root"] / "voc"), str(tmp_path / "x.h5"), *args, ok=False)
    assert res.exit_code == 2 and message in res.output
    assert not (tmp_path / "x.h5").exists()


def test_annotations_only_refuses_encode(packed, tmp_path):
    res = run_cli("voc-to-pickle", str(packed["root"] / "voc"), str(tmp_path / "x.pkl"), "--size", "64x48",
                  "--encode", "png", "--annotations-only", ok=False)
    assert res.exit_code == 2 and "--encode and --annotations-only" in res.output
    assert not Path(tmp_path / "x.pkl").exists()
