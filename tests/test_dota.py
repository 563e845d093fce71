import json

import cv2
import numpy as np
import pytest

from dsprep.core import ImageRecord, ParseError
from dsprep.dataset import load_dataset
from dsprep.dota import format_dota, parse_dota, self_intersecting
from dsprep.ops.merge import nms, parse_tile_name
from dsprep.ops.tiling import rate_name, tile_origins

from helpers import run_cli as run, gradient, write_voc_tree




# ---- label files -------------------------------------------------------------------------------------------------

def test_parse_headers_fields_line_endings():
    text = ("imagesource:GoogleEarth\r\ngsd:0.146343590398\r\n"
            "1054 1028 1063 1011 1111 1040 1112 1062 ship 1\r\n"
            "807.5   331 800 324 817 309 823 316 small-vehicle\r\n\r\n")
    rec, problems, skipped = parse_dota(text, "a.txt")
    assert rec.meta == {"imagesource": "GoogleEarth", "gsd": "0.146343590398"}
    assert rec.names == ["ship", "small-vehicle"] and rec.difficult.tolist() == [1, 0]
    np.testing.assert_array_equal(rec.polygons[1], [[807.5, 331], [800, 324], [817, 309], [823, 316]])
    np.testing.assert_array_equal(rec.boxes[0], [1054, 1011, 1112, 1062])
    assert problems == [] and skipped == []


@pytest.mark.parametrize("line, message", [
    ("1 2 3 4 5 6 7 8", "a.txt:2: expected 9 or 10 fields"),
    ("1 2 3 4 5 6 7 8 car 0 extra", "a.txt:2: expected 9 or 10 fields"),
    ("1 2 3 x 5 6 7 8 car 0", "a.txt:2: cannot parse y2 from 'x'"),
    ("1 2 3 4 5 6 7 8 car hard", "a.txt:2: cannot parse difficult from 'hard'"),
])
def test_bad_lines_name_file_and_line(line, message):
    text = f"0 0 10 0 10 10 0 10 car 0\n{line}\n"
    with pytest.raises(ParseError, match=message):
        parse_dota(text, "a.txt")
    rec, _, skipped = parse_dota(text, "a.txt", on_error="skip")
    assert len(rec) == 1 and len(skipped) == 1 and skipped[0][0] == "a.txt:2"


def test_degenerate_polygons_are_reported_not_fatal():
    text = ("0 0 10 0 10 10 0 10 ok 0\n"
            "0 0 10 0 20 0 5 0 flat 0\n"
            "0 0 10 10 10 0 0 10 bowtie 0\n")
    rec, problems, _ = parse_dota(text, "x.txt")
    assert len(rec) == 3
    assert [(p.kind, p.detail) for p in problems] == [("zero_area_polygon", "object 1 (flat)"),
                                                       ("self_intersecting_polygon", "object 2 (bowtie)")]
    assert self_intersecting(rec.polygons).tolist() == [False, False, True]


def test_format_round_trip_and_no_mutation():
    polys = np.array([[[1.5, 2], [10, 2], [10, 9.25], [1.5, 9]]])
    rec = ImageRecord("a.png", 20, 20, boxes=[[1.5, 2, 10, 9.25]], names=["plane"], difficult=[1], polygons=polys,
                      meta={"gsd": "0.5"})
    text = format_dota(rec)
    assert text == "gsd:0.5\n1.5 2 10 2 10 9.25 1.5 9 plane 1\n"
    again, _, _ = parse_dota(text)
    np.testing.assert_array_equal(again.polygons, polys)
    np.testing.assert_array_equal(rec.polygons, polys)


def test_dota_folder_info_visualize_crop(shared, tmp_path):
    data = json.loads(run("info", shared / "dota_example", "--json").output)
    assert data["format"] == "dota" and data["images"] == 2 and data["objects"] == 600
    assert data["classes"]["ship"] == 531
    run("visualize", "boxes", shared / "dota_example", "--out", tmp_path / "v", "--only", "harbor")
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["P0706.jpg", "P1888.jpg"]
    run("crop", shared / "dota_example", "--out", tmp_path / "c", "--only", "harbor")
    crops = sorted((tmp_path / "c" / "harbor").iterdir())
    assert len(crops) == 5
    rgba = cv2.imread(str(crops[0]), cv2.IMREAD_UNCHANGED)
    assert rgba.shape[2] == 4 and rgba[..., 3].max() == 255 and rgba[..., 3].min() == 0  # alpha is the polygon


