"""Ctrl-C or SIGTERM during a run: it ends within 5 s with one line, leaves no worker and no partial output, and the
same command then runs again successfully.  Real processes, real signals."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import gradient, write_dota_tree

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc: Linux only")


def _marked_processes(mark: str):
    """PIDs of live processes whose environment carries ``mark`` (the run and every process it started)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if mark.encode() in env and state != "Z":
            found.append(int(pid))
    return found


def _start(args, cwd, mark):
    env = dict(os.environ, DSPREP_TEST_MARK=mark, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen([sys.executable, "-m", "dsprep", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _interrupt_when(proc, ready, how):
    deadline = time.monotonic() + 60
    while not ready():
        assert proc.poll() is None, f"finished before it could be interrupted: {proc.communicate()}"
        assert time.monotonic() < deadline, "never got going"
        time.sleep(0.05)
    if how == "ctrl-c":  # a terminal sends SIGINT to the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=30)
    return time.monotonic() - t0, out, err


def _interrupted_while_importing(err: str) -> bool:
    """A traceback of a KeyboardInterrupt whose frames in dsprep's own files are all module-level code (imports
    run before the entry point's first line), never inside one of dsprep's functions."""
    package = str(Path(__file__).resolve().parents[1] / "dsprep")
    frames = re.findall(r'File "([^"]+)", line \d+, in (\S+)', err)
    ours = [name for path, name in frames if path.startswith(package)]
    return err.rstrip().endswith("KeyboardInterrupt") and all(name == "<module>" for name in ours)


def _no_survivors(mark):
    deadline = time.monotonic() + 5
    while _marked_processes(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _marked_processes(mark) == []


@pytest.fixture(scope="module")
def big_dota(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupt") / "dota"
    items = {f"P{k:02d}": (1800, 1600, "".join(f"{x} {y} {x + 40} {y} {x + 40} {y + 30} {x} {y + 30} car 0\n"
                                                for x in range(20, 1700, 150) for y in range(20, 1500, 150)))
             for k in range(10)}
    return write_dota_tree(root, items)


@pytest.mark.parametrize("how, workers", [("ctrl-c", "2"), ("sigterm", "2"), ("ctrl-c", "1")])
def test_tile_dota_interrupted_leaves_nothing_and_reruns(big_dota, tmp_path, how, workers):
    out = tmp_path / "tiles"
    args = ["tile-dota", big_dota, "--out", out, "--size", "256", "--gap", "0", "--workers", workers]
    mark = uuid.uuid4().hex
    proc = _start(args, tmp_path, mark)
    images = out / "images"
    took, _, err = _interrupt_when(proc, lambda: images.is_dir() and len(os.listdir(images)) >= 6, how)
    assert took < 5, f"took {took:.1f} s to stop"
    assert proc.returncode == (130 if how == "ctrl-c" else 143), err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted by ") and "Traceback" not in err, err
    assert _no_survivors(mark), "a worker process outlived the run"
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))[:10]
    rerun = _start(args + ["--quiet"], tmp_path, uuid.uuid4().hex)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert len(os.listdir(out / "images")) == 10 * 8 * 7  # 8 columns (the last moved back to the border), 7 rows


def test_interrupts_at_any_moment_of_a_run_give_one_line(big_dota, tmp_path):
    """Signals sent from the first instant on (Python still importing, the fork server starting, workers being
    forked, tasks half-sent): every run stops within 5 s with exactly one line and no traceback from any of its
    processes, leaves no process and no output.  (Before: a traceback from the fork server or a worker reading a torn
    task, and once a run that never exited, its pool's manager thread waiting for a lock the interrupt had leaked.)"""
    out = tmp_path / "tiles"
    args = ["tile-dota", big_dota, "--out", out, "--size", "256", "--gap", "0", "--workers", "2", "--quiet"]
    delays = [0.0, 0.03, 0.06, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.8]
    for k, delay in enumerate(delays):
        mark = uuid.uuid4().hex
        proc = _start(args, tmp_path, mark)
        time.sleep(delay)
        how = ("ctrl-c", "sigterm")[k % 2]
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
        lines = [line for line in err.splitlines() if line.strip()]
        assert took < 5, f"{how} after {delay} s: took {took:.1f} s to stop"
        if proc.returncode < 0:
            # the signal landed while Python was still starting the program, before dsprep's entry point could
            # install its handlers: Python's default action (SIGTERM silently, SIGINT with a KeyboardInterrupt
            # raised in start-up or module-level import code).  How long that takes is the machine's business, so
            # no delay is assumed; that no function of dsprep's was running yet, is ours.
            assert proc.returncode in (-signal.SIGINT, -signal.SIGTERM), (delay, err)
            assert not err or _interrupted_while_importing(err), (delay, err)
        else:
            assert "Traceback" not in err and len(lines) == 1, f"{how} after {delay} s: {err}"
        if proc.returncode < 0:
            pass
        elif proc.returncode == 0:  # finished before the signal landed
            assert lines[0].startswith("tile-dota: ")
            shutil.rmtree(out)
        else:
            assert proc.returncode == (130 if how == "ctrl-c" else 143), (delay, err)
            assert lines[0].startswith("interrupted by "), err
        assert _no_survivors(mark), f"{how} after {delay} s: a process outlived the run"
        assert not out.exists(), f"{how} after {delay} s: {sorted(p.name for p in out.rglob('*'))[:10]}"


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_signal_after_the_summary_line_changes_nothing(big_dota, tmp_path, how):
    """A signal that lands once the run has printed its summary (its output complete) neither removes the output
    nor adds a second line, nor kills the exiting process: exit 0, the summary is the one line.  (Before: a second
    line "interrupted ...: nothing half-done was left" beside the complete output, or death by the signal.)  The
    signal is sent when the summary has been read, so this holds however fast the machine is."""
    out = tmp_path / "tiles"
    args = ["tile-dota", big_dota, "--out", out, "--size", "256", "--gap", "0", "--workers", "2", "--quiet"]
    for _ in range(3):
        mark = uuid.uuid4().hex
        proc = _start(args, tmp_path, mark)
        first = proc.stderr.readline()
        assert first.startswith("tile-dota: "), first + proc.communicate()[1]
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
        assert proc.returncode == 0 and not rest.strip(), (proc.returncode, first + rest)
        assert len(os.listdir(out / "images")) == 10 * 8 * 7
        assert _no_survivors(mark)
        shutil.rmtree(out)


def test_interrupt_keeps_a_pre_existing_output_folder_as_it_was(big_dota, tmp_path):
    out = tmp_path / "tiles"
    (out / "images").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    args = ["tile-dota", big_dota, "--out", out, "--size", "256", "--gap", "0", "--workers", "2", "--overwrite"]
    mark = uuid.uuid4().hex
    proc = _start(args, tmp_path, mark)
    _interrupt_when(proc, lambda: len(os.listdir(out / "images")) >= 6, "ctrl-c")
    assert _no_survivors(mark)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["images", "notes.txt"]


def _synth_inputs(root: Path):
    bgs, objs = root / "bgs", root / "objs"
    bgs.mkdir(parents=True)
    for k in range(3):
        cv2.imwrite(str(bgs / f"b{k}.png"), gradient(640 + 32 * k, 480))
    for cls in ("ball", "box"):
        (objs / cls).mkdir(parents=True)
        for k in range(2):
            sprite = np.zeros((40 + 8 * k, 50, 4), np.uint8)
            sprite[..., :3] = gradient(50, 40 + 8 * k)
            sprite[4:-4, 4:-4, 3] = 255
            cv2.imwrite(str(objs / cls / f"{k}.png"), sprite)
    return bgs, objs


def test_synth_interrupted_then_appended_equals_one_run(tmp_path):
    bgs, objs = _synth_inputs(tmp_path / "in")
    common = ["--backgrounds", bgs, "--objects", objs, "--seed", "5", "--canvas", "1024x768", "--per-image", "8",
              "--masks", "--quiet"]
    whole = tmp_path / "whole"
    ref = _start(["synth", "--out", whole, "-n", "60", *common], tmp_path, uuid.uuid4().hex)
    assert ref.wait(timeout=300) == 0
    out = tmp_path / "parts"
    mark = uuid.uuid4().hex
    proc = _start(["synth", "--out", out, "-n", "60", "--workers", "2", *common], tmp_path, mark)
    images = out / "JPEGImages"
    took, _, err = _interrupt_when(proc, lambda: images.is_dir() and len(os.listdir(images)) >= 12, "ctrl-c")
    assert took < 5 and proc.returncode == 130 and "Traceback" not in err, err
    assert _no_survivors(mark)
    kept = len(list(images.glob("*.jpg")))
    assert 0 < kept < 60 and f"kept the {kept} finished images" in err and f"--append -n {60 - kept}" in err
    assert (out / "ImageSets" / "Main" / "train.txt").read_text().split() == \
        [f"synth_{i:06d}" for i in range(kept)]
    more = _start(["synth", "--out", out, "-n", str(60 - kept), "--append", "--workers", "2", *common], tmp_path,
                  uuid.uuid4().hex)
    assert more.wait(timeout=300) == 0
    ours = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    theirs = {str(p.relative_to(whole)): p.read_bytes() for p in whole.rglob("*") if p.is_file()}
    assert ours.keys() == theirs.keys() and all(ours[k] == theirs[k] for k in ours)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_on_a_dask_cluster_stops_its_workers(big_dota, tmp_path, how):
    pytest.importorskip("distributed")
    out = tmp_path / "tiles"
    args = ["tile-dota", big_dota, "--out", out, "--size", "256", "--gap", "0", "--scheduler", "local"]
    mark = uuid.uuid4().hex
    proc = _start(args, tmp_path, mark)
    images = out / "images"
    took, _, err = _interrupt_when(proc, lambda: images.is_dir() and len(os.listdir(images)) >= 6, how)
    assert took < 5, f"took {took:.1f} s to stop"
    assert proc.returncode == (130 if how == "ctrl-c" else 143), err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted by "), err
    assert _no_survivors(mark), "a Dask worker or nanny outlived the run"
    assert not out.exists()
