"""What each change of the GPU model (issue 13) contributes to the figure 12 and 16 ratios.

``python -m sysmodel ablate --out DIR`` evaluates the figure 12 and 16 grids under the GPU
model before the change ("before": the ideal roofline of main), after it ("after": the
configured model) and with one change at a time added to "before" and taken out of "after",
and writes ``DIR/ablation.csv`` (one row per configuration, figure and ratio) and
``DIR/ablation.md`` (the same as tables, plus the per-category time of one decode step for
the :data:`BREAKDOWN` points before and after).

The changes (:data:`CHANGES`):

``dram_fraction`` / ``tensor_fraction``
    the attained shares of peak bandwidth and tensor rate (``gpus.yaml``); off: 1.0.
``kernel_cost``
    the fixed cost of every kernel of the decode step; off: 0.
``allreduce``
    the measured NCCL all-reduce (``interconnect.yaml``); off: main's model,
    :data:`MAIN_ALLREDUCE_US` plus the ring's bus bytes over half the bidirectional NVLink
    bandwidth.
``gpuq_format``
    GPU+Q with the study's int8 (scales counted) for state and KV cache; off: main's GPU+Q,
    8-bit state without scales and an fp16 KV cache.
``feasibility``
    ratios only over points where both systems fit in memory; off: over every point.

A ratio ``A/B`` is A's tokens/s over B's at the same model, GPU, GPU count and batch; its
geometric mean and maximum are over the grid's points (feasible ones when the filter is on),
and ``n`` says how many there were.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, replace
from pathlib import Path

from .hardware import Hardware, NumberFormat, load_hardware
from .sweep import figure_grid, load_grid, write_atomic
from .system import Point, evaluate
from .workload import CATEGORIES, load_models

CHANGES = ("dram_fraction", "tensor_fraction", "kernel_cost", "allreduce", "gpuq_format",
           "feasibility")
#: main's all-reduce latency before issue 13 (a "typical small-message NCCL latency").
MAIN_ALLREDUCE_US = 5.0
PAIRS = (("GPU+Q", "GPU"), ("GPU+PIM", "GPU"), ("Pimba", "GPU"), ("Pimba", "GPU+PIM"))
FIGURES = (12, 16)
#: (model, GPU, GPUs, batch) of the per-category decode-step breakdown.
BREAKDOWN = (("mamba2-2.7b", "A100", 1, 32), ("mamba2-2.7b", "A100", 1, 128),
             ("retnet-70b", "A100", 8, 32), ("retnet-70b", "A100", 8, 128))
CSV_COLUMNS = ("config", "figure", "ratio", "geomean", "max", "n", "points")


def variant(hw: Hardware, enabled: frozenset) -> Hardware:
    """``hw`` with the model changes not in ``enabled`` switched back to main's model."""
    gpus = {}
    for key, g in hw.gpus.items():
        changes = {}
        if "dram_fraction" not in enabled:
            changes["dram_fraction"] = 1.0
        if "tensor_fraction" not in enabled:
            changes["tensor_fraction"] = 1.0
        if "kernel_cost" not in enabled:
            changes.update(kernel_us_graph=0.0, kernel_us_stream=0.0)
        if "allreduce" not in enabled:
            link = g.interconnect
            changes["interconnect"] = replace(
                link, allreduce_points=((0, MAIN_ALLREDUCE_US),),
                allreduce_busbw_gbs=link.bidirectional_gbs / 2.0)
        gpus[key] = replace(g, **changes)
    systems = dict(hw.systems)
    if "gpuq_format" not in enabled and "GPU+Q" in systems:
        systems["GPU+Q"] = replace(systems["GPU+Q"], state_format=NumberFormat("int8", 8),
                                   kv_format=hw.formats["fp16"])
    return replace(hw, gpus=gpus, systems=systems)


def configurations() -> list:
    """``(name, enabled changes)``: before, after, and one change added / taken out."""
    everything = frozenset(CHANGES)
    out = [("before", frozenset()), ("after", everything)]
    out += [(f"before + {c}", frozenset({c})) for c in CHANGES]
    out += [(f"after - {c}", everything - {c}) for c in CHANGES]
    return out


@dataclass(frozen=True)
class RatioStat:
    """Geometric mean and maximum of one ratio over ``n`` of ``points`` points."""

    geomean: float
    max: float
    n: int
    points: int


def ratio_stats(rows: list, num: str, den: str, feasible_only: bool) -> RatioStat:
    """``num``/``den`` tokens/s over the points both appear in (both fitting, if asked)."""
    key = ("model", "gpu", "num_gpus", "batch_size")
    by = {(tuple(r[k] for k in key), r["system"]): r for r in rows}
    ratios, total = [], 0
    for (where, system), r in by.items():
        if system != num or (where, den) not in by:
            continue
        total += 1
        d = by[(where, den)]
        if feasible_only and not (r["fits_memory"] and d["fits_memory"]):
            continue
        ratios.append(r["tokens_per_s"] / d["tokens_per_s"])
    if not ratios:
        return RatioStat(math.nan, math.nan, 0, total)
    geo = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
    return RatioStat(geo, max(ratios), len(ratios), total)