# ---- tiling geometry ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("length, size, gap, expected", [
    (100, 1024, 200, [0]),            # smaller than one tile
    (1024, 1024, 200, [0]),           # exactly one tile
    (1025, 1024, 200, [0, 1]),        # last origin moved back to the border
    (2000, 1024, 200, [0, 824, 976]),
    (1111, 512, 200, [0, 312, 599]),
])
def test_tile_origins(length, size, gap, expected):
    assert tile_origins(length, size, gap) == expected


def test_impossible_tile_options(tmp_path):
    res = run("tile-dota", tmp_path, "--out", tmp_path / "o", "--gap", "300", "--size", "300", ok=False)
    assert res.exit_code == 2 and "Invalid value for --gap: 300 must be smaller than --size 300" in res.output


def test_rate_names():
    assert [rate_name(r) for r in (1, 1.0, 0.5, 1.5, 2.0)] == ["1", "1", "0.5", "1.5", "2"]
    assert parse_tile_name("P0706__0.5__824___412") == ("P0706", 0.5, 824, 412)
    assert parse_tile_name("a__b__1__0___12") == ("a__b", 1.0, 0, 12)


def _dota_folder(root, img, lines, name="A"):
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    cv2.imwrite(str(root / "images" / f"{name}.png"), img)
    (root / "labelTxt" / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
    return root


def _labels(out, name):
    return [line.split() for line in (out / "labelTxt" / f"{name}.txt").read_text().splitlines()]


def test_tiling_border_cases(tmp_path):
    # 300x200 image, size 200, gap 50: columns at 0 and 100, one row.
    lines = ["10 10 50 10 50 50 10 50 inside 0",       # only in tile 0
             "80 60 160 60 160 90 80 90 spans 1",      # whole in tile 0, cut (60/80 kept) in tile 100
             "190 100 260 100 260 140 190 140 cut 0",  # cut in tile 0 (10/70 kept -> 2), whole in tile 100
             "199 10 199 10 199 10 199 10 point 0",    # zero area: never written
             "100 150 150 150 150 199 100 199 edge 0"]  # touches the window's last row: whole in both tiles
    src = _dota_folder(tmp_path / "src", gradient(300, 200), lines)
    out = tmp_path / "out"
    res = run("tile-dota", src, "--out", out, "--size", "200", "--gap", "50")
    assert "2 tiles" in res.output
    t0, t1 = _labels(out, "A__1__0___0"), _labels(out, "A__1__100___0")
    assert t0[0] == "10.0 10.0 50.0 10.0 50.0 50.0 10.0 50.0 inside 0".split()
    assert t0[1] == "80.0 60.0 160.0 60.0 160.0 90.0 80.0 90.0 spans 1".split()
    assert t0[2][-2:] == ["cut", "2"]
    assert {(float(x), float(y)) for x, y in zip(t0[2][0:8:2], t0[2][1:8:2])} == {
        (190, 100), (200, 100), (200, 140), (190, 140)}  # window is [0, min(0 + 200, W - 1)]
    assert t0[3][-2:] == ["edge", "0"]
    assert [t[-2] for t in t1] == ["spans", "cut", "edge"]
    spans = t1[0]
    assert spans[-1] == "1"  # 60/80 = 0.75 kept > 0.7: difficult flag kept
    assert {(float(x), float(y)) for x, y in zip(spans[0:8:2], spans[1:8:2])} == {(1, 60), (60, 60), (60, 90), (1, 90)}
    assert t1[1] == "90.0 100.0 160.0 100.0 160.0 140.0 90.0 140.0 cut 0".split()
    # tiles are the image's own pixels
    img = cv2.imread(str(out / "images" / "A__1__100___0.png"))
    np.testing.assert_array_equal(img, gradient(300, 200)[0:200, 100:300])


def test_object_spanning_three_tiles_and_small_image(tmp_path):
    src = _dota_folder(tmp_path / "src", gradient(500, 100), ["20 20 480 20 480 80 20 80 long 0"])
    out = tmp_path / "out"
    run("tile-dota", src, "--out", out, "--size", "200", "--gap", "50")
    names = sorted(p.stem for p in (out / "labelTxt").iterdir())
    assert names == ["A__1__0___0", "A__1__150___0", "A__1__300___0"]
    for n in names:
        (line,) = _labels(out, n)
        assert line[-2:] == ["long", "2"]  # each tile keeps < 70% of it
        assert all(1 <= float(v) <= 200 for v in line[:8])
    assert cv2.imread(str(out / "images" / "A__1__0___0.png")).shape == (100, 200, 3)  # not padded by default
    run("tile-dota", src, "--out", tmp_path / "pad", "--size", "200", "--gap", "50", "--pad")
    assert cv2.imread(str(tmp_path / "pad" / "images" / "A__1__0___0.png")).shape == (200, 200, 3)


@pytest.mark.parametrize("channels", [1, 4])
def test_grayscale_and_rgba_inputs(tmp_path, channels):
    img = gradient(120, 90, 3)
    src_img = img[:, :, 0] if channels == 1 else np.dstack([img, np.full(img.shape[:2], 128, np.uint8)])
    src = _dota_folder(tmp_path / "src", src_img, ["10 10 40 10 40 40 10 40 car 0"])
    out = tmp_path / "out"
    run("tile-dota", src, "--out", out, "--size", "100", "--gap", "20")
    tile = cv2.imread(str(out / "images" / "A__1__0___0.png"), cv2.IMREAD_UNCHANGED)
    expected = cv2.imread(str(src / "images" / "A.png"))[0:100, 0:100]  # the devkit reads with IMREAD_COLOR
    assert tile.shape == (90, 100, 3)
    np.testing.assert_array_equal(tile, expected[:90])


def test_multiple_rates_and_skip_empty(tmp_path):
    src = _dota_folder(tmp_path / "src", gradient(400, 400), ["10 10 60 10 60 60 10 60 car 0"])
    out = tmp_path / "out"
    res = run("tile-dota", src, "--out", out, "--size", "200", "--gap", "0", "--rate", "1", "--rate", "0.5",
              "--skip-empty")
    names = sorted(p.stem for p in (out / "labelTxt").iterdir())
    assert names == ["A__0.5__0___0", "A__1__0___0"]
    assert _labels(out, "A__0.5__0___0")[0][:8] == ["5.0", "5.0", "30.0", "5.0", "30.0", "30.0", "5.0", "30.0"]
    assert "3 empty_skipped" in res.output
    assert cv2.imread(str(out / "images" / "A__0.5__0___0.png")).shape == (200, 200, 3)


def test_tile_workers_give_identical_output(shared, tmp_path):
    for w in ("1", "2"):
        run("tile-dota", shared / "dota_example", "--out", tmp_path / w, "--size", "512", "--workers", w)
    for sub in ("images", "labelTxt"):
        a = sorted((tmp_path / "1" / sub).iterdir())
        b = sorted((tmp_path / "2" / sub).iterdir())
        assert [p.name for p in a] == [p.name for p in b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))


