"""Detection files, and `dsprep eval` end to end on real ground truth with hand-made detections."""
import json
import shutil

import cv2
import numpy as np
import pytest

from dsprep.core import ParseError
from dsprep.dataset import load_dataset
from dsprep.evaluation.results import file_kind, parse_coco_results, parse_lines, read_detections
from dsprep.evaluation.charts import FP_COLOR, MISSED_COLOR, TP_COLOR
from dsprep.ops.draw import class_color

from helpers import run_cli as run, write_voc_tree

ELEVEN = np.arange(0.0, 1.1, 0.1)


def voc07_all_hits(found: int, positives: int) -> float:
    """VOC07 AP when the top detections are ``found`` true positives and nothing else scores: precision 1 up to
    recall found/positives, then nothing."""
    return sum(1.0 for t in ELEVEN if t <= found / positives) / 11.0


# ------------------------------------------------------------------------------------------------------------------
# parsing

def test_parse_lines_kinds_and_numbers():
    names, scores, coords = parse_lines("a 0.5 1 2 3 4\n\n  b  0.25 1.5 2 3 4\r\n", "x.txt", "voc")
    assert names == ["a", "b"] and list(scores) == [0.5, 0.25]
    assert coords.tolist() == [[1, 2, 3, 4], [1.5, 2, 3, 4]]  # the file's numbers; VOC's shift is read_detections'


@pytest.mark.parametrize("text,message", [
    ("a 0.5 1 2 3 4\nb 0.5 1 2 3\n", "x.txt:2: expected 6 fields (image score xmin ymin xmax ymax), got 5"),
    ("a 0.5 1 2 3 4\n\nb 0.5 1 2 abc 4\n", "x.txt:3: cannot parse xmax from 'abc'"),
    ("a nan 1 2 3 4\n", "x.txt:1: score is 'nan'"),
    ("a 0.5 1 2 3 inf\n", "x.txt:1: ymax is 'inf'"),
])
def test_malformed_lines_name_file_and_line(text, message):
    with pytest.raises(ParseError) as e:
        parse_lines(text, "x.txt", "voc")
    assert str(e.value) == message


def test_task1_lines_need_ten_fields():
    with pytest.raises(ParseError, match=r"T.txt:1: expected 10 fields \(image score x1 y1 x2 y2 x3 y3 x4 y4\)"):
        parse_lines("P1 0.9 1 2 3 4\n", "T.txt", "task1")


@pytest.mark.parametrize("data,message", [
    (b'[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3], "score": 0.5}]',
     r"r.json: detection \[0\]: bbox must be 4 finite numbers"),
    (b'[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5},\n {"image_id": 1, "bbox": [1,2,3,4]}]',
     r"r.json: detection \[1\]: no 'category_id'"),
    (b'[{"image_id": 1, "category_id": 1.5, "bbox": [1, 2, 3, 4], "score": 0.5}]',
     r"detection \[0\]: category_id must be an integer"),
    (b'[\n{"image_id": 1,\n "category_id": 1 "bbox": []}]', r"r.json:3: malformed JSON"),
    (b'{"images": [], "annotations": [], "categories": []}', r"r.json: this is a COCO ground-truth file"),
])
def test_malformed_coco_results(data, message):
    with pytest.raises(ParseError, match=message):
        parse_coco_results(data, "r.json")


def test_coco_results_ids_and_boxes():
    ids, cats, scores, xywh = parse_coco_results(
        b'[{"image_id": 7, "category_id": 3, "bbox": [1.5, 2, 3, 4], "score": 0.25}]', "r.json")
    assert ids.tolist() == [7] and cats.tolist() == [3] and scores.tolist() == [0.25]
    assert xywh.tolist() == [[1.5, 2, 3, 4]]
    ids, *_ = parse_coco_results(b'[{"image_id": "img_7", "category_id": 3, "bbox": [0, 0, 1, 1], "score": 1}]', "r")
    assert ids.tolist() == ["img_7"]


def test_file_kinds():
    assert file_kind("comp4_det_test_car.txt") == ("voc", "car")
    assert file_kind("comp3_det_my_test_traffic_light.txt", ["light", "traffic_light"]) == ("voc", "traffic_light")
    assert file_kind("Task1_small-vehicle.txt") == ("task1", "small-vehicle")
    assert file_kind("task2_ship.txt") == ("task2", "ship")
    assert file_kind("results.json") == ("coco", None)
    assert file_kind("README.txt") is None and file_kind("car.txt") is None


