"""Windowed tiling of TIFFs (issue 12): tiles and labels identical to the in-memory path, georeferencing kept, a TIFF
larger than the memory cap tiled within it, gray kept one channel, clear errors for images that do not fit."""
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from dsprep.cli import main

tifffile = pytest.importorskip("tifffile")

ROOT = Path(__file__).resolve().parents[1]


def _scene(w, h, seed=0):
    """A textured BGR image with edges everywhere (bicubic resizing sees every tap)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = cv2.resize(small, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)[:h, :w]
    return np.ascontiguousarray(img ^ rng.integers(0, 40, img.shape, dtype=np.uint8))


def _labels(w, h, n=60, seed=1):
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        cx, cy = rng.uniform(-20, w + 20), rng.uniform(-20, h + 20)
        a, r = rng.uniform(0, np.pi), rng.uniform(5, 90)
        pts = [(cx + r * np.cos(a + k * np.pi / 2) * (1 + k % 2), cy + r * np.sin(a + k * np.pi / 2)) for k in range(4)]
        lines.append(" ".join(f"{x:.1f} {y:.1f}" for x, y in pts) + f" {'car' if i % 2 else 'ship'} {i % 3 == 0:d}")
    return "".join(line + "\n" for line in lines)


def _dota(root: Path, img: np.ndarray, labels: str, ext: str, stem="S1", **tiff):
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    (root / "labelTxt" / f"{stem}.txt").write_text(labels)
    path = root / "images" / f"{stem}{ext}"
    if ext == ".tif":
        data = img if img.ndim == 2 else img[..., ::-1]
        if tiff.pop("planar", False):
            data = np.moveaxis(data, 2, 0).copy()
            tiff["planarconfig"] = "separate"
        tifffile.imwrite(path, data, photometric="minisblack" if img.ndim == 2 else "rgb", **tiff)
    else:
        cv2.imwrite(str(path), img)
    return path


def _tile(src, out, *args):
    res = CliRunner().invoke(main, ["tile-dota", str(src), "--out", str(out), "--quiet", *args],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def _same_output(a: Path, b: Path):
    names = sorted(p.name for p in (a / "images").iterdir())
    assert names == sorted(p.name for p in (b / "images").iterdir())
    assert names
    for n in names:
        x = cv2.imread(str(a / "images" / n), cv2.IMREAD_UNCHANGED)
        y = cv2.imread(str(b / "images" / n), cv2.IMREAD_UNCHANGED)
        assert x.shape == y.shape and np.array_equal(x, y), n
    for p in (a / "labelTxt").iterdir():
        assert (b / "labelTxt" / p.name).read_bytes() == p.read_bytes(), p.name


LAYOUTS = {
    "tiled-zlib": dict(tile=(64, 64), compression="zlib"),
    "striped-lzw": dict(rowsperstrip=16, compression="lzw"),
    "planar": dict(rowsperstrip=40, compression="zlib", planar=True),
    "bigtiff": dict(tile=(32, 48), bigtiff=True),
    "jpeg": dict(tile=(64, 64), compression="jpeg"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("rate", ["1", "0.5", "2"])
def test_windowed_tiff_equals_in_memory_path(tmp_path, monkeypatch, layout, rate):
    # a small budget forces many band jobs, each reading a rectangle that starts inside the image
    monkeypatch.setattr("dsprep.jobs.tile.REGION_BUDGET", 200_000)
    img = _scene(517, 389)
    labels = _labels(517, 389)
    tif = _dota(tmp_path / "tif", img, labels, ".tif", **LAYOUTS[layout])
    from dsprep.jobs.tile import plan_image
    assert plan_image(str(tif)).layout is not None  # really read by windows
    # the in-memory path on the very pixels the TIFF stores (JPEG-compressed TIFFs are lossy)
    _dota(tmp_path / "png", cv2.imread(str(tif), cv2.IMREAD_COLOR), labels, ".png")
    args = ["--size", "128", "--gap", "30", "--rate", rate]
    _same_output(_tile(tmp_path / "png", tmp_path / "a", *args), _tile(tmp_path / "tif", tmp_path / "b", *args))


def test_windowed_gray_and_rgba(tmp_path):
    gray = _scene(300, 200)[..., 1].copy()
    _dota(tmp_path / "g", gray, _labels(300, 200), ".tif", tile=(32, 32))
    _dota(tmp_path / "gp", gray, _labels(300, 200), ".png")
    _same_output(_tile(tmp_path / "gp", tmp_path / "a", "--size", "100", "--gap", "10"),
                 _tile(tmp_path / "g", tmp_path / "b", "--size", "100", "--gap", "10"))
    # gray tiles are written as BGR, like the devkit's cv2.imread(color) + imwrite
    tile = cv2.imread(str(next((tmp_path / "b" / "images").iterdir())), cv2.IMREAD_UNCHANGED)
    assert tile.ndim == 3 and tile.shape[2] == 3
    rgba = np.dstack([_scene(300, 200)[..., ::-1], np.full((200, 300), 7, np.uint8)])
    (tmp_path / "c" / "images").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "c" / "images" / "A.tif", rgba, photometric="rgb", tile=(32, 32), extrasamples=[2])
    (tmp_path / "d" / "images").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "d" / "images" / "A.png"), rgba[..., 2::-1])
    for d in ("c", "d"):
        _tile(tmp_path / d, tmp_path / f"{d}_out", "--size", "100", "--gap", "10")
    a = sorted((tmp_path / "c_out" / "images").iterdir())
    b = sorted((tmp_path / "d_out" / "images").iterdir())
    assert [p.name for p in a] == [p.name for p in b]
    for x, y in zip(a, b):
        assert np.array_equal(cv2.imread(str(x), -1), cv2.imread(str(y), -1))


def test_rate_not_power_of_two_decodes_whole(tmp_path):
    img = _scene(300, 260)
    _dota(tmp_path / "tif", img, _labels(300, 260), ".tif", tile=(32, 32))
    _dota(tmp_path / "png", img, _labels(300, 260), ".png")
    args = ["--size", "100", "--gap", "20", "--rate", "0.7"]
    _same_output(_tile(tmp_path / "png", tmp_path / "a", *args), _tile(tmp_path / "tif", tmp_path / "b", *args))


def test_geotiff_tiles_get_world_files(tmp_path):
    img = _scene(400, 300)
    root = tmp_path / "geo"
    (root / "images").mkdir(parents=True)
    # 0.5 m pixels, top-left corner at (500000, 4200000), north up (PixelIsArea)
    geokeys = (1, 1, 0, 2, 1024, 0, 1, 1, 1025, 0, 1, 1)
    tifffile.imwrite(root / "images" / "G.tif", img[..., ::-1], photometric="rgb", tile=(64, 64),
                     extratags=[(33550, "d", 3, (0.5, 0.5, 0.0)), (33922, "d", 6, (0, 0, 0, 500000.0, 4200000.0, 0)),
                                (34735, "H", len(geokeys), geokeys)])
    out = _tile(root, tmp_path / "out", "--size", "128", "--gap", "28", "--rate", "1", "--rate", "0.5")
    world = (out / "images" / "G__1__100___0.pgw").read_text().split()
    assert [float(v) for v in world] == [0.5, 0.0, 0.0, -0.5, 500000.0 + 0.5 * 100.5, 4200000.0 - 0.25]
    # at rate 0.5 a tile pixel covers 2 source pixels
    world = (out / "images" / "G__0.5__72___0.pgw").read_text().split()
    assert [float(v) for v in world] == [1.0, 0.0, 0.0, -1.0, 500000.0 + 72 + 0.5, 4200000.0 - 0.5]
    n_png = len(list((out / "images").glob("*.png")))
    assert n_png == len(list((out / "images").glob("*.pgw"))) > 0


def test_world_file_for_pixel_is_point_and_transformation():
    from dsprep.rasters import GeoTransform, world_file_ext
    g = GeoTransform(2.0, 0.0, 100.0, 0.0, -2.0, 50.0)
    assert g.world_file(10, 4).split() == ["2.0", "0.0", "0.0", "-2.0", "121.0", "41.0"]
    assert [world_file_ext(e) for e in (".png", ".jpg", ".tif", ".bmp")] == [".pgw", ".jgw", ".tfw", ".bpw"]


BIG = 12288  # 12288 x 12288 x 3 = 453 MB decoded


def _big_tiff(path: Path):
    """A BIG x BIG RGB tiled TIFF made of 5 pre-compressed 256 x 256 tiles (written in a fraction of a second);
    tile (ty, tx) is variant (3*ty + 2*tx) % 5."""
    variants = []
    for v in range(5):
        rng = np.random.default_rng(v)
        block = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        variants.append(np.kron(block, np.ones((16, 16, 1), np.uint8)))
    enc = [zlib.compress(t.tobytes(), 6) for t in variants]
    n = BIG // 256
    tifffile.imwrite(path, (enc[(3 * ty + 2 * tx) % 5] for ty in range(n) for tx in range(n)), shape=(BIG, BIG, 3),
                     dtype=np.uint8, tile=(256, 256), compression="zlib", photometric="rgb")
    return variants


def _expected(variants, left, up, w, h):
    n0y, n0x = up // 256, left // 256
    rows = []
    for ty in range(n0y, (up + h - 1) // 256 + 1):
        rows.append(np.concatenate([variants[(3 * ty + 2 * tx) % 5] for tx in range(n0x, (left + w - 1) // 256 + 1)],
                                   axis=1))
    block = np.concatenate(rows, axis=0)
    return block[up - n0y * 256:up - n0y * 256 + h, left - n0x * 256:left - n0x * 256 + w, ::-1]


CAP = 300 << 20


def test_tiff_larger_than_memory_cap(tmp_path):
    """tile-dota on a 453 MB (decoded) TIFF in a process whose peak RSS stays under a 300 MB cap; every tile equals
    the pixels the image holds; and the same image cut small, tiled by the in-memory path, gives the same tiles."""
    root = tmp_path / "big"
    (root / "images").mkdir(parents=True)
    variants = _big_tiff(root / "images" / "B.tif")
    assert BIG * BIG * 3 > CAP
    out = tmp_path / "out"
    code = ("import sys\n"
            "from dsprep.cli import main\n"
            "try:\n"
            f"    main(['tile-dota', {str(root)!r}, '--out', {str(out)!r}, '-q', '--json'])\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            # VmHWM: this process's own peak (ru_maxrss would carry the peak of the pytest process it was forked from)
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
            "print(int(hwm) * 1024, file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    peak = int(res.stderr.strip().splitlines()[-1])
    assert peak < CAP, f"peak RSS {peak / 1e6:.0f} MB"
    summary = json.loads(res.stdout)
    from dsprep.ops.tiling import tile_grid
    grid = tile_grid(BIG, BIG, 1024, 200)
    assert summary["counts"]["tiles"] == len(grid)
    for left, up in grid[::7] + grid[-3:]:
        tile = cv2.imread(str(out / "images" / f"B__1__{left}___{up}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(tile, _expected(variants, left, up, 1024, 1024)), (left, up)
    # a smaller copy (its top-left 3000 x 2500) through the in-memory path (PNG) and the windowed path (TIFF)
    small = _expected(variants, 0, 0, 3000, 2500)
    _dota(tmp_path / "sp", small, "", ".png", stem="B")
    _dota(tmp_path / "st", small, "", ".tif", stem="B", tile=(256, 256), compression="zlib")
    a = _tile(tmp_path / "sp", tmp_path / "sa")
    b = _tile(tmp_path / "st", tmp_path / "sb")
    _same_output(a, b)
    for p in (a / "images").iterdir():  # and the small copy's tiles are the big image's tiles at the same place
        left, up = (int(v) for v in p.stem.split("__1__")[1].split("___"))
        if left + 1024 <= 2000 and up + 1024 <= 1500:
            assert np.array_equal(cv2.imread(str(p), -1), cv2.imread(str(out / "images" / p.name), -1))


# ---- whole-image formats -----------------------------------------------------------------------------------------------

def test_gray_png_decoded_as_one_channel(tmp_path):
    from dsprep.images import needed_bytes, probe, read_image
    gray = _scene(120, 80)[..., 0].copy()
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    img = read_image(tmp_path / "g.png", "keep_gray")
    assert img.ndim == 2 and np.array_equal(img, gray)
    assert needed_bytes(probe(tmp_path / "g.png"), "keep_gray") == 120 * 80
    cv2.imwrite(str(tmp_path / "c.png"), _scene(120, 80))
    assert read_image(tmp_path / "c.png", "keep_gray").shape == (80, 120, 3)


def test_gray_png_tiles_like_the_devkit(tmp_path):
    gray = _scene(300, 200)[..., 2].copy()
    _dota(tmp_path / "g", gray, _labels(300, 200), ".png")
    out = _tile(tmp_path / "g", tmp_path / "o", "--size", "128", "--gap", "28")
    devkit = cv2.imread(str(tmp_path / "g" / "images" / "S1.png"))  # the devkit's cv2.imread: 3 equal channels
    for p in (out / "images").iterdir():
        left, up = (int(v) for v in p.stem.split("__1__")[1].split("___"))
        assert np.array_equal(cv2.imread(str(p), -1), devkit[up:up + 128, left:left + 128])


def test_image_too_large_for_memory_is_a_clear_error(tmp_path, monkeypatch):
    img = _scene(200, 150)
    _dota(tmp_path / "p", img, _labels(200, 150), ".png")
    monkeypatch.setattr("dsprep.images.available_memory", lambda: 10_000)
    res = CliRunner().invoke(main, ["tile-dota", str(tmp_path / "p"), "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 1
    line = res.output.strip().splitlines()
    assert len(line) == 1 and "S1.png" in line[0]
    assert "needs 90 KB to tile and 10 KB are available" in line[0]
    assert "tiled TIFF" in line[0] and "decoded whole" in line[0]
    # a TIFF without the window reader: says what to install
    _dota(tmp_path / "t", img, _labels(200, 150), ".tif", tile=(32, 32))
    import dsprep.rasters
    monkeypatch.setattr(dsprep.rasters, "tiff_layout", lambda path: (None, "no tifffile"))
    res = CliRunner().invoke(main, ["tile-dota", str(tmp_path / "t"), "--out", str(tmp_path / "o2"), "-q"])
    assert res.exit_code == 1 and 'pip install "dsprep[tiff]"' in res.output, res.output


def test_whole_decode_refused_under_address_space_limit(tmp_path):
    """A PNG whose decode needs more than the process may allocate: one clear line, no traceback."""
    root = tmp_path / "p"
    _dota(root, np.zeros((4000, 4000, 3), np.uint8), "", ".png")
    # the limit is set once everything is imported: 40 MB above what the process maps, the PNG needs 48 MB
    code = ("import os, resource\n"
            "from dsprep.cli import main\n"
            "import dsprep.jobs.tile, dsprep.rasters, dsprep.dota, dsprep.outputs, dsprep.report\n"
            "used = int(open('/proc/self/statm').read().split()[0]) * os.sysconf('SC_PAGE_SIZE')\n"
            "resource.setrlimit(resource.RLIMIT_AS, (used + (40 << 20), resource.RLIM_INFINITY))\n"
            f"main(['tile-dota', {str(root)!r}, '--out', {str(tmp_path / 'o')!r}, '-q'])\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and "needs" in res.stderr and "tiled TIFF" in res.stderr, res.stderr
