"""``python -m dse --grid FILE --out DIR [--executor ray] [--jobs N]``: the design-space sweep.

Writes to ``DIR``: ``dse.csv`` (one row per point), ``pareto.json`` and ``pareto.md`` (the
fronts and where the paper's MX8 sits), ``dse_area_vs_error.png``,
``dse_area_vs_throughput.png``, ``run.json`` (settings, executor, wall time) and
``points/<id>/`` (each point's cached result, synthesis and measured timing). A bad grid, an
unknown key or an unreachable cluster: one line, exit 2, nothing written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from executor import ExecutorError, add_executor_args, executor_from_args

from .space import GridError, load_grid

GRID_DIR = Path(__file__).with_name("grids")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line naming the option, exit 2
        sys.stderr.write(f"python -m dse: error: {message}\n")
        sys.exit(2)


def _fail(msg: str, code: int = 2) -> int:
    print(f"python -m dse: error: {msg}", file=sys.stderr)
    return code


def design_keys_of(points) -> list[str]:
    """The design keys of the points, in order of first appearance."""
    keys: list[str] = []
    for p in points:
        for k, _ in p.params:
            if k not in keys:
                keys.append(k)
    return keys


def write_outputs(out: Path, grid, rows: list[dict], run_info: dict) -> dict:
    """Write the table, fronts and plots together (temporary names, then renames)."""
    from sysmodel.sweep import write_together

    from .pareto import FRONTS, csv_text, fronts_summary, mark_fronts, markdown, render_png

    rows = mark_fronts(rows)
    summary = fronts_summary(rows)
    files = {out / "dse.csv": csv_text(rows, design_keys_of(grid.points)).encode(),
             out / "pareto.json": (json.dumps(summary, indent=1) + "\n").encode(),
             out / "pareto.md": markdown(rows, summary, grid.name).encode(),
             out / "run.json": (json.dumps(run_info, indent=1) + "\n").encode()}
    for name in FRONTS:
        files[out / f"dse_{name}.png"] = render_png(rows, name, f"{grid.name}: {name}")
    write_together(files)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m dse", description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=Path, required=True,
                        help="grid YAML (shipped: dse/grids/small.yaml, full.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--liberty", type=Path, default=None,
                        help="Liberty file (default: that of python -m synth)")
    parser.add_argument("--force", action="store_true",
                        help="re-evaluate every point (ignore the cached results)")
    add_executor_args(parser)
    args = parser.parse_args(argv)
    try:
        grid = load_grid(args.grid)
    except GridError as exc:
        return _fail(str(exc))
    if args.out.exists() and not args.out.is_dir():
        return _fail(f"--out {args.out}: not a folder (allowed: a writable folder)")
    if args.liberty is not None and not args.liberty.is_file():
        return _fail(f"--liberty {args.liberty}: no such file (allowed: a Liberty file)")
    try:
        ex = executor_from_args(args)
    except (ExecutorError, ValueError) as exc:
        return _fail(str(exc))
    from cosim.runner import CosimFailure
    from synth.flow import FlowError

    from .evaluate import evaluate_point, synth_context

    t0 = time.perf_counter()
    try:
        with ex:
            ctx = synth_context(args.liberty)
            args.out.mkdir(parents=True, exist_ok=True)
            print(f"dse: {grid.name}: {len(grid.points)} points on {ex.name} "
                  f"(jobs {getattr(ex, 'jobs', None) or 'cluster'})", flush=True)
            jobs = [(p, grid, args.out.resolve(), ctx, args.force) for p in grid.points]
            rows = ex.map(evaluate_point, jobs)
    except (FlowError, CosimFailure, ExecutorError, ValueError, OSError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _fail(text, 1)
    wall = time.perf_counter() - t0
    info = {"grid": str(args.grid), "name": grid.name, "settings": grid.settings(),
            "points": len(rows), "executor": ex.name, "jobs": getattr(ex, "jobs", None),
            "address": getattr(ex, "address", None), "wall_s": round(wall, 2)}
    summary = write_outputs(args.out, grid, rows, info)
    for r in rows:
        print(f"  {r['label']:48s} area {r['area_mm2_10nm']} mm2, err "
              f"{r['state_rel_err']:.3g}, thr {r['throughput_vs_pimba']:.3f}, cosim "
              f"{'pass' if r['cosim_passed'] else 'FAIL'}")
    for name, s in summary.items():
        p = s["paper"]
        where = ("not in the grid" if p is None else "on the front" if p["on_front"]
                 else "dominated by " + "; ".join(p["dominated_by"]))
        print(f"dse: {name}: {len(s['front'])} points on the front; paper's MX8 {where}")
    print(f"dse: {len(rows)} points in {wall:.1f} s -> {args.out}")
    failed = [r["label"] for r in rows if not r["cosim_passed"]]
    if failed:
        return _fail(f"co-simulation failed for: {'; '.join(failed)} (see build/sim/dse_*)", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
