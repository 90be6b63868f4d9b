"""Pareto fronts of the design-space results, the table and the plots.

Two fronts over the points: logic area at 10 nm (smaller is better) against the state error
(smaller is better), and against the system throughput (larger is better). A point is on a
front when no other point is at least as good on both axes and better on one. Where the
paper's design (MX8, stochastic rounding, LOD renormalization: :data:`dse.space.PAPER_POINT`)
sits is reported: on the front, or dominated by which points.
"""

from __future__ import annotations

import csv
import io

__all__ = ["FRONTS", "COLUMNS", "front", "paper_position", "csv_text", "fronts_summary",
           "markdown", "render_png"]

#: name -> (x column, minimize x, y column, minimize y, axis labels)
FRONTS = {
    "area_vs_error": ("area_mm2_10nm", True, "state_rel_err", True,
                      "logic area at 10 nm (mm²)", "state error vs fp32 (rel. Frobenius)"),
    "area_vs_throughput": ("area_mm2_10nm", True, "throughput_vs_pimba", False,
                           "logic area at 10 nm (mm²)",
                           "throughput / Pimba (fig. 12 points, geomean)"),
}

#: Columns before the design keys, and after them.
_HEAD = ["point", "label", "unit", "format"]
_TAIL = ["paper_design", "cells", "area_um2", "area_mm2_10nm", "area_mm2_dram",
         "bank_pair_overhead_pct", "crit_path_ns", "crit_ns_dram", "abc_script",
         "cosim_passed", "cosim_sim", "cosim_seed", "cosim_vectors", "cosim_mismatches",
         "cosim_cycles", "study_variant", "study_seed", "rounding_seed", "state_rel_err",
         "output_rel_err", "ppl", "ppl_fp32", "pipeline_depth", "spu_cycles_per_comp",
         "sysmodel_points", "tokens_per_s_geomean", "throughput_vs_pimba",
         "front_area_vs_error", "front_area_vs_throughput"]
COLUMNS = _HEAD + _TAIL


def _num(row, col):
    v = row.get(col, "")
    return None if v in ("", None) else float(v)


def _better_eq(a, b, minimize):
    return a <= b if minimize else a >= b


def _better(a, b, minimize):
    return a < b if minimize else a > b


def _dominates(p, q, spec) -> bool:
    x, minx, y, miny = spec[:4]
    px, py, qx, qy = _num(p, x), _num(p, y), _num(q, x), _num(q, y)
    return (_better_eq(px, qx, minx) and _better_eq(py, qy, miny)
            and (_better(px, qx, minx) or _better(py, qy, miny)))


def _usable(rows, spec):
    return [r for r in rows if _num(r, spec[0]) is not None and _num(r, spec[2]) is not None]


def front(rows: list[dict], name: str) -> list[dict]:
    """The rows on front ``name`` (of :data:`FRONTS`), by increasing x."""
    spec = FRONTS[name]
    rows = _usable(rows, spec)
    on = [r for r in rows if not any(_dominates(q, r, spec) for q in rows if q is not r)]
    return sorted(on, key=lambda r: (_num(r, spec[0]), r["point"]))


def paper_position(rows: list[dict], name: str) -> dict | None:
    """``{point, on_front, dominated_by: [labels]}`` of the paper's design, or None."""
    spec = FRONTS[name]
    rows = _usable(rows, spec)
    paper = [r for r in rows if r.get("paper_design") in (True, "True")]
    if not paper:
        return None
    p = paper[0]
    dom = [q["label"] for q in rows if q is not p and _dominates(q, p, spec)]
    return {"point": p["point"], "label": p["label"], "on_front": not dom,
            "dominated_by": dom}


def _cell(value) -> str:
    if isinstance(value, float):
        return format(value, ".10g")
    return "" if value is None else str(value)


def mark_fronts(rows: list[dict]) -> list[dict]:
    """The rows with ``front_<name>`` set (True/False)."""
    out = [dict(r) for r in rows]
    for name in FRONTS:
        ids = {r["point"] for r in front(out, name)}
        for r in out:
            r[f"front_{name}"] = r["point"] in ids
    return out


def csv_text(rows: list[dict], keys: list[str]) -> str:
    """The table: identity, the design keys ``keys``, then every measured column."""
    cols = _HEAD + keys + _TAIL
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c, "")) for c in cols])
    return buf.getvalue()


def fronts_summary(rows: list[dict]) -> dict:
    """Per front: its points (ids and labels, by x) and where the paper's design sits."""
    return {name: {"x": FRONTS[name][0], "y": FRONTS[name][2],
                   "front": [{"point": r["point"], "label": r["label"],
                              "x": _num(r, FRONTS[name][0]), "y": _num(r, FRONTS[name][2])}
                             for r in front(rows, name)],
                   "paper": paper_position(rows, name)}
            for name in FRONTS}


def markdown(rows: list[dict], summary: dict, title: str) -> str:
    lines = [f"# Design-space sweep: {title}", "",
             f"{len(rows)} points; co-simulation passed on "
             f"{sum(1 for r in rows if r.get('cosim_passed') in (True, 'True'))}.", ""]
    for name, s in summary.items():
        lines += [f"## Pareto front: {s['x']} vs {s['y']}", "",
                  f"| point | {s['x']} | {s['y']} |", "|---|---|---|"]
        lines += [f"| {p['label']} | {p['x']:.4g} | {p['y']:.4g} |" for p in s["front"]]
        paper = s["paper"]
        if paper is None:
            lines += ["", "The paper's design (MX8, SR, LOD) is not in this grid.", ""]
        elif paper["on_front"]:
            lines += ["", f"The paper's design ({paper['label']}) is **on** the front.", ""]
        else:
            lines += ["", f"The paper's design ({paper['label']}) is dominated by: "
                      + "; ".join(paper["dominated_by"]) + ".", ""]
    return "\n".join(lines) + "\n"


def render_png(rows: list[dict], name: str, title: str) -> bytes:
    """The scatter of front ``name``: every point, the front as a line, MX8 marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, _, y, _, xl, yl = FRONTS[name]
    usable = _usable(rows, FRONTS[name])
    fig, ax = plt.subplots(figsize=(7.5, 5))
    kinds = sorted({(r["unit"], r["format"]) for r in usable})
    markers = "osD^v<>ph*"
    for i, (unit, fmt) in enumerate(kinds):
        sub = [r for r in usable if (r["unit"], r["format"]) == (unit, fmt)]
        ax.scatter([_num(r, x) for r in sub], [_num(r, y) for r in sub],
                   marker=markers[i % len(markers)], label=f"{unit} {fmt}", alpha=0.8)
    fr = front(usable, name)
    ax.plot([_num(r, x) for r in fr], [_num(r, y) for r in fr], "k--", lw=1,
            label="Pareto front", drawstyle="steps-post")
    for r in usable:
        if r.get("paper_design") in (True, "True"):
            ax.scatter([_num(r, x)], [_num(r, y)], s=220, facecolors="none",
                       edgecolors="red", linewidths=2, label="paper's MX8 (SR, LOD)")
    if name == "area_vs_error":
        ax.set_yscale("log")
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
