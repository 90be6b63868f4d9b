"""The area table of the synthesis flow: rows, CSV, Markdown and a bar chart."""

from __future__ import annotations

import csv
from pathlib import Path

from synth.config import SynthConfig, UnitSpec
from synth.flow import UnitResult

__all__ = ["COLUMNS", "BREAKDOWN_COLUMNS", "make_rows", "write_breakdown", "write_csv",
           "write_markdown", "write_plot", "write_timing"]

BREAKDOWN_COLUMNS = ["unit", "part", "category", "cells", "area_um2", "regs_um2", "pct"]

COLUMNS = ["unit", "format", "sharing", "cells", "transistors", "area_um2", "tech",
           "area_mm2_10nm", "crit_path_ns", "area_compute_um2", "area_regs_um2",
           "area_mm2_dram", "bank_pair_overhead_pct", "abc_script", "abc_delay_ps", "note"]


def make_rows(results: list[tuple[UnitSpec, UnitResult]], cfg: SynthConfig,
              node_nm: int | None) -> list[dict]:
    """One row per unit; scaled columns are empty when the library's node is unknown."""
    factor = cfg.scale_factor(node_nm)
    rows = []
    for spec, res in results:
        row = {
            "unit": spec.unit, "format": spec.format, "sharing": spec.sharing,
            "cells": res.cells, "transistors": res.transistors, "area_um2": res.area_um2,
            "tech": res.tech,
            "crit_path_ns": "" if res.crit_path_ns is None else res.crit_path_ns,
            "area_compute_um2": round(res.area_compute_um2, 3),
            "area_regs_um2": res.area_regs_um2,
            "area_mm2_10nm": "", "area_mm2_dram": "", "bank_pair_overhead_pct": "",
            "abc_script": res.abc_script, "note": res.note,
            "abc_delay_ps": "" if res.abc_delay_ps is None else res.abc_delay_ps,
        }
        if factor is not None:
            mm2 = res.area_um2 * 1e-6 * factor
            dram = mm2 * cfg.dram_process_factor
            row["area_mm2_10nm"] = float(f"{mm2:.4g}")
            row["area_mm2_dram"] = float(f"{dram:.4g}")
            pct = 100.0 * spec.per_bank_pair * dram / cfg.bank_pair_area_mm2
            row["bank_pair_overhead_pct"] = float(f"{pct:.4g}")
        else:
            row["note"] = (row["note"] + "; " if row["note"] else "") + \
                f"no area scaling known for {res.tech} (use --node-nm)"
        rows.append(row)
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def write_breakdown(results, out: Path) -> list[dict]:
    """``area_breakdown.csv``: one row per unit and part (:mod:`synth.breakdown`)."""
    rows = [{"unit": spec.unit, **{k: p[k] for k in BREAKDOWN_COLUMNS[1:]}}
            for spec, res in results for p in res.breakdown]
    with open(out / "area_breakdown.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=BREAKDOWN_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def write_timing(rows: list[dict], model, node_nm: int | None, out: Path) -> list[dict]:
    """``timing.csv``: critical path scaled to the logic node and the DRAM process, met or
    not against each memory's SPU clock (:func:`synth.timing.timing_rows`)."""
    from synth.timing import timing_rows
    trows = timing_rows(rows, model, node_nm)
    if trows:
        with open(out / "timing.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(trows[0]))
            writer.writeheader()
            writer.writerows(trows)
    return trows


def _md_table(rows: list[dict], cols: list[str]) -> list[str]:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return lines + ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]


def write_markdown(rows: list[dict], path: Path, cfg: SynthConfig, node_nm: int | None, *,
                   breakdown: list[dict] | None = None, timing: list[dict] | None = None,
                   model=None) -> None:
    cols = [c for c in COLUMNS if c != "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(str(row[c]) for c in cols) + " |")
    notes = sorted({row["note"] for row in rows if row["note"]})
    head = [
        "# Synthesized area", "",
        f"Synthesis node: {node_nm or 'unknown'} nm; scaled to {cfg.target_node_nm} nm with "
        f"factor {cfg.scale_factor(node_nm)} (Stillmaker & Baas 2017); DRAM-process factor "
        f"{cfg.dram_process_factor}x; bank-pair area {cfg.bank_pair_area_mm2:.3f} mm2 "
        f"({cfg.hbm_die_area_mm2} mm2 / {cfg.hbm_banks_per_die} banks x 2). "
        "crit_path_ns: OpenSTA, typical corner, no wire load. See docs/synth.md.", "",
    ]
    extra = []
    if timing:
        from synth.timing import spu_clocks_mhz
        clocks = ", ".join(f"{k} {v:.1f} MHz" for k, v in spu_clocks_mhz().items())
        extra += ["", "## Critical path against the SPU clocks", "",
                  f"crit_ns_logic / crit_ns_dram: crit_path_ns x the Stillmaker & Baas delay "
                  f"factor to {model.logic_node_nm} nm logic "
                  f"({model.scale(node_nm, 'logic'):.4f}) / to the DRAM process "
                  f"({model.dram_node_nm} nm, {model.scale(node_nm, 'dram'):.4f}); "
                  f"<memory>_<process>: met when the scaled path fits one SPU cycle "
                  f"(SPU clocks: {clocks}). Every unit mapped for ABC delay target "
                  f"{rows[0].get('abc_delay_ps', '')} ps (see docs/synth.md).", ""]
        extra += _md_table(timing, list(timing[0]))
    if breakdown:
        extra += ["", "## Area by submodule", "",
                  "Own cells of each submodule (flip-flops included); `top:` parts are the "
                  "unit's top module, its flip-flops split by the signal they hold.", ""]
        extra += _md_table(breakdown, BREAKDOWN_COLUMNS)
    path.write_text("\n".join(head + lines + [""] + [f"- {n}" for n in notes] + extra)
                    + "\n")


def write_plot(rows: list[dict], path: Path, breakdown: list[dict] | None = None) -> None:
    """Bar chart of the unit areas (compute / flip-flops), or with ``breakdown`` a stacked
    chart of the area by submodule category."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if breakdown is not None:
        _plot_breakdown(rows, breakdown, path, plt)
        return
    units = [r["unit"] for r in rows]
    comp = [r["area_compute_um2"] / 1e3 for r in rows]
    regs = [r["area_regs_um2"] / 1e3 for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(rows) + 2), 4.2))
    ax.bar(units, comp, label="compute")
    ax.bar(units, regs, bottom=comp, label="flip-flops")
    ax.set_ylabel(f"area in {rows[0]['tech'] if rows else ''} (10$^3$ µm²)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1)
    ax.set_title("Synthesized unit area")
    ax.legend()
    _save_unit_chart(fig, ax, path, plt)


def _save_unit_chart(fig, ax, path, plt) -> None:
    """Unit names slanted under the bars, then the PNG written and the figure closed."""
    ax.tick_params(axis="x", rotation=60)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_breakdown(rows, breakdown, path, plt) -> None:
    units = [r["unit"] for r in rows]
    cats = sorted({b["category"] for b in breakdown})
    area = {(u, c): 0.0 for u in units for c in cats}
    for b in breakdown:
        area[(b["unit"], b["category"])] += b["area_um2"] / 1e3
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(rows) + 3), 4.5))
    bottom = [0.0] * len(units)
    cmap = plt.get_cmap("tab20")
    for i, c in enumerate(cats):
        vals = [area[(u, c)] for u in units]
        ax.bar(units, vals, bottom=bottom, label=c, color=cmap(i % 20))
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel(f"area in {rows[0]['tech'] if rows else ''} (10$^3$ µm²)")
    ax.set_title("Synthesized area by submodule")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save_unit_chart(fig, ax, path, plt)