def test_missing_image_folder_and_unreadable_image(tmp_path):
    res = run("tile-dota", tmp_path / "nope", "--out", tmp_path / "o", ok=False)
    assert res.exit_code == 2 and "not found" in res.output
    src = _dota_folder(tmp_path / "src", gradient(50, 50), ["1 1 9 1 9 9 1 9 car 0"])
    (src / "images" / "A.png").write_bytes(b"\x89PNG broken")
    res = run("tile-dota", src, "--out", tmp_path / "o2", ok=False)
    assert res.exit_code == 1 and "A.png: not a readable image" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o2").exists()  # a failed run leaves nothing behind


# ---- merge-back ----------------------------------------------------------------------------------------------------

def test_nms_polygon_iou():
    polys = np.array([[[0, 0], [10, 0], [10, 10], [0, 10]],
                      [[1, 0], [11, 0], [11, 10], [1, 10]],      # IoU 0.82 with the first
                      [[20, 20], [30, 20], [30, 30], [20, 30]],
                      [[0, 0], [10, 10], [0, 10], [0, 10]]], float)  # a triangle inside the first: IoU 0.5
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    assert nms(polys, scores, 0.3).tolist() == [3, 2]
    assert nms(polys, scores, 0.6).tolist() == [3, 0, 2]
    assert nms(polys, scores, 0.9).tolist() == [3, 0, 1, 2]


