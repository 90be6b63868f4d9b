"""Plots of sweep tables: normalised grouped or stacked bars, one panel per batch size.

Reads rows as written by :mod:`sysmodel.sweep` (tables of :mod:`sysmodel.grid`; never re-runs
the model). Each bar is normalised to the grid's baseline system for the same model, GPU, GPU
count and batch size.
A point that does not fit in the GPUs' memory (``fits_memory`` 0) is drawn hatched; the
geometric-mean bar covers only the points where the system and the baseline both fit, and its
label says how many of them there are.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .grid import Grid, write_together  # noqa: E402
from .workload import CATEGORIES  # noqa: E402

SYSTEM_COLOURS = {"GPU": "#9e9e9e", "GPU+Q": "#6baed6", "GPU+PIM": "#fd8d3c",
                  "Pimba": "#31a354", "Pipelined": "#756bb1", "Time-multiplexed": "#e6550d",
                  "GPU+PIM (naive)": "#fdd0a2", "Pimba (fused)": "#a1d99b"}
PART_COLOURS = {"state_update": "#d62728", "attention": "#ff7f0e", "gemm": "#1f77b4",
                "other": "#bdbdbd", "comm": "#9467bd"}


def _key(row: dict) -> tuple:
    return (row["model"], row["gpu"], row["num_gpus"], row["batch_size"])


def normalised(rows: list, grid: Grid) -> dict:
    """Per (model, gpu, gpus, batch, system): the plotted value(s), normalised.

    ``throughput`` / ``state_update``: one ratio to the baseline; breakdowns: a dict of parts
    as fractions of the baseline's total.
    """
    base = {_key(r): r for r in rows if r["system"] == grid.baseline}
    out = {}
    for r in rows:
        b = base[_key(r)]
        key = _key(r) + (r["system"],)
        if grid.plot_kind == "throughput":
            out[key] = r["tokens_per_s"] / b["tokens_per_s"]
        elif grid.plot_kind == "state_update":
            out[key] = r["state_update_tokens_per_s"] / b["state_update_tokens_per_s"]
        elif grid.plot_kind == "time_breakdown":
            out[key] = {c: r[f"time_{c}_s"] / b["time_total_s"] for c in CATEGORIES}
        else:
            out[key] = {c: r[f"energy_{c}_j"] / b["energy_j"] for c in CATEGORIES}
    return out


def feasible(rows: list, grid: Grid) -> dict:
    """Per (model, gpu, gpus, batch, system): whether the point and its baseline both fit."""
    base = {_key(r): r for r in rows if r["system"] == grid.baseline}
    return {_key(r) + (r["system"],): bool(r["fits_memory"] and base[_key(r)]["fits_memory"])
            for r in rows}


def feasible_geomean(values: list, fits: list) -> tuple:
    """Geometric mean of the feasible ``values`` and how many there were (nan, 0 if none)."""
    kept = [v for v, ok in zip(values, fits) if ok]
    if not kept:
        return math.nan, 0
    return math.exp(sum(math.log(v) for v in kept) / len(kept)), len(kept)


def plot_table(rows: list, grid: Grid, png: Path | str) -> None:
    """Draw ``rows`` as ``grid`` says and write the PNG atomically."""
    write_together({Path(png): render_png(rows, grid)})


def render_png(rows: list, grid: Grid) -> bytes:
    """The PNG bytes of ``rows`` drawn as ``grid`` says."""
    values = normalised(rows, grid)
    fits = feasible(rows, grid)
    own = {_key(r) + (r["system"],): bool(r["fits_memory"]) for r in rows}
    batches = sorted({r["batch_size"] for r in rows})
    models = list(dict.fromkeys(r["model"] for r in rows))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    setups = {r["model"]: (r["gpu"], r["num_gpus"]) for r in rows}
    stacked = grid.plot_kind.endswith("breakdown")
    groups = len(models) + (0 if stacked else 1)
    fig_width = min(16.0, 2.0 + groups * (0.35 + 0.22 * len(systems)))
    fig, axes = plt.subplots(len(batches), 1, figsize=(fig_width, 0.6 + 2.4 * len(batches)),
                             squeeze=False)
    width = 0.8 / len(systems)
    for ax, batch in zip(axes[:, 0], batches):
        labels = models + ([] if stacked else ["geomean\n(fitting)"])
        for j, system in enumerate(systems):
            xs = [i + (j - (len(systems) - 1) / 2) * width for i in range(len(labels))]
            if stacked:
                bottom = [0.0] * len(models)
                hatch = [None if own[(m, *setups[m], batch, system)] else "////"
                         for m in models]
                for part in CATEGORIES:
                    h = [values[(m, *setups[m], batch, system)][part] for m in models]
                    ax.bar(xs, h, width * 0.95, bottom=bottom, color=PART_COLOURS[part],
                           edgecolor="black", linewidth=0.3, hatch=hatch,
                           label=part if (j == 0 and batch == batches[0]) else None)
                    bottom = [a + b for a, b in zip(bottom, h)]
                for x, top in zip(xs, bottom):
                    ax.text(x, top, system, rotation=90, ha="center", va="bottom", fontsize=5)
            else:
                h = [values[(m, *setups[m], batch, system)] for m in models]
                ok = [fits[(m, *setups[m], batch, system)] for m in models]
                fit = [own[(m, *setups[m], batch, system)] for m in models]
                geo, n = feasible_geomean(h, ok)
                h.append(0.0 if n == 0 else geo)
                texts = [f"{v:.2f}" for v in h[:-1]]
                texts.append(f"{geo:.2f} (n={n})" if n else "n=0")
                ax.bar(xs, h, width * 0.95, color=SYSTEM_COLOURS.get(system, None),
                       edgecolor="black", linewidth=0.3,
                       hatch=[None if f else "////" for f in fit] + [None],
                       label=system if batch == batches[0] else None)
                for x, v, t in zip(xs, h, texts):
                    ax.text(x, v, t, rotation=90, ha="center", va="bottom", fontsize=5)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_title(f"batch {batch}", fontsize=8)
        ax.set_ylabel(_ylabel(grid), fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        if not stacked:
            ax.axhline(1.0, color="black", linewidth=0.5, linestyle="--")
        ax.margins(y=0.18)
    handles, labels = [], []
    for ax in axes[:, 0]:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    if not all(own.values()):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="////",
                             linewidth=0.3))
        labels.append("does not fit in memory")
    top = 1.0 - 0.75 / (0.6 + 2.4 * len(batches))
    fig.suptitle(grid.title, fontsize=9, y=0.995)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, top + 0.4 * (1 - top)),
               ncol=min(len(labels), 6), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, top - 0.01))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _ylabel(grid: Grid) -> str:
    return {"throughput": f"throughput / {grid.baseline}",
            "state_update": f"state-update tput / {grid.baseline}",
            "time_breakdown": f"time / {grid.baseline} total",
            "energy_breakdown": f"energy / {grid.baseline} total"}[grid.plot_kind]