def test_voc_files_are_shifted_to_zero_based(tmp_path):
    (tmp_path / "comp4_det_test_car.txt").write_text("a 0.9 1 1 10 20\n")
    d = read_detections(tmp_path)
    assert d.kind == "voc" and d.boxes.tolist() == [[0, 0, 10, 20]] and d.classes.tolist() == ["car"]
    (tmp_path / "Task2_car.txt").write_text("a 0.9 1 1 10 20\n")
    d = read_detections(tmp_path, "dota-task2")  # a folder with two kinds: the metric's own kind is read
    assert d.kind == "task2" and d.boxes.tolist() == [[1, 1, 10, 20]]
    assert d.ignored_files == [str(tmp_path / "comp4_det_test_car.txt")]


def test_two_files_for_one_class_is_an_error(tmp_path):
    root = write_voc_tree(tmp_path / "voc", {"a": (60, 40, [("car", (1, 1, 10, 10))])})
    (tmp_path / "res").mkdir()
    (tmp_path / "res/comp4_det_test_car.txt").write_text("a 0.9 1 1 10 10\n")
    (tmp_path / "res/comp4_det_val_car.txt").write_text("a 0.8 1 1 10 10\n")
    res = run("eval", root, tmp_path / "res", ok=False)
    assert res.exit_code == 2
    assert res.output.strip() == (f"error: {tmp_path / 'res'}: two results files for class 'car': "
                                  f"comp4_det_test_car.txt and comp4_det_val_car.txt")


# ------------------------------------------------------------------------------------------------------------------
# the command on the reference data: output shapes and errors

@pytest.fixture
def ref(shared):
    return shared / "eval_ref"


def test_json_document_shape(ref):
    res = run("eval", ref / "voc", ref / "voc/results", "--json", "--metric", "voc12")
    doc = json.loads(res.stdout)
    assert doc["metric"] == "voc12" and doc["iou_threshold"] == 0.5 and doc["images"] == 10
    assert set(doc["classes"]) == {"bicycle", "car", "dog", "person"}
    car = doc["classes"]["car"]
    assert set(car) == {"ap", "ground_truths", "detections", "max_recall", "ignored"}
    assert car["ground_truths"] == 24 and car["detections"] == 38 and 0 < car["ap"] < 1
    assert doc["unmatched"]["unknown_images"] == 0 and "coco" not in doc
    assert res.stderr.startswith("eval (voc12, mAP 0.")  # the summary line goes to stderr, the JSON alone to stdout

    coco = json.loads(run("eval", ref / "coco/instances_gt.json", ref / "coco/results.json", "--json").stdout)
    assert list(coco["coco"]) == ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm",
                                  "ARl"]
    assert coco["mAP"] == coco["coco"]["AP"] and set(coco["classes"]) == {"person", "car", "train"}


def test_table_output(ref):
    out = run("eval", ref / "dota", ref / "dota/task2", "--metric", "dota-task2").stdout.splitlines()
    assert out[0].split() == ["class", "GT", "dets", "AP", "max", "recall"]
    assert out[1].split()[:3] == ["harbor", "10", "31"]
    exp = json.loads((ref / "dota/expected_task2.json").read_text())
    assert out[-1].split()[:4] == ["mean", "273", "382", f"{exp['mAP']:.4f}"]


def test_malformed_detection_line_is_one_clean_error(ref, tmp_path):
    shutil.copytree(ref / "voc/results", tmp_path / "res")
    path = tmp_path / "res/comp4_det_test_dog.txt"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(" ", " x", 1)
    path.write_text("\n".join(lines) + "\n")
    res = run("eval", ref / "voc", tmp_path / "res", ok=False)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().splitlines() == [f"error: {path}:3: cannot parse score from 'x{lines[2].split()[1][1:]}'"]


