"""Plots of the study (matplotlib, Agg backend), drawn from the curve rows only.

``error_vs_steps.png``  state relative error vs steps, one panel per workload: the fake-quant
                        formats (colour; solid = round-to-nearest, dashed = stochastic) and
                        the exact MX8 datapath (black), seed 0
``exact_sweep.png``     exact MX8 datapath at the summary step: state error vs random bits,
                        lod vs fixed renormalization (round-to-nearest at r = 0)
``summary.png``         bars of the state error at the summary step, every format x rounding
                        and the exact datapath, per workload (mean over seeds)
"""

from __future__ import annotations

import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .summary import summarize, summary_step  # noqa: E402

__all__ = ["draw_all"]

COLORS = {"fp16": "tab:blue", "bf16": "tab:orange", "int8": "tab:green", "e4m3": "tab:red",
          "e5m2": "tab:purple", "mx8": "tab:brown", "mx8c": "tab:gray"}
EXACT_STYLES = {
    "exact/mx8/SR8/lod/torch/d=nearest": ("k", ":", "exact MX8 SR8, d nearest (spec)"),
    "exact/mx8/SR8/lod/torch/d=stochastic-carry": ("k", "--", "exact MX8 SR8, d SR+carry"),
    "exact/mx8/RTN/lod/torch/d=nearest": ("k", "-", "exact MX8 RTN, d nearest"),
}


def _curves(rows, seed="0"):
    """{(workload, variant): (steps, state_err)} for one seed."""
    c = defaultdict(lambda: ([], []))
    for r in rows:
        if str(r["seed"]) == seed:
            s, e = c[(r["workload"], r["variant"])]
            s.append(int(r["step"]))
            e.append(float(r["state_rel_err"]))
    return c


def _panels(n):
    cols = 2 if n > 1 else 1
    rws = (n + cols - 1) // cols
    fig, axes = plt.subplots(rws, cols, figsize=(6.2 * cols, 3.9 * rws), squeeze=False)
    return fig, axes.ravel()


def draw_error_vs_steps(rows, path):
    c = _curves(rows)
    wls = sorted({w for w, _ in c})
    fig, axes = _panels(len(wls))
    for ax, wl in zip(axes, wls):
        for (w, var), (s, e) in sorted(c.items()):
            if w != wl:
                continue
            parts = var.split("/")
            if parts[0] == "fakequant" and len(parts) == 3:
                ls = "-" if parts[2] == "RTN" else "--"
                ax.plot(s, e, ls, color=COLORS[parts[1]], lw=1.2,
                        label=f"{parts[1]} {'RTN' if ls == '-' else 'SR'}")
            elif var in EXACT_STYLES:
                col, ls, lab = EXACT_STYLES[var]
                ax.plot(s, e, ls, color=col, lw=1.6, label=lab)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(wl)
        ax.set_xlabel("step")
        ax.set_ylabel("state rel. error vs fp32")
        ax.grid(True, which="both", alpha=0.25)
    for ax in axes[len(wls):]:
        ax.axis("off")
    h, lab = axes[0].get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def draw_sweep(summary_rows, path):
    """summary_rows: curve rows at the summary step, seed 0, exact datapath."""
    by = defaultdict(dict)
    for r in summary_rows:
        if r["datapath"] != "exact" or r["decay"] != "stochastic-carry" or r["rng"] != "torch":
            continue
        rb = 0 if r["rounding"] == "nearest" else int(r["rbits"])
        by[(r["workload"], r["renorm"])][rb] = float(r["state_rel_err"])
    if not by:
        return
    wls = sorted({w for w, _ in by})
    fig, axes = _panels(len(wls))
    for ax, wl in zip(axes, wls):
        for renorm, mk in (("lod", "o-"), ("fixed", "s--")):
            pts = sorted(by.get((wl, renorm), {}).items())
            if pts:
                ax.plot([p for p, _ in pts], [e for _, e in pts], mk, label=renorm)
        ax.set_yscale("log")
        ax.set_xticks([0, 2, 4, 6, 8], ["RTN", "SR2", "SR4", "SR6", "SR8"])
        ax.set_title(f"{wl}: exact MX8 datapath")
        ax.set_ylabel("state rel. error")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8)
    for ax in axes[len(wls):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def draw_summary(summary, path):
    wls = sorted({r["workload"] for r in summary})
    fig, axes = _panels(len(wls))
    for ax, wl in zip(axes, wls):
        items = []
        for r in summary:
            if r["workload"] != wl:
                continue
            p = r["variant"].split("/")
            if p[0] == "fakequant" and len(p) == 3:
                items.append((f"{p[1]} {p[2][:3]}", r["state_rel_err"], COLORS[p[1]]))
            elif r["variant"] in EXACT_STYLES:
                items.append((EXACT_STYLES[r["variant"]][2].replace("exact MX8 ", "exact "),
                              r["state_rel_err"], "0.3"))
        ax.barh(range(len(items)), [e for _, e, _ in items], color=[c for _, _, c in items])
        ax.set_yticks(range(len(items)), [n for n, _, _ in items], fontsize=7)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_title(f"{wl} at step {summary[0]['step']}")
        ax.set_xlabel("state rel. error vs fp32")
        ax.grid(True, axis="x", which="both", alpha=0.25)
    for ax in axes[len(wls):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def draw_all(rows, out):
    draw_error_vs_steps(rows, os.path.join(out, "error_vs_steps.png"))
    step = summary_step(rows)
    at = [r for r in rows if int(r["step"]) == step and str(r["seed"]) == "0"]
    draw_sweep(at, os.path.join(out, "exact_sweep.png"))
    summary = summarize(rows)
    if summary:
        draw_summary(summary, os.path.join(out, "summary.png"))
