"""The study's summary: errors at the summary step, averaged over seeds, and their table.

Shared by the study's driver (:mod:`quant.study.run`) and its plots (:mod:`quant.study.plots`);
it imports neither (pure Python, no torch, no matplotlib).
"""

from __future__ import annotations

from collections import defaultdict

__all__ = ["SUMMARY_STEP", "summary_step", "summarize", "summary_markdown"]

#: The step at which the study compares the variants (docs/study.md).
SUMMARY_STEP = 2048


def summary_step(rows: list[dict]) -> int:
    """:data:`SUMMARY_STEP`, or the last step every curve reaches when runs are shorter."""
    last = defaultdict(int)
    for r in rows:
        k = (r["workload"], r["variant"], r["seed"])
        last[k] = max(last[k], int(r["step"]))
    return min([SUMMARY_STEP] + list(last.values()))


def summarize(rows: list[dict], step: int | None = None) -> list[dict]:
    """Mean / min / max over seeds of each (workload, variant) at ``step`` (default
    :func:`summary_step`)."""
    step = summary_step(rows) if step is None else step
    acc = defaultdict(list)
    for r in rows:
        if int(r["step"]) == step:
            acc[(r["workload"], r["variant"])].append(
                (float(r["state_rel_err"]), float(r["output_rel_err"])))
    out = []
    for (wl, var), vals in sorted(acc.items()):
        st = [a for a, _ in vals]
        ou = [b for _, b in vals]
        out.append({"workload": wl, "variant": var, "step": step, "seeds": len(vals),
                    "state_rel_err": sum(st) / len(st), "state_min": min(st),
                    "state_max": max(st), "output_rel_err": sum(ou) / len(ou),
                    "output_min": min(ou), "output_max": max(ou)})
    return out


_FMT_ORDER = ("fp16", "bf16", "int8", "e4m3", "e5m2", "mx8", "mx8c")


def _variant_order(key: str):
    """fake-quant formats by precision (RTN before SR), then MX8-input fake-quant, then the
    exact datapath."""
    p = key.split("/")
    fmt = _FMT_ORDER.index(p[1]) if len(p) > 1 and p[1] in _FMT_ORDER else -1
    group = 0 if p[0] == "fakequant" and len(p) == 3 else (1 if p[0] == "fakequant" else 2)
    return (group, fmt, key)


def summary_markdown(summary: list[dict]) -> str:
    """Rows: variants; columns: workloads; cells ``state / output`` relative error."""
    wls = sorted({r["workload"] for r in summary})
    order = []
    for r in summary:
        if r["variant"] not in order:
            order.append(r["variant"])
    order.sort(key=_variant_order)
    cell = {(r["workload"], r["variant"]): r for r in summary}
    lines = [f"Relative error at step {summary[0]['step'] if summary else SUMMARY_STEP} "
             f"(state / output; mean over seeds, seeds in brackets when > 1)", "",
             "| variant | " + " | ".join(wls) + " |", "|---|" + "---|" * len(wls)]
    for var in order:
        cells = []
        for wl in wls:
            r = cell.get((wl, var))
            if r is None:
                cells.append("")
                continue
            n = f" ({r['seeds']})" if r["seeds"] > 1 else ""
            cells.append(f"{r['state_rel_err']:.4f} / {r['output_rel_err']:.4f}{n}")
        lines.append(f"| {var} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