def test_unknown_images_and_classes_are_reported_not_dropped(ref, tmp_path):
    shutil.copytree(ref / "voc/results", tmp_path / "res")
    with open(tmp_path / "res/comp4_det_test_car.txt", "a") as f:
        f.write("999999 0.5 1 1 10 10\n")
    (tmp_path / "res/comp4_det_test_zebra.txt").write_text("001005 0.5 1 1 10 10\n001012 0.4 1 1 10 10\n")
    res = run("eval", ref / "voc", tmp_path / "res", "--json")
    doc = json.loads(res.stdout)
    assert doc["unmatched"] == {"unknown_images": 1, "unknown_classes": 2, "image_examples": ["999999"],
                                "class_examples": ["zebra"]}
    assert "warning: 1 detections name images the ground truth does not have (e.g. 999999): left out" in res.stderr
    assert "warning: 2 detections have classes the ground truth does not have (e.g. zebra): left out" in res.stderr
    assert "3 left out" in res.stderr.splitlines()[-1]
    exp = json.loads((ref / "voc/expected_voc07.json").read_text())
    assert abs(doc["mAP"] - exp["mAP"]) < 1e-12  # the evaluation itself is unchanged


@pytest.mark.parametrize("args,code,message", [
    (["--metric", "coco", "--iou-thresh", "0.7"], 2, "--iou-thresh applies to voc07"),
    (["--iou-thresh", "1.5"], 2, "--iou-thresh must be in [0, 1)"),
    (["--metric", "map"], 2, "Invalid value for '--metric'"),
])
def test_bad_options_exit_2(ref, args, code, message):
    res = run("eval", ref / "voc", ref / "voc/results", *args, ok=False)
    assert res.exit_code == code and message in res.output


def test_coco_results_need_coco_ground_truth(ref):
    res = run("eval", ref / "voc", ref / "coco/results.json", ok=False)
    assert res.exit_code == 2 and "COCO results name classes by category_id" in res.output


def test_output_folders_are_not_clobbered(ref, tmp_path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "keep.txt").write_text("mine")
    res = run("eval", ref / "voc", ref / "voc/results", "--plot", tmp_path / "plots", ok=False)
    assert res.exit_code == 2 and "not empty" in res.output
    assert (tmp_path / "plots" / "keep.txt").read_text() == "mine"
    run("eval", ref / "voc", ref / "voc/results", "--plot", tmp_path / "plots", "--overwrite")
    assert (tmp_path / "plots" / "pr_all.png").is_file()


def test_plots_are_real_charts(ref, tmp_path):
    res = run("eval", ref / "voc", ref / "voc/results", "--plot", tmp_path / "pr")
    assert "5 charts" in res.stderr
    names = sorted(p.name for p in (tmp_path / "pr").iterdir())
    assert names == ["pr_all.png", "pr_bicycle.png", "pr_car.png", "pr_dog.png", "pr_person.png"]
    for name in names:
        img = cv2.imread(str(tmp_path / "pr" / name))
        assert img is not None and img.shape[0] == 480 and img.shape[1] >= 640
    car = cv2.imread(str(tmp_path / "pr" / "pr_car.png"))
    assert (car == np.array(class_color("car"), np.uint8)).all(axis=2).sum() > 200  # the curve is drawn
    overview = cv2.imread(str(tmp_path / "pr" / "pr_all.png"))
    for name in ("bicycle", "car", "dog", "person"):
        assert (overview == np.array(class_color(name), np.uint8)).all(axis=2).sum() > 100


def test_coco_plots(ref, tmp_path):
    run("eval", ref / "coco/instances_gt.json", ref / "coco/results.json", "--plot", tmp_path / "pr")
    assert sorted(p.name for p in (tmp_path / "pr").iterdir()) == ["pr_all.png", "pr_car.png", "pr_person.png",
                                                                    "pr_train.png"]


def _colour_pixels(img, bgr, tolerance=12):
    return int((np.abs(img.astype(int) - np.array(bgr)).max(axis=2) <= tolerance).sum())