def test_merge_back_of_tiled_ground_truth(shared, tmp_path):
    src = shared / "dota_example"
    run("tile-dota", src, "--out", tmp_path / "tiles", "--size", "512", "--gap", "200")
    originals = {}
    for name in ("P0706", "P1888"):
        rec, _, _ = parse_dota((src / "labelTxt" / f"{name}.txt").read_text())
        originals[name] = {tuple(np.trunc(p).reshape(-1)) for p in rec.polygons}
    per_class = {}
    expected = {}
    for f in sorted((tmp_path / "tiles" / "labelTxt").iterdir()):
        stem, _, left, up = parse_tile_name(f.stem)
        for line in f.read_text().splitlines():
            v = line.split()
            back = tuple(float(x) + (left if i % 2 == 0 else up) for i, x in enumerate(v[:8]))
            if back in originals[stem]:  # a whole (uncut) object: its detection must map back exactly
                per_class.setdefault(v[8], []).append(f"{f.stem} 0.9 {' '.join(v[:8])}\n")
                expected.setdefault(v[8], set()).add((stem,) + back)
    dets = tmp_path / "dets"
    dets.mkdir()
    for cls, lines in per_class.items():
        (dets / f"Task1_{cls}.txt").write_text("".join(lines))
    n_in = sum(len(v) for v in per_class.values())
    res = run("merge-dota", dets, "--out", tmp_path / "merged", "--nms-thresh", "0.95")
    got = {}
    for f in (tmp_path / "merged").iterdir():
        rows = [line.split() for line in f.read_text().splitlines()]
        got[f.stem[len("Task1_"):]] = [(r[0],) + tuple(float(x) for x in r[2:]) for r in rows]
    for cls, want in expected.items():
        assert sorted(got[cls]) == sorted(want)  # every object once: duplicates from overlapping tiles removed
    assert n_in > sum(len(v) for v in expected.values())  # there were duplicates to remove
    assert f"{n_in} detections" in res.output


# ---- conversions ---------------------------------------------------------------------------------------------------

def test_convert_round_trip(tmp_path):
    voc = write_voc_tree(tmp_path / "voc", {"a": (60, 40, [("cat", (11, 6, 30, 25), "<difficult>1</difficult>")]),
                                            "b": (60, 40, [("dog", (1, 1, 60, 40))])}, splits={"train": ["a", "b"]})
    run("convert", "voc-to-dota", voc, "--out", tmp_path / "dota")
    assert (tmp_path / "dota" / "labelTxt" / "a.txt").read_text() == "10 5 30 5 30 25 10 25 cat 1\n"
    assert (tmp_path / "dota" / "images" / "a.jpg").read_bytes() == (voc / "JPEGImages" / "a.jpg").read_bytes()
    run("convert", "dota-to-voc", tmp_path / "dota", "--out", tmp_path / "voc2")
    a = load_dataset(voc, split="train").records
    b = load_dataset(tmp_path / "voc2", split="train").records  # the split came through DOTA's ImageSets/ list
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.boxes, y.boxes)
        assert x.names == y.names and x.difficult.tolist() == y.difficult.tolist()


def test_dota_to_voc_clips_and_keeps_difficult(shared, tmp_path):
    res = run("convert", "dota-to-voc", shared / "dota_example", "--out", tmp_path / "v")
    # the quads are kept as SegmentationObject/Class masks (their boxes in the XML); P0706's 536 objects run out
    # of VOC's 254 instance ids
    assert "600 objects, 282 mask_instance_over_254, 1 clipped_box" in res.output
    data = json.loads(run("info", tmp_path / "v", "--json", "--rare-below", "0").output)
    assert data["objects"] == 600 and data["difficult"] == 6 and data["problems"] == []


def test_tile_skips_bad_lines_with_on_error_skip(tmp_path):
    src = _dota_folder(tmp_path / "src", gradient(100, 100), ["10 10 40 10 40 40 10 40 car 0", "1 2 3 oops"])
    res = run("tile-dota", src, "--out", tmp_path / "a", "--size", "100", "--gap", "10", ok=False)
    assert res.exit_code == 1 and "A.txt:2: expected 9 or 10 fields" in res.output
    res = run("tile-dota", src, "--out", tmp_path / "b", "--size", "100", "--gap", "10", "--on-error", "skip")
    assert "1 label line skipped (1 expected 9 or 10 fields" in res.output and "A.txt:2" in res.output
    assert _labels(tmp_path / "b", "A__1__0___0")[0][-2:] == ["car", "0"]
