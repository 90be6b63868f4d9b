"""The area table of the synthesis flow: rows, CSV, Markdown and a bar chart."""

from __future__ import annotations

import csv
from pathlib import Path

from synth.config import SynthConfig, UnitSpec
from synth.flow import UnitResult

__all__ = ["COLUMNS", "make_rows", "write_csv", "write_markdown", "write_plot"]

COLUMNS = ["unit", "format", "sharing", "cells", "transistors", "area_um2", "tech",
           "area_mm2_10nm", "crit_path_ns", "area_compute_um2", "area_regs_um2",
           "area_mm2_dram", "bank_pair_overhead_pct", "abc_script", "note"]


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


def write_markdown(rows: list[dict], path: Path, cfg: SynthConfig, node_nm: int | None) -> None:
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
    path.write_text("\n".join(head + lines + [""] + [f"- {n}" for n in notes]) + "\n")


def write_plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    ax.tick_params(axis="x", rotation=60)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