def test_visualize_worst_images_first(ref, tmp_path):
    res = run("eval", ref / "voc", ref / "voc/results", "--visualize", tmp_path / "vis", "--vis-score", "0.3")
    rows = [line.split("\t") for line in (tmp_path / "vis/index.tsv").read_text().splitlines()[1:]]
    assert len(rows) == 10 and "10 drawn" in res.stderr
    errors = [int(r[3]) + int(r[4]) for r in rows]
    assert errors == sorted(errors, reverse=True)
    files = sorted(p.name for p in (tmp_path / "vis").glob("*.jpg"))
    assert files == [f"{int(r[0]):04d}_{r[1]}.jpg" for r in rows]
    # the worst image shows its false positives and missed objects, each in its colour
    img = cv2.imread(str(tmp_path / "vis" / files[0]))
    src = cv2.imread(str(ref / "voc/JPEGImages" / f"{rows[0][1]}.jpg"))
    assert img.shape[1] == src.shape[1] and img.shape[0] > src.shape[0]  # a caption band on top
    for (count, colour) in ((int(rows[0][2]), TP_COLOR), (int(rows[0][3]), FP_COLOR), (int(rows[0][4]), MISSED_COLOR)):
        if count:
            assert _colour_pixels(img, colour) > 50
    limited = run("eval", ref / "voc", ref / "voc/results", "--visualize", tmp_path / "v2", "--vis-limit", "3")
    assert len(list((tmp_path / "v2").glob("*.jpg"))) == 3 and "3 drawn" in limited.stderr
    # drawn in two worker processes: the same files, byte for byte
    run("eval", ref / "voc", ref / "voc/results", "--visualize", tmp_path / "v3", "--vis-score", "0.3", "-j", "2")
    for name in files + ["index.tsv"]:
        assert (tmp_path / "v3" / name).read_bytes() == (tmp_path / "vis" / name).read_bytes()


# ------------------------------------------------------------------------------------------------------------------
# real ground truth, hand-made detections with outcomes worked out by hand

def _voc_line(stem, score, box):
    x0, y0, x1, y1 = box
    return f"{stem} {score:.6f} {x0 + 1:g} {y0 + 1:g} {x1:g} {y1:g}\n"  # back to VOC's 1-based pixels


def _objects(ds):
    return [(r.stem, k, r.names[k], r.boxes[k], bool(r.difficult[k])) for r in ds.records for k in range(len(r))]


