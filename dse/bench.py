"""Benchmark: one design-space grid on the local pool and on a local Ray instance with the same
number of workers; the wall time of each and whether their results are byte for byte equal.

    python -m dse.bench [--grid dse/grids/small.yaml] [--jobs N] [--out build/bench/dse.json]

Each run starts cold: ``--force`` (no cached point results), its own output folder
(``build/bench/dse-local``, ``build/bench/dse-ray``: synthesis is not shared) and the points'
simulator build folders removed first. The load average before and after each run is
recorded: on a shared machine the times are inflated, re-run it on a quiet one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from executor import default_jobs

from .space import load_grid

ROOT = Path(__file__).resolve().parents[1]
COMPARED = ("dse.csv", "pareto.json", "pareto.md")


def _files(out: Path) -> dict[str, bytes]:
    files = {name: (out / name).read_bytes() for name in COMPARED}
    for res in sorted((out / "points").glob("*/result.json")):
        files[str(res.relative_to(out))] = res.read_bytes()
    return files


def _clean_sim(grid) -> None:
    for p in grid.points:
        for d in (ROOT / "build" / "sim").glob(f"{p.unit_name}*"):
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink()


def _run(grid_path: Path, out: Path, executor: str, jobs: int) -> dict:
    from .__main__ import main

    grid = load_grid(grid_path)
    shutil.rmtree(out, ignore_errors=True)
    _clean_sim(grid)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        rc = main(["--grid", str(grid_path), "--out", str(out), "--executor", executor,
                   "--jobs", str(jobs), "--force"])
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"dse.bench: the {executor} run failed (exit {rc}): "
                         f"{log.getvalue().strip().splitlines()[-1:]}")
    return {"executor": executor, "jobs": jobs, "wall_s": round(wall, 2),
            "loadavg_before": [round(x, 2) for x in load0],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dse.bench", description=__doc__.splitlines()[0])
    p.add_argument("--grid", type=Path, default=ROOT / "dse" / "grids" / "small.yaml")
    p.add_argument("--jobs", type=int, default=None, help="workers of both (default: cores)")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "dse.json")
    args = p.parse_args(argv)
    jobs = args.jobs or default_jobs()
    grid = load_grid(args.grid)          # a bad grid: one line before anything runs
    base = args.out.parent
    runs = [_run(args.grid, base / f"dse-{kind}", kind, jobs) for kind in ("local", "ray")]
    local, ray = (_files(base / f"dse-{kind}") for kind in ("local", "ray"))
    differ = sorted(k for k in set(local) | set(ray) if local.get(k) != ray.get(k))
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         capture_output=True, text=True).stdout.strip()
    import ray as _ray
    result = {"grid": str(args.grid), "points": len(grid.points), "jobs": jobs,
              "cores": default_jobs(), "python": platform.python_version(),
              "ray": _ray.__version__, "git": rev, "runs": runs,
              "ray_over_local": round(runs[1]["wall_s"] / runs[0]["wall_s"], 3),
              "files_compared": len(local), "identical": not differ, "differ": differ,
              "note": "wall times include the executor's start (Ray: a local instance)"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, args.out)
    print(json.dumps(result, indent=1))
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
