"""``study all``: run the plan, write the tables, draw the plots (atomically).

Files written to ``OUT``:

``curves.csv``   one row per (workload, seed, variant, recorded step): the error curves
``summary.csv``  one row per (workload, variant) at the summary step (2048): mean / min / max
                 over the seeds that ran it
``summary.md``   the same as a Markdown table (state / output relative error)
``timing.json``  wall time of the whole study and seconds per variant and job
``*.png``        plots (see :mod:`quant.study.plots`)
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time

import torch

from executor import Executor
from executor import run_all as run_all_jobs  # (this module has its own run_all)

from .plan import Job, default_plan
from .plots import draw_all
from .runner import run
from .summary import SUMMARY_STEP, summarize, summary_markdown

__all__ = ["CURVE_FIELDS", "run_job", "run_all", "summarize", "replot"]

CURVE_FIELDS = ["workload", "heads", "batch", "dim_head", "dim_state", "seed", "variant",
                "datapath", "fmt", "rounding", "rbits", "renorm", "rng", "decay", "inputs",
                "step", "state_rel_err", "output_rel_err"]


def run_job(job: Job) -> tuple[list[dict], dict]:
    """Run one job (in a worker process, single-threaded) -> (curve rows, timing)."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    res = run(job.workload, list(job.variants), job.steps, job.seed, every=16,
              extra=(SUMMARY_STEP,))
    rows = []
    for v in job.variants:
        for i, step in enumerate(res.steps):
            rows.append({**job.workload.describe(), "seed": job.seed, "variant": v.key,
                         **v.describe(), "rbits": v.rbits if v.rounding == "stochastic" else "",
                         "step": step, "state_rel_err": res.state_err[v.key][i],
                         "output_rel_err": res.output_err[v.key][i]})
    timing = {"workload": job.workload.family, "seed": job.seed, "steps": job.steps,
              "seconds": time.perf_counter() - t0,
              "variant_seconds": {k: round(s, 2) for k, s in res.seconds.items()}}
    return rows, timing


def _write_csv(path: str, rows: list[dict], fields: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _write_outputs(tmp: str, rows: list[dict], timing: dict | None) -> None:
    _write_csv(os.path.join(tmp, "curves.csv"), rows, CURVE_FIELDS)
    summary = summarize(rows)
    _write_csv(os.path.join(tmp, "summary.csv"), summary, list(summary[0]) if summary else [])
    with open(os.path.join(tmp, "summary.md"), "w") as f:
        f.write(summary_markdown(summary))
    if timing is not None:
        with open(os.path.join(tmp, "timing.json"), "w") as f:
            json.dump(timing, f, indent=1)
    draw_all(rows, tmp)


def _commit(tmp: str, out: str) -> None:
    """Move every file of ``tmp`` into ``out`` (each by an atomic rename)."""
    for name in sorted(os.listdir(tmp)):
        os.replace(os.path.join(tmp, name), os.path.join(out, name))


def run_all(out: str, *, steps: int = 2048, long_steps: int = 8192, seeds=(0, 1),
            jobs: int = 2, plan: list[Job] | None = None,
            executor: Executor | None = None) -> dict:
    """Run the plan on ``executor`` (default: a local pool of ``jobs`` processes) and write
    the outputs to ``out``."""
    plan = default_plan(steps, long_steps, tuple(seeds)) if plan is None else plan
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    rows, timings = [], []
    results = run_all_jobs(run_job, plan, executor, jobs)
    if executor is not None:
        jobs = getattr(executor, "jobs", None) or jobs
    for r, t in results:
        rows += r
        timings.append(t)
        print(f"  {t['workload']:7s} seed {t['seed']} {t['steps']:5d} steps "
              f"{t['seconds']:6.1f} s  {', '.join(t['variant_seconds'])[:90]}", flush=True)
    timing = {"wall_seconds": round(time.perf_counter() - t0, 1), "jobs": jobs,
              "steps": steps, "long_steps": long_steps, "seeds": list(seeds),
              "runs": timings}
    tmp = tempfile.mkdtemp(prefix=".study-", dir=out)
    try:
        _write_outputs(tmp, rows, timing)
        _commit(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"study: {len(plan)} runs in {timing['wall_seconds']} s -> {out}")
    return timing


def read_curves(out: str) -> list[dict]:
    with open(os.path.join(out, "curves.csv"), newline="") as f:
        return list(csv.DictReader(f))


def replot(out: str) -> None:
    """Redraw the tables and plots from ``out/curves.csv``."""
    rows = read_curves(out)
    tmp = tempfile.mkdtemp(prefix=".study-", dir=out)
    try:
        _write_outputs(tmp, rows, None)
        os.remove(os.path.join(tmp, "curves.csv"))
        _commit(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