def evaluate_points(points, hw: Hardware, models: dict) -> list:
    """Rows of ``points`` under ``hw``."""
    return [evaluate(p, hw, models).row() for p in points]


def ablation_rows(hw: Hardware | None = None, figures=FIGURES, points: dict | None = None) -> list:
    """One record per configuration, figure and ratio (see :data:`CSV_COLUMNS`).

    ``points`` maps a figure number to its points (default: the figure's grid).
    """
    hw = load_hardware() if hw is None else hw
    models = load_models()
    if points is None:
        points = {f: load_grid(figure_grid(f)).points for f in figures}
    out = []
    for name, enabled in configurations():
        hw_v = variant(hw, enabled)
        for fig in figures:
            rows = evaluate_points(points[fig], hw_v, models)
            for num, den in PAIRS:
                st = ratio_stats(rows, num, den, "feasibility" in enabled)
                out.append({"config": name, "figure": fig, "ratio": f"{num}/{den}",
                            "geomean": st.geomean, "max": st.max, "n": st.n,
                            "points": st.points})
    return out


def breakdown_rows(hw: Hardware | None = None, system: str = "GPU") -> list:
    """Per-category milliseconds of one decode step (mean over the output steps), before and
    after, at the :data:`BREAKDOWN` points."""
    hw = load_hardware() if hw is None else hw
    models = load_models()
    out = []
    for name, enabled in (("before", frozenset()), ("after", frozenset(CHANGES))):
        hw_v = variant(hw, enabled)
        for model, gpu, gpus, batch in BREAKDOWN:
            p = Point(model, system, gpu=gpu, num_gpus=gpus, batch_size=batch)
            row = evaluate(p, hw_v, models).row()
            rec = {"config": name, "model": model, "gpu": f"{gpus} x {gpu}", "batch": batch}
            for c in CATEGORIES:
                rec[c] = row[f"time_{c}_s"] / p.output_len * 1e3
            rec["total"] = row["time_total_s"] / p.output_len * 1e3
            rec["kernels"] = row["kernels_per_step"]
            rec["fits"] = row["fits_memory"]
            out.append(rec)
    return out


def _fmt(x) -> str:
    if isinstance(x, float):
        return "-" if math.isnan(x) else f"{x:.3f}"
    return str(x)


def csv_text(rows: list) -> str:
    """The ablation records as CSV."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([format(r[c], ".6g") if isinstance(r[c], float) else r[c]
                    for c in CSV_COLUMNS])
    return buf.getvalue()


def markdown(rows: list, breakdown: list) -> str:
    """Tables: ratios per configuration and figure, then the decode-step breakdown."""
    lines = ["# GPU model ablation (python -m sysmodel ablate)", ""]
    for fig in sorted({r["figure"] for r in rows}):
        lines += [f"## Figure {fig}: geometric mean / max (n points)", "",
                  "| configuration | " + " | ".join(f"{a}/{b}" for a, b in PAIRS) + " |",
                  "|---|" + "---|" * len(PAIRS)]
        for name, _ in configurations():
            cells = []
            for num, den in PAIRS:
                r = next(x for x in rows if x["config"] == name and x["figure"] == fig
                         and x["ratio"] == f"{num}/{den}")
                cells.append(f"{_fmt(r['geomean'])} / {_fmt(r['max'])} "
                             f"({r['n']} of {r['points']})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## One decode step of the GPU, ms per category", "",
              "| config | model | GPUs | batch | " + " | ".join(CATEGORIES)
              + " | total | kernels | fits |", "|---|---|---|---|" + "---|" * (len(CATEGORIES) + 3)]
    for r in breakdown:
        lines.append(f"| {r['config']} | {r['model']} | {r['gpu']} | {r['batch']} | "
                     + " | ".join(f"{r[c]:.3f}" for c in CATEGORIES)
                     + f" | {r['total']:.3f} | {r['kernels']} | {'yes' if r['fits'] else 'no'} |")
    return "\n".join(lines) + "\n"


def write_ablation(out_dir: Path | str, hw: Hardware | None = None) -> dict:
    """Write ``ablation.csv`` and ``ablation.md`` under ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    rows = ablation_rows(hw)
    bd = breakdown_rows(hw)
    paths = {"csv": out_dir / "ablation.csv", "md": out_dir / "ablation.md"}
    write_atomic(paths["csv"], csv_text(rows).encode("utf-8"))
    write_atomic(paths["md"], markdown(rows, bd).encode("utf-8"))
    return paths
