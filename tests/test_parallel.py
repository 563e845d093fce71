"""The executor layer: local processes, a real Dask cluster on loopback, failures."""
import subprocess
import sys
import time

import numpy as np
import pytest

from dsprep.hdf5 import DetectionH5
from dsprep.parallel import WorkerLost, executor, run

from helpers import die_on, run_cli as cli, slow, start_dask, write_voc_tree
from test_synth import disc_rgba

import cv2

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    addr, procs = start_dask(tmp_path_factory.mktemp("dask"), workers=2)
    try:
        yield addr
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def same_tree(a, b):
    fa = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    fb = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert fa == fb and fa
    for f in fa:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_tile_dota_on_cluster_matches_single_process(cluster, shared, tmp_path):
    cli("tile-dota", shared / "dota_example", "--out", tmp_path / "one", "--size", "512")
    cli("tile-dota", shared / "dota_example", "--out", tmp_path / "dask", "--size", "512", "--scheduler", cluster)
    same_tree(tmp_path / "one", tmp_path / "dask")


def _synth_inputs(root):
    (root / "objects" / "disc").mkdir(parents=True)
    (root / "bg").mkdir()
    cv2.imwrite(str(root / "objects" / "disc" / "d.png"), disc_rgba(31, (0, 0, 255)))
    cv2.imwrite(str(root / "bg" / "g.png"), np.full((200, 300, 3), 128, np.uint8))


def test_synth_on_cluster_matches_single_process(cluster, tmp_path):
    _synth_inputs(tmp_path)
    args = ["synth", "--backgrounds", tmp_path / "bg", "--objects", tmp_path / "objects", "-n", "10", "--seed", "4"]
    cli(*args, "--out", tmp_path / "one")
    cli(*args, "--out", tmp_path / "dask", "--scheduler", cluster)
    same_tree(tmp_path / "one", tmp_path / "dask")


@pytest.mark.parametrize("extra", [[], ["--shards", "3"]])
def test_voc_to_h5_on_cluster_matches_single_process(cluster, tmp_path, extra):
    voc = write_voc_tree(tmp_path / "voc", {f"i{k}": (60 + k, 40, [("cat", (1, 1, 20, 20))]) for k in range(7)})
    cli("voc-to-h5", voc, tmp_path / "one.h5", "--size", "64x64")
    cli("voc-to-h5", voc, tmp_path / "dask.h5", "--size", "64x64", "--scheduler", cluster, *extra)
    a, b = DetectionH5(tmp_path / "one.h5"), DetectionH5(tmp_path / "dask.h5")
    assert len(a) == len(b) == 7
    for i in range(7):
        for k in ("image", "boxes", "labels", "difficult", "transform", "orig_size"):
            np.testing.assert_array_equal(a[i][k], b[i][k])


def test_task_error_on_cluster_names_the_image(cluster, tmp_path):
    voc = write_voc_tree(tmp_path / "voc", {"a": (40, 30, []), "b": (40, 30, [])})
    (voc / "JPEGImages" / "b.jpg").write_bytes(b"junk")
    res = cli("crop", voc, "--out", tmp_path / "c", "--scheduler", cluster, "--backgrounds", tmp_path / "bg",
              ok=False)
    assert res.exit_code == 1 and "b.jpg: not a readable image" in res.output
    res = cli("crop", voc, "--out", tmp_path / "c2", "--scheduler", cluster, "--backgrounds", tmp_path / "bg2",
              "--on-error", "skip")
    assert "1 of 2 inputs skipped (1 not a readable image)" in res.output and (tmp_path / "bg2" / "a.png").exists()


def test_local_worker_death_is_isolated():
    items = ["a", "b", "boom", "c", "bad", "d"]
    with executor(2) as backend:
        out = list(run(backend, die_on, items, isolate_failures=True))
    assert [i for i, _, _ in out] == items
    assert [r for _, r, e in out if e is None] == ["A", "B", "C", "D"]
    errors = {i: e for i, _, e in out if e is not None}
    assert isinstance(errors["boom"], WorkerLost) and "boom: the worker process died" in str(errors["boom"])
    assert "bad: not a readable image" in str(errors["bad"])
    with executor(2) as backend:
        with pytest.raises(WorkerLost, match="a worker process died"):
            list(run(backend, die_on, items, isolate_failures=False))


def test_lost_scheduler_ends_the_run(tmp_path):
    addr, procs = start_dask(tmp_path, workers=1)
    sched = procs[0]
    import dsprep.parallel as par
    old = par.SCHEDULER_GRACE
    par.SCHEDULER_GRACE = 3.0
    try:
        t0 = time.time()
        with pytest.raises(WorkerLost, match="lost the Dask scheduler"):
            with executor(scheduler=addr) as backend:
                for k, _ in enumerate(run(backend, slow, [str(i) for i in range(200)])):
                    if k == 2:
                        sched.kill()
        assert time.time() - t0 < 60
    finally:
        par.SCHEDULER_GRACE = old
        for p in procs:
            p.kill()
            p.wait()