def test_voc_sample_with_hand_made_detections(shared, tmp_path):
    ds = load_dataset(shared / "voc_sample", split="test")
    objs = _objects(ds)
    positives = {c: sum(1 for o in objs if o[2] == c and not o[4]) for c in ds.classes}
    half_class = max(positives, key=positives.get)  # person: some found, some not
    dup_class = sorted((c for c in positives if c != half_class and positives[c] >= 2),
                       key=positives.get, reverse=True)[0]
    files = {}
    score = 1.0
    n_half = positives[half_class]
    kept_half = 0
    dups = []
    for stem, k, name, box, hard in objs:
        score -= 0.001
        lines = files.setdefault(name, [])
        if hard:
            lines.append(_voc_line(stem, score, box))  # on a difficult object: neither right nor wrong
        elif name == half_class and kept_half >= n_half // 2:
            lines.append(_voc_line(stem, score - 0.5, (0, 0, 1, 1)))  # a 1x1 box in the corner: a miss and an FP
        else:
            kept_half += name == half_class
            lines.append(_voc_line(stem, score, box))
            if name == dup_class:
                dups.append(_voc_line(stem, score - 0.0005, box))  # right after its original: a duplicate
    files[dup_class] += dups
    (tmp_path / "res").mkdir()
    for name, lines in files.items():
        (tmp_path / "res" / f"comp4_det_test_{name}.txt").write_text("".join(lines))
    n_dup = positives[dup_class]
    # dup_class in score order: o1 d1 o2 d2 ...: the k-th true positive has precision k / (2k - 1)
    dup_prec = [k / (2 * k - 1) for k in range(1, n_dup + 1)]
    dup_voc12 = sum(max(dup_prec[k:]) for k in range(n_dup)) / n_dup
    dup_voc07 = sum(max([p for k, p in enumerate(dup_prec) if (k + 1) / n_dup >= t] or [0]) for t in ELEVEN) / 11
    for metric, half_ap, dup_ap in (("voc12", (n_half // 2) / n_half, dup_voc12),
                                    ("voc07", voc07_all_hits(n_half // 2, n_half), dup_voc07)):
        doc = json.loads(run("eval", shared / "voc_sample", tmp_path / "res", "--split", "test", "--metric", metric,
                             "--json").stdout)
        for c, v in doc["classes"].items():
            want = half_ap if c == half_class else dup_ap if c == dup_class else 1.0
            if positives[c] == 0:
                assert v["ap"] is None
            else:
                assert v["ap"] == pytest.approx(want, abs=1e-12), (metric, c)
        assert doc["classes"][half_class]["max_recall"] == pytest.approx((n_half // 2) / n_half)


def test_dota_example_with_hand_made_detections(shared, tmp_path):
    ds = load_dataset(shared / "dota_example")
    (tmp_path / "t1").mkdir()
    rng = np.random.default_rng(0)
    lines = {}
    for r in ds.records:
        for k in range(len(r)):
            q = r.polygons[k]
            q = np.roll(q, rng.integers(4), axis=0)  # any start corner
            q = q[::-1] if rng.random() < 0.5 else q  # either direction
            lines.setdefault(r.names[k], []).append(
                f"{r.stem} {rng.random():.6f} " + " ".join(f"{v:g}" for v in q.reshape(-1)) + "\n")
    for name, ls in lines.items():
        (tmp_path / "t1" / f"Task1_{name}.txt").write_text("".join(ls))
    doc = json.loads(run("eval", shared / "dota_example", tmp_path / "t1", "--json").stdout)
    assert doc["metric"] == "dota-task1"
    assert all(v["ap"] == pytest.approx(1.0) and v["max_recall"] == 1.0 for v in doc["classes"].values())

    # one bow tie made of an object's own corners (order 0 2 1 3): polyiou's two lobes cancel each other
    rec = next(r for r in ds.records if r.stem == "P1888")
    k = rec.names.index("large-vehicle")
    q = rec.polygons[k]
    bow = q[[0, 2, 1, 3]]
    (tmp_path / "bow").mkdir()
    (tmp_path / "bow" / "Task1_large-vehicle.txt").write_text(
        "P1888 0.9 " + " ".join(f"{v:g}" for v in bow.reshape(-1)) + "\n")

    def tri(a, b, c):
        return abs((b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])) / 2
    # the diagonals 0-2 and 1-3 cross at X; the lobes are X-p2-p1 and X-p3-p0
    def cross(u, v):
        return u[0] * v[1] - u[1] * v[0]
    d1, d2 = q[2] - q[0], q[3] - q[1]
    t = cross(q[1] - q[0], d2) / cross(d1, d2)
    x = q[0] + t * d1
    a1, a2 = tri(x, q[2], q[1]), tri(x, q[3], q[0])
    area = tri(q[0], q[1], q[2]) + tri(q[0], q[2], q[3])
    devkit_iou, shapes_iou = abs(a1 - a2) / area, (a1 + a2) / area
    assert devkit_iou < 0.1 and 0.4 < shapes_iou < 0.6
    npos = int(sum(1 for r in ds.records for n, d in zip(r.names, r.difficult) if n == "large-vehicle" and not d))
    thr = f"{shapes_iou - 0.05:.3f}"
    for mode, want in (("devkit", 0.0), ("valid", voc07_all_hits(1, npos))):
        doc = json.loads(run("eval", shared / "dota_example", tmp_path / "bow", "--iou-thresh", thr,
                             "--polygon-iou", mode, "--json").stdout)
        assert doc["classes"]["large-vehicle"]["ap"] == pytest.approx(want)
        assert doc["classes"]["ship"]["ap"] == 0.0 and doc["classes"]["ship"]["detections"] == 0


def test_tile_detect_merge_eval_pipeline(shared, tmp_path):
    """Per-tile detections (here: the objects each tile holds, as a perfect detector would report them) go
    through `merge-dota` and the merged files straight into `eval`."""
    from dsprep.ops.tiling import tile_origins
    from dsprep.evaluation.metrics import polygon_iou_pairs
    ds = load_dataset(shared / "dota_example")
    (tmp_path / "tiles").mkdir()
    lines = {}
    covered = set()
    for r in ds.records:
        names = np.array(r.names)
        for c in set(r.names):  # the precondition for "NMS only removes duplicates"
            idx = np.flatnonzero(names == c)
            i, j = np.triu_indices(len(idx), 1)
            assert (polygon_iou_pairs(r.polygons[idx], r.polygons[idx], i, j) <= 0.3).all()
        xs, ys = tile_origins(r.width, 1024, 200), tile_origins(r.height, 1024, 200)
        for left in xs:
            for up in ys:
                for k in range(len(r)):
                    q = r.polygons[k]
                    if q[:, 0].min() >= left and q[:, 1].min() >= up and q[:, 0].max() <= left + 1024 \
                            and q[:, 1].max() <= up + 1024:
                        covered.add((r.stem, k))
                        local = q - [left, up]
                        score = 1 - (k + 1) / 10000
                        lines.setdefault(r.names[k], []).append(
                            f"{r.stem}__1__{left}___{up} {score:.4f} " + " ".join(f"{v:g}" for v in local.reshape(-1))
                            + "\n")
    for name, ls in lines.items():
        (tmp_path / "tiles" / f"Task1_{name}.txt").write_text("".join(ls))
    n_tile_lines = sum(len(v) for v in lines.values())
    run("merge-dota", tmp_path / "tiles", "--out", tmp_path / "merged")
    merged = sum(len(p.read_text().splitlines()) for p in (tmp_path / "merged").glob("Task1_*.txt"))
    assert merged == len(covered) < n_tile_lines  # duplicates from overlapping tiles are gone
    doc = json.loads(run("eval", shared / "dota_example", tmp_path / "merged", "--json").stdout)
    for c, v in doc["classes"].items():
        npos = sum(1 for r in ds.records for n, d in zip(r.names, r.difficult) if n == c and not d)
        found = sum(1 for r in ds.records for k, (n, d) in enumerate(zip(r.names, r.difficult))
                    if n == c and not d and (r.stem, k) in covered)
        assert v["ap"] == pytest.approx(voc07_all_hits(found, npos)), c
        assert v["max_recall"] == pytest.approx(found / npos)


def test_packed_ground_truth(tmp_path):
    root = write_voc_tree(tmp_path / "voc", {
        "a": (64, 48, [("cat", (11, 6, 30, 25)), ("dog", (31, 1, 60, 40))]),
        "b": (64, 48, [("cat", (1, 1, 20, 20))])})
    run("voc-to-h5", root, tmp_path / "voc.h5")
    (tmp_path / "res").mkdir()
    (tmp_path / "res/comp4_det_test_cat.txt").write_text("a 0.9 11 6 30 25\nb 0.8 1 1 20 20\nb 0.7 40 30 50 40\n")
    (tmp_path / "res/comp4_det_test_dog.txt").write_text("")
    res = run("eval", tmp_path / "voc.h5", tmp_path / "res", "--json", "--metric", "voc12",
              "--visualize", tmp_path / "vis", "--vis-score", "0")
    doc = json.loads(res.stdout)
    assert doc["classes"]["cat"]["ap"] == 1.0 and doc["classes"]["dog"]["ap"] == 0.0
    # equal errors (a: one missed dog; b: one false positive): more false positives rank first
    assert (tmp_path / "vis/index.tsv").read_text().splitlines()[1:] == ["1\tb\t1\t1\t0", "2\ta\t1\t0\t1"]
    img = cv2.imread(str(tmp_path / "vis" / "0002_a.jpg"))
    # (a tiny JPEG over a gradient: colours blur, hence the wider tolerance)
    assert _colour_pixels(img, MISSED_COLOR, 40) > 40 and _colour_pixels(img, TP_COLOR, 40) > 40
    assert _colour_pixels(img, FP_COLOR, 40) == 0


def test_defaults_and_image_names_with_extensions(ref, tmp_path):
    (tmp_path / "t2").mkdir()
    for f in (ref / "dota/task2").iterdir():
        lines = [line.split(" ", 1) for line in f.read_text().splitlines()]
        (tmp_path / "t2" / f.name).write_text("".join(f"images/{a}.png {b}\n" for a, b in lines))
    doc = json.loads(run("eval", ref / "dota", tmp_path / "t2", "--json").stdout)
    exp = json.loads((ref / "dota/expected_task2.json").read_text())
    assert doc["metric"] == "dota-task2" and abs(doc["mAP"] - exp["mAP"]) < 1e-12
    assert doc["unmatched"]["unknown_images"] == 0
