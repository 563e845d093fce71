"""Scaling of the executor layer, measured in one run: images/s with 1 and 2 local workers and on a 2-worker Dask
cluster on loopback (started here with Dask's own `dask scheduler` / `dask worker` commands), same input.

Commands timed (CPU-bound): `dsprep synth` (1024x512 canvases, 16 objects), `dsprep color reference-white`
(1600x1200 JPEGs) and `dsprep tile-dota` (N/6 aerial PNG mosaics of 2,500-3,000 px made from the real DOTA images in
../shared/data, 16 tiles each).  Needs the dask extra (pip install "dsprep[dask]").
Usage: python benchmarks/bench_scale.py [N] [COMMAND ...]   (default 300; commands: synth color tile-dota)
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_synth import make_inputs  # noqa: E402
from bench_tile_dota import make_inputs as make_aerial  # noqa: E402



def start_cluster(cwd: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"tcp://127.0.0.1:{port}"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], **quiet),
             subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr, "--nworkers", "2",
                               "--nthreads", "1", "--no-dashboard"], **quiet)]
    from distributed import Client
    deadline = time.time() + 90
    while True:
        try:
            with Client(addr, timeout="5s") as c:
                c.wait_for_workers(2, timeout=60)
            return addr, procs
        except (OSError, TimeoutError):
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def timed(args, n, env=None):
    """The command in a fresh process (the same start-up cost for every configuration)."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dsprep"] + [str(a) for a in args] + ["--quiet"], check=True,
                   env=dict(os.environ, **(env or {})), stderr=subprocess.DEVNULL)
    return n / (time.perf_counter() - t)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    only = set(sys.argv[2:]) or {"synth", "color", "tile-dota"}
    print(f"load before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_inputs(root)
        n_aerial = max(2, n // 6)
        make_aerial(root / "aerial", n_aerial)
        make_aerial(root / "aerial2", 2)
        (root / "photos").mkdir()
        rng = np.random.default_rng(0)
        base = cv2.resize(rng.integers(0, 255, (12, 16, 3)).astype(np.uint8), (1600, 1200))
        (root / "photos2").mkdir()
        for i in range(n):
            img = np.clip(base * np.array([0.6, 0.8, 1.0]) + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / "photos" / f"p{i:04d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if i < 2:
                cv2.imwrite(str(root / "photos2" / f"p{i:04d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        addr, procs = start_cluster(root)
        try:
            rows = []
            for name, make, count in (
                ("synth", lambda out, extra: ["synth", "--backgrounds", root / "bg", "--objects", root / "objects",
                                              "--out", out, "-n", n, "--canvas", "1024x512", "--per-image", "16"]
                 + extra, n),
                ("color reference-white", lambda out, extra: ["color", "reference-white", root / "photos", "--out",
                                                              out] + extra, n),
                ("tile-dota", lambda out, extra: ["tile-dota", root / "aerial" / "png", "--out", out] + extra,
                 n_aerial)):
                if name.split()[0] not in only:
                    continue
                rates = {}
                # the fixed cost F (start-up, imports, the data set read, the pool): the default run on 2 items and on
                # all of them, under the linear model t = F + items * w
                if name == "synth":
                    small = ["synth", "--backgrounds", root / "bg", "--objects", root / "objects", "-n", 2,
                             "--canvas", "1024x512", "--per-image", "16", "--workers", "1", "--out"]
                elif name == "tile-dota":
                    small = ["tile-dota", root / "aerial2" / "png", "--workers", "1", "--out"]
                else:
                    small = ["color", "reference-white", root / "photos2", "--workers", "1", "--out"]
                rates["small"] = min(2 / timed(small + [root / f"{name}-small-{k}".replace(" ", "_")], 2)
                                     for k in range(2))
                for label, extra, env in (
                        ("1 worker, 1 thread", ["--workers", "1"], {"OPENCV_FOR_THREADS_NUM": "1"}),
                        ("1 worker", ["--workers", "1"], None), ("2 workers", ["--workers", "2"], None),
                        ("dask 2 workers", ["--scheduler", addr], None)):
                    rates[label] = max(timed(make(root / f"{name}-{label}-{k}".replace(" ", "_").replace(",", ""),
                                                  extra), count, env) for k in range(2))
                rows.append((name, rates))
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=30)
    print(f"{n} images per command ({n_aerial} aerial images for tile-dota), best of 2 runs each, each run a fresh "
          f"process (start-up included); load after: {os.getloadavg()[0]:.2f}")
    print("ratios: against 1 worker whose OpenCV uses one thread (the per-worker rate), and [against the default "
          "1 worker, whose OpenCV already spreads resizes over both cores]")
    for name, r in rows:
        base, one = r["1 worker, 1 thread"], r["1 worker"]
        print(f"{name:<22} 1 worker/1 thread {base:6.1f}/s | 1 worker {one:6.1f}/s | "
              f"2 workers {r['2 workers']:6.1f}/s ({r['2 workers'] / base:.2f}x [{r['2 workers'] / one:.2f}x]) | "
              f"dask 2 workers {r['dask 2 workers']:6.1f}/s ({r['dask 2 workers'] / base:.2f}x "
              f"[{r['dask 2 workers'] / one:.2f}x])")
        count = n_aerial if name == "tile-dota" else n
        t_one, t_small = count / one, r["small"]
        per_item = (t_one - t_small) / (count - 2)
        fixed = max(0.0, t_small - 2 * per_item)
        ideal = t_one / ((t_one - fixed) / 2 + fixed)
        print(f"{'':<22} fixed cost {fixed:.2f} s of the default run's {t_one:.2f} s (from a 2-item run): two workers "
              f"can give at most {ideal:.2f}x the default run; measured {r['2 workers'] / one:.2f}x")


if __name__ == "__main__":
    main()
