"""Benchmark: seconds to run every figure sweep (points evaluated and tables written).

``python -m sysmodel.bench --out build/bench/sysmodel.json [--sweep-dir DIR] [--plot]``

The evaluation is timed from a cold start of the model's caches (hardware and models loaded,
no operator costs cached). Plotting is timed separately when ``--plot`` is given. Aim: all
sweeps under 5 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from .gpu import gemm_cost
from .hardware import load_hardware
from .sweep import FIGURES, figure_grid, load_grid, read_table, run_grid, write_atomic
from .workload import load_models, step_operators

TARGET_S = 5.0


def bench(sweep_dir: Path, plot: bool = False) -> dict:
    """Run all figure sweeps into ``sweep_dir``; return the timing record."""
    load_hardware()
    load_models()
    gemm_cost.cache_clear()
    step_operators.cache_clear()
    grids = [load_grid(figure_grid(n)) for n in FIGURES]
    per_figure, points = {}, 0
    start = time.perf_counter()
    for grid in grids:
        t0 = time.perf_counter()
        run_grid(grid, sweep_dir, jobs=1, plot=False, progress=False)
        per_figure[grid.name] = round(time.perf_counter() - t0, 4)
        points += len(grid.points)
    total = time.perf_counter() - start
    record = {"benchmark": "sysmodel figure sweeps", "figures": list(FIGURES),
              "points": points, "seconds": round(total, 4), "seconds_per_figure": per_figure,
              "target_seconds": TARGET_S, "meets_target": total < TARGET_S,
              "python": platform.python_version(), "machine": platform.machine()}
    if plot:
        from .plot import plot_table
        t0 = time.perf_counter()
        for grid in grids:
            plot_table(read_table(sweep_dir / f"{grid.name}.csv"), grid,
                       sweep_dir / f"{grid.name}.png")
        record["plot_seconds"] = round(time.perf_counter() - t0, 4)
    return record


def main(argv: list | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python -m sysmodel.bench", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("build/bench/sysmodel.json"))
    p.add_argument("--sweep-dir", type=Path, default=None,
                   help="where the tables go (default: a temporary folder)")
    p.add_argument("--plot", action="store_true", help="also time the plots")
    args = p.parse_args(argv)
    if args.sweep_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            record = bench(Path(tmp), args.plot)
    else:
        record = bench(args.sweep_dir, args.plot)
    write_atomic(args.out, (json.dumps(record, indent=2) + "\n").encode("utf-8"))
    print(f"sysmodel bench: {record['points']} points, {record['seconds']:.2f} s "
          f"(target {TARGET_S:.0f} s) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