def test_without_dask_the_option_explains(tmp_path):
    code = ("import sys; sys.modules['distributed'] = None; sys.modules['dask'] = None\n"
            "from dsprep.cli import main\n"
            f"main(['color', 'gray-world', {str(tmp_path)!r}, '--in-place', '--scheduler', 'tcp://127.0.0.1:1'])")
    (tmp_path / "x.png").write_bytes(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1 and 'pip install "dsprep[dask]"' in out.stderr and "Traceback" not in out.stderr


def test_workers_auto_and_bad_values(tmp_path):
    (tmp_path / "x.png").write_bytes(cv2.imencode(".png", np.full((4, 4, 3), 9, np.uint8))[1].tobytes())
    cli("color", "gray-world", tmp_path / "x.png", "--out", tmp_path / "o", "--workers", "auto")
    res = cli("color", "gray-world", tmp_path / "x.png", "--out", tmp_path / "o2", "--workers", "0", ok=False)
    assert res.exit_code == 2 and "Invalid value for '--workers' / '-j': must be at least 1, not 0" in res.output


def _geotiff_dota(root):
    tifffile = pytest.importorskip("tifffile")
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    rng = np.random.default_rng(3)
    img = cv2.resize(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8), (900, 600), interpolation=cv2.INTER_NEAREST)
    tifffile.imwrite(root / "images" / "G.tif", img, photometric="rgb", tile=(64, 64),
                     extratags=[(33550, "d", 3, (0.5, 0.5, 0.0)), (33922, "d", 6, (0, 0, 0, 1000.0, 2000.0, 0))])
    lines = [f"{x} {y} {x + 50} {y} {x + 50} {y + 30} {x} {y + 30} car 0\n" for x in range(0, 900, 70)
             for y in range(0, 600, 90)]
    (root / "labelTxt" / "G.txt").write_text("".join(lines))
    return root


def test_windowed_tiling_on_cluster_and_workers_matches_single_process(cluster, tmp_path, monkeypatch):
    """A tiled GeoTIFF shared out by bands of windows: the same files (tiles, labels, world files) from one process,
    two local workers and a two-worker Dask cluster."""
    src = _geotiff_dota(tmp_path / "src")
    monkeypatch.setattr("dsprep.jobs.tile.REGION_BUDGET", 400_000)  # several band jobs per row
    args = ["tile-dota", src, "--size", "200", "--gap", "40", "--rate", "1", "--rate", "0.5"]
    cli(*args, "--out", tmp_path / "one")
    cli(*args, "--out", tmp_path / "two", "-j", "2")
    cli(*args, "--out", tmp_path / "dask", "--scheduler", cluster)
    assert len(list((tmp_path / "one" / "images").glob("*.pgw"))) > 10
    same_tree(tmp_path / "one", tmp_path / "two")
    same_tree(tmp_path / "one", tmp_path / "dask")


def test_tile_and_merge_on_cluster_match_single_process(cluster, shared, tmp_path):
    cli("tile", shared / "dota_example", "--out", tmp_path / "one", "--size", "512", "--ext", ".png")
    cli("tile", shared / "dota_example", "--out", tmp_path / "dask", "--size", "512", "--ext", ".png",
        "--scheduler", cluster)
    same_tree(tmp_path / "one", tmp_path / "dask")
    dets = tmp_path / "dets"
    dets.mkdir()
    rng = np.random.default_rng(0)
    for cls in ("car", "ship"):
        lines = []
        for f in sorted((tmp_path / "one" / "labelTxt").iterdir()):
            for line in f.read_text().splitlines():
                v = line.split()
                if v[8] == cls:
                    lines.append(f"{f.stem} {rng.random():.6f} {' '.join(v[:8])}\n")
        (dets / f"Task1_{cls}.txt").write_text("".join(lines))
    cli("merge-dota", dets, "--out", tmp_path / "m1", "--nms-thresh", "0.5")
    cli("merge-dota", dets, "--out", tmp_path / "m2", "--nms-thresh", "0.5", "--scheduler", cluster)
    same_tree(tmp_path / "m1", tmp_path / "m2")


def test_a_signal_inside_a_deferred_block_is_raised_when_it_ends():
    """The interrupt handler never raises inside a deferred block (where locks are held), and never loses the
    signal: it is raised as Interrupted once the outermost block ends."""
    import os
    import signal
    from dsprep import signals
    from dsprep.core import Interrupted
    previous = signals.install()
    try:
        reached = []
        with pytest.raises(Interrupted) as info:
            with signals.deferred():
                with signals.deferred():
                    os.kill(os.getpid(), signal.SIGTERM)
                    for _ in range(1000):  # the handler runs between bytecodes: give it many chances
                        reached.append(1)
                reached.append(2)  # the inner block ending does not raise either
            reached.append(3)
        assert info.value.signum == signal.SIGTERM and reached.count(1) == 1000 and 2 in reached and 3 not in reached
        with pytest.raises(Interrupted):  # outside any block it is raised at once
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
    finally:
        signals.restore(previous)
