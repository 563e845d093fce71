"""dsprep tile: any data set tiled through the format registry, with tile-dota's geometry."""
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from dsprep.cli import main
from dsprep.dataset import load_dataset
from helpers import gradient, write_voc_tree


def run(*args, ok=True):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def test_tile_dota_data_set_equals_tile_dota(shared, tmp_path):
    """On a DOTA folder, tile gives tile-dota's tiles: same names, pixels and objects (numbers written as DOTA does
    elsewhere in dsprep: 807 rather than the devkit's 807.0)."""
    src = shared / "dota_example"
    run("tile-dota", src, "--out", tmp_path / "a", "--size", "512", "--gap", "100", "--rate", "1", "--rate", "0.5", "-q")
    run("tile", src, "--out", tmp_path / "b", "--size", "512", "--gap", "100", "--rate", "1", "--rate", "0.5", "-q",
        "--ext", ".png")
    a = sorted(p.name for p in (tmp_path / "a" / "images").iterdir())
    assert a == sorted(p.name for p in (tmp_path / "b" / "images").iterdir()) and len(a) > 10
    for name in a:
        x = cv2.imread(str(tmp_path / "a" / "images" / name), cv2.IMREAD_UNCHANGED)
        y = cv2.imread(str(tmp_path / "b" / "images" / name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(x, y), name
        stem = name[:-4]
        la = [line.split() for line in (tmp_path / "a" / "labelTxt" / f"{stem}.txt").read_text().splitlines()]
        lb = [line.split() for line in (tmp_path / "b" / "labelTxt" / f"{stem}.txt").read_text().splitlines()]
        assert [[float(v) for v in r[:8]] + r[8:] for r in la] == [[float(v) for v in r[:8]] + r[8:] for r in lb]
    back = load_dataset(tmp_path / "b")
    assert back.format == "dota" and len(back.records) == len(a)


def test_tile_voc(tmp_path):
    voc = write_voc_tree(tmp_path / "voc", {
        "a": (300, 200, [("car", (11, 21, 60, 80)),          # inside the first tile only
                         ("bus", (90, 50, 150, 120)),        # cut by the first tile's border (x 0..127)
                         ("car", (250, 150, 300, 200))]),    # bottom-right corner
        "b": (100, 90, [])}, splits={"train": ["a", "b"]})
    res = run("tile", voc, "--out", tmp_path / "t", "--size", "128", "--gap", "28", "--json", "-q")
    out = tmp_path / "t"
    ds = load_dataset(out)
    assert ds.format == "voc"
    names = sorted(r.stem for r in ds.records)
    # 300 x 200 at size 128 gap 28: x origins 0, 100, 172; y origins 0, 72; b (100 x 90) is one tile
    assert names == sorted([f"a__1__{x}___{y}" for x in (0, 100, 172) for y in (0, 72)] + ["b__1__0___0"])
    assert sorted((out / "ImageSets" / "Main" / "train.txt").read_text().split()) == names  # the source's split
    rec = {r.stem: r for r in ds.records}
    first = rec["a__1__0___0"]
    assert first.names == ["car", "bus"]
    # 0-based boxes: car (10, 20, 60, 80) whole; bus (89, 49, 150, 120) cut at the window's right edge x = 128;
    # the corner car (249, 149, 300, 200) by the devkit's window [left, W - 1] x [up, H - 1]
    assert first.boxes.tolist() == [[10, 20, 60, 80], [89, 49, 128, 120]]
    assert first.truncated.tolist() == [False, True]
    assert (first.width, first.height) == (128, 128)
    corner = rec["a__1__172___72"]
    assert corner.names == ["car"] and corner.boxes.tolist() == [[77, 77, 127, 127]]
    assert rec["b__1__0___0"].names == []
    # pixels: the tile is the image's window
    img = cv2.imread(str(voc / "JPEGImages" / "a.jpg"))
    tile = cv2.imread(str(out / "JPEGImages" / "a__1__100___72.jpg"))
    assert tile.shape == (128, 128, 3)
    assert np.abs(tile.astype(int) - img[72:200, 100:228]).mean() < 3  # re-encoded JPEG
    assert '"tiles": 7' in res.output


def test_tile_to_other_format_and_png(tmp_path):
    voc = write_voc_tree(tmp_path / "voc", {"a": (200, 150, [("car", (11, 21, 60, 80))])}, ext=".png")
    run("tile", voc, "--out", tmp_path / "t", "--size", "100", "--gap", "0", "--to", "dota", "-q")
    out = tmp_path / "t"
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"a__1__{x}___{y}.png" for x in (0, 100)
                                                                   for y in (0, 50)]
    assert (out / "labelTxt" / "a__1__0___0.txt").read_text() == "10 20 60 20 60 80 10 80 car 0\n"
    img = gradient(200, 150)
    assert np.array_equal(cv2.imread(str(out / "images" / "a__1__100___50.png")), img[50:150, 100:200])


def test_tile_gray_stays_gray_and_usage_errors(tmp_path):
    root = tmp_path / "voc"
    write_voc_tree(root, {"g": (120, 100, [("car", (1, 1, 50, 50))])}, ext=".png")
    cv2.imwrite(str(root / "JPEGImages" / "g.png"), gradient(120, 100)[..., 0])
    run("tile", root, "--out", tmp_path / "t", "--size", "64", "--gap", "0", "-q")
    tile = cv2.imread(str(tmp_path / "t" / "JPEGImages" / "g__1__0___0.png"), cv2.IMREAD_UNCHANGED)
    assert tile.ndim == 2
    assert "<depth>1</depth>" in (tmp_path / "t" / "Annotations" / "g__1__0___0.xml").read_text()
    res = run("tile", root, "--out", tmp_path / "u", "--size", "64", "--gap", "64", ok=False)
    assert res.exit_code == 2
    res = run("tile", root, "--out", tmp_path / "u", "--to", "h5", ok=False)
    assert res.exit_code == 2


@pytest.mark.parametrize("workers", ["2"])
def test_tile_workers_same_files(tmp_path, workers):
    voc = write_voc_tree(tmp_path / "voc", {f"i{k}": (260, 180, [("car", (11 + k, 21, 160, 80))]) for k in range(3)},
                         ext=".png")
    run("tile", voc, "--out", tmp_path / "a", "--size", "100", "--gap", "20", "-q")
    run("tile", voc, "--out", tmp_path / "b", "--size", "100", "--gap", "20", "-q", "-j", workers)
    fa = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    fb = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert fa == fb
    for rel in fa:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_tile_reads_tiled_tiff_by_windows(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    objs = [("car", (11, 21, 160, 80)), ("ship", (200, 150, 290, 230))]
    png = write_voc_tree(tmp_path / "png", {"a": (300, 240, objs)}, ext=".png")
    tif = write_voc_tree(tmp_path / "tif", {"a": (300, 240, objs)}, ext=".tif")
    tifffile.imwrite(tif / "JPEGImages" / "a.tif", gradient(300, 240)[..., ::-1], photometric="rgb", tile=(32, 32))
    from dsprep.jobs.tile import plan_image
    assert plan_image(str(tif / "JPEGImages" / "a.tif")).layout is not None
    for src, out in ((png, "p"), (tif, "t")):
        run("tile", src, "--out", tmp_path / out, "--size", "100", "--gap", "10", "--ext", ".png", "-q")
    a = sorted((tmp_path / "p" / "JPEGImages").iterdir())
    assert [p.name for p in a] == [p.name for p in sorted((tmp_path / "t" / "JPEGImages").iterdir())]
    for p in a:
        assert np.array_equal(cv2.imread(str(p), -1), cv2.imread(str(tmp_path / "t" / "JPEGImages" / p.name), -1))
        xml = p.stem + ".xml"
        assert (tmp_path / "p" / "Annotations" / xml).read_bytes() == (tmp_path / "t" / "Annotations" / xml).read_bytes()


def test_tile_coco_through_the_registry(tmp_path):
    """COCO (from the formats branch) tiles through the registry into COCO, or another format with --to; crowd
    regions are left out and counted."""
    import json
    root = tmp_path / "coco"
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), gradient(200, 150))
    (root / "ann.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 150}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": [10, 20, 50, 60], "area": 3000,
                         "iscrowd": 0},
                        {"id": 8, "image_id": 1, "category_id": 3, "bbox": [120, 20, 50, 60], "area": 3000,
                         "iscrowd": 1, "segmentation": {"size": [150, 200], "counts": [0, 30000]}}],
        "categories": [{"id": 3, "name": "car"}]}))
    res = run("tile", root / "ann.json", "--out", tmp_path / "c", "--size", "100", "--gap", "0", "--json", "-q")
    assert '"crowd_skipped": 1' in res.output
    back = load_dataset(tmp_path / "c")
    assert back.format == "coco"
    rec = {r.stem: r for r in back.records}
    assert sorted(rec) == [f"a__1__{x}___{y}" for x in (0, 100) for y in (0, 50)]
    assert rec["a__1__0___0"].boxes.tolist() == [[10, 20, 60, 80]] and rec["a__1__0___0"].names == ["car"]
    assert len(rec["a__1__100___0"]) == 0  # the crowd region is not tiled
    run("tile", root / "ann.json", "--out", tmp_path / "t", "--size", "100", "--gap", "0", "--to", "voc", "-q")
    ds = load_dataset(tmp_path / "t")
    assert ds.format == "voc" and {r.stem: r for r in ds.records}["a__1__0___0"].boxes.tolist() == [[10, 20, 60, 80]]
    assert np.array_equal(cv2.imread(str(tmp_path / "t" / "JPEGImages" / "a__1__100___50.png")),
                          gradient(200, 150)[50:150, 100:200])


@pytest.mark.parametrize("target", ["yolo", "yolo-obb", "labelme", "coco", "dota"])
def test_tile_into_every_writable_format(tmp_path, target):
    """Tiles written by each format's writer read back with the same boxes (as tile --to voc gives them)."""
    voc = write_voc_tree(tmp_path / "voc", {"a": (200, 150, [("car", (11, 21, 60, 80)), ("bus", (90, 40, 140, 90))])},
                         ext=".png")
    args = ["--size", "100", "--gap", "0", "-q"]
    run("tile", voc, "--out", tmp_path / "ref", *args)
    run("tile", voc, "--out", tmp_path / target, "--to", target, *args)
    ref = {r.stem: r for r in load_dataset(tmp_path / "ref").records}
    got = {r.stem: r for r in load_dataset(tmp_path / target).records}
    assert sorted(got) == sorted(ref)
    for stem, r in ref.items():
        assert got[stem].names == r.names, stem
        assert np.allclose(got[stem].boxes, r.boxes, atol=1e-6), stem
