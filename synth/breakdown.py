"""Area per submodule of a unit (``area_breakdown.csv``).

Besides the flattened netlist (the unit's area, cells and critical path), the flow maps the
unit once more keeping the Amaranth hierarchy (one Yosys module per submodule, mapped
separately, same ABC script and target: ``stat_hier.json``, ``mapped_hier.v``), so
``stat -json -liberty`` reports the cells of every module; each module's own cells (without
its submodules) are summed with the Liberty areas, flip-flops included, so a register is
attributed to the submodule that holds it. The top module's flip-flops are split further by
the name of the signal they hold (:data:`TOP_FF_CLASSES`: operand registers, result
registers, pipeline registers, control); its combinational cells are "top logic" (operand
and result multiplexers, command decode). Every part gets a category (:func:`category`) for
the stacked chart.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from hw.spu_stages import stage_field

__all__ = ["TOP_FF_CLASSES", "category", "unit_breakdown"]

#: Classes of the top module's flip-flops by signal name (first match wins).
TOP_FF_CLASSES = (
    ("operand registers", re.compile(r"^(reg_|opnd)")),
    ("result registers", re.compile(r"^(acc\d|results|r_acc|o_rdata)")),
    # (the SPU's stage registers are layouts, hw/spu_stages.py: their tag and data fields)
    ("pipeline registers", re.compile(r"(_tag|f_data|w_data|wdata|^i_a$|^s\d|"
                                      r"_stage\d*\.(tag|data)\b)")),
)


def category(part: str, unit: str = "") -> str:
    """Chart category of a part: the last path component decides (``lfsr`` before the
    unit it sits in); the top module's logic takes the unit's own category when the unit is
    one arithmetic block (``mx_dot``), else it is "control + muxes"."""
    leaf = part.split(".")[-1].split(":")[0]
    if part == "top:top logic":
        own = category(unit) if unit else unit
        return own if own in ("LFSRs", "multipliers", "adder", "dot product") else \
            "control + muxes"
    if part.startswith("top:"):
        return part[4:]
    leaf = leaf.removeprefix("mx_").removeprefix("fp")
    if leaf == "lfsr":
        return "LFSRs"
    if leaf.startswith("mul"):
        return "multipliers"
    if leaf.startswith("add"):
        return "adder"
    if leaf.startswith(("dot", "tree")):  # tree<level>_<i>: a dot product's adder tree
        return "dot product"
    return leaf


def _own_cells(mod: dict, lib) -> tuple[int, float, float]:
    cells = area = regs = 0
    for typ, n in mod.get("num_cells_by_type", {}).items():
        if typ in lib.cell_area:
            cells += n
            area += lib.cell_area[typ] * n
            if typ in lib.sequential:
                regs += lib.cell_area[typ] * n
    return cells, area, regs


_INST = re.compile(r"^\s*(\\?\S+)\s+(\\?\S+)\s*\((.*?)\);", re.S | re.M)
_Q = re.compile(r"\.Q\(\s*(\\?[^\s\[\)]+)\s*(?:\[(\d+)\])?")


def _top_ffs(mapped_v: Path, top: str, lib) -> dict[str, tuple[int, float]]:
    """Flip-flops of the top module by class (count, area)."""
    text = mapped_v.read_text()
    m = re.search(rf"^module\s+\\?{re.escape(top)}\s*\((.*?)^endmodule", text, re.S | re.M)
    out: dict[str, list] = {}
    if m is None:
        return {}
    for inst in _INST.finditer(m.group(1)):
        typ = inst.group(1).lstrip("\\")
        if typ not in lib.sequential:
            continue
        q = _Q.search(inst.group(3))
        name = q.group(1).lstrip("\\") if q else ""
        # a bit of one of the SPU's stage registers (one layout each): named by its field
        field = stage_field(name, int(q.group(2) or 0)) if q else None
        if field is not None:
            name = f"{name}.{field}"
        cls = next((c for c, rx in TOP_FF_CLASSES if rx.search(name)), "control")
        slot = out.setdefault(cls, [0, 0.0])
        slot[0] += 1
        slot[1] += lib.cell_area[typ]
    return {k: (v[0], v[1]) for k, v in out.items()}


def unit_breakdown(workdir: Path, unit: str, lib) -> list[dict]:
    """Parts of ``unit`` from ``stat_hier.json`` and ``mapped_hier.v`` in ``workdir``: one row per
    submodule (path relative to the unit) and per class of the top module's cells."""
    stat = json.loads((workdir / "stat_hier.json").read_text())
    rows = []
    for name, mod in stat.get("modules", {}).items():
        name = name.lstrip("\\")
        cells, area, regs = _own_cells(mod, lib)
        if name == unit:
            ffs = _top_ffs(workdir / "mapped_hier.v", unit, lib)
            ff_cells = sum(n for n, _ in ffs.values())
            ff_area = sum(a for _, a in ffs.values())
            for cls, (n, a) in sorted(ffs.items()):
                rows.append({"part": f"top:{cls}", "cells": n, "area_um2": a, "regs_um2": a})
            rows.append({"part": "top:top logic", "cells": cells - ff_cells,
                         "area_um2": area - ff_area, "regs_um2": regs - ff_area})
        elif name.startswith(unit + "."):
            rows.append({"part": name[len(unit) + 1:], "cells": cells, "area_um2": area,
                         "regs_um2": regs})
    total = sum(r["area_um2"] for r in rows) or 1.0
    for r in rows:
        r["category"] = category(r["part"], unit)
        r["area_um2"] = round(r["area_um2"], 3)
        r["regs_um2"] = round(r["regs_um2"], 3)
        r["pct"] = round(100.0 * r["area_um2"] / total, 2)
    return sorted(rows, key=lambda r: -r["area_um2"])
