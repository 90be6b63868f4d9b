"""Ablation of the GPU+PIM baseline changes of issue 12: the HBM-PIM PCU instead of the naive
8-cycle unit, refresh postponed to round boundaries instead of idling to the end of each
tREFI window, and rows dealt evenly to banks instead of whole chunk groups.

For figures 12 and 16 it evaluates GPU, GPU+PIM and Pimba under eight variants -- ``before``
(main's model: naive unit, ``window`` refresh, ``groups`` dealing), each change alone on top of
it, ``after`` (all three) and ``after`` without each change -- and writes the geometric mean
and the maximum over the figure's points (models x batch sizes) of GPU+PIM / GPU, Pimba / GPU
and Pimba / GPU+PIM (throughput ratios)::

    python -m sysmodel.pim_ablation --out build/pim_ablation [--jobs 2] [--timing FILE]

writes ``pim_ablation.csv`` (variant, pcu, refresh, dealing, turnaround, figure, ratio, geomean,
max) and
``pim_ablation.md`` (the same as a table). Errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from executor import (Executor, ExecutorError, add_executor_args, executor_from_args,
                      run_all)

from .config import ConfigError
from .hardware import TIMING_FILES, Hardware, load_hardware
from .sweep import figure_grid, load_grid, write_atomic
from .system import evaluate

FIGURES = (12, 16)
SYSTEMS = ("GPU", "GPU+PIM", "Pimba")
RATIOS = (("GPU+PIM", "GPU"), ("Pimba", "GPU"), ("Pimba", "GPU+PIM"))
#: GPU+PIM's unit with and without the PCU change.
PCU_UNIT, NAIVE_UNIT = "hbmpim_pcu", "timemux_fp16_naive"


@dataclass(frozen=True)
class Variant:
    """One combination of the three changes (``turnaround``: the PCU's read/write
    turnarounds, ``charged`` in the model, ``free`` for the extra row ``after, free
    turnarounds``)."""

    name: str
    pcu: bool
    refresh: str
    dealing: str
    turnaround: str = "charged"


def variants() -> tuple[Variant, ...]:
    """``before``, each change alone, ``after``, ``after`` without each change, and
    ``after`` with the PCU's read/write turnarounds free."""
    before, after = ("naive", "window", "groups"), ("pcu", "postponed", "rows")
    out = [Variant("before", False, "window", "groups")]
    labels = ("PCU", "refresh", "balance")
    for i, label in enumerate(labels):
        v = list(before)
        v[i] = after[i]
        out.append(Variant(f"before + {label}", v[0] == "pcu", v[1], v[2]))
    out.append(Variant("after", True, "postponed", "rows"))
    for i, label in enumerate(labels):
        v = list(after)
        v[i] = before[i]
        out.append(Variant(f"after - {label}", v[0] == "pcu", v[1], v[2]))
    out.append(Variant("after, free turnarounds", True, "postponed", "rows", "free"))
    return tuple(out)


def variant_hardware(hw: Hardware, v: Variant) -> Hardware:
    """``hw`` with the variant's refresh rule, dealing and GPU+PIM unit."""
    memories = {k: replace(m, refresh=v.refresh) for k, m in hw.memories.items()}
    gpus = {k: replace(g, memory=memories[g.memory.key]) for k, g in hw.gpus.items()}
    units = {k: replace(u, dealing=v.dealing, turnaround=v.turnaround)
             for k, u in hw.units.items()}
    systems = {k: (replace(s, pim_unit=units[s.pim_unit.key]) if s.pim_unit else s)
               for k, s in hw.systems.items()}
    systems["GPU+PIM"] = replace(systems["GPU+PIM"],
                                 pim_unit=units[PCU_UNIT if v.pcu else NAIVE_UNIT])
    return replace(hw, memories=memories, gpus=gpus, units=units, systems=systems)


def _points(figure: int) -> list:
    return [p for p in load_grid(figure_grid(figure)).points if p.system in SYSTEMS]


def _run(args: tuple) -> list:
    v, figure, timing_files, output_len = args
    hw = variant_hardware(load_hardware(timing_files=timing_files), v)
    out = []
    for p in _points(figure):
        if output_len is not None:
            p = replace(p, output_len=output_len)
        out.append((p, evaluate(p, hw).tokens_per_s))
    return out


def summarise(results: list) -> dict:
    """``{ratio name: (geomean, max)}`` from ``(point, tokens_per_s)`` pairs of one run."""
    tput = {(p.model, p.gpu, p.num_gpus, p.batch_size, p.system): t for p, t in results}
    keys = sorted({k[:4] for k in tput})
    out = {}
    for num, den in RATIOS:
        r = [tput[k + (num,)] / tput[k + (den,)] for k in keys]
        out[f"{num} / {den}"] = (math.exp(sum(map(math.log, r)) / len(r)), max(r))
    return out


def run(timing_files: tuple = TIMING_FILES, jobs: int = 1, figures=FIGURES,
        output_len: int | None = None, executor: Executor | None = None) -> list:
    """Rows ``(variant, figure, ratio, geomean, max)`` in variant order.

    ``output_len`` overrides the grids' (tests use a short one)."""
    tasks = [(v, f, tuple(str(p) for p in timing_files), output_len)
             for v in variants() for f in figures]
    results = run_all(_run, tasks, executor, jobs)
    rows = []
    for (v, f, _, _), res in zip(tasks, results):
        for ratio, (gm, mx) in summarise(res).items():
            rows.append((v, f, ratio, gm, mx))
    return rows


def csv_text(rows: list) -> str:
    """The CSV table."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["variant", "pcu", "refresh", "dealing", "turnaround", "figure", "ratio",
                "geomean", "max"])
    for v, f, ratio, gm, mx in rows:
        w.writerow([v.name, int(v.pcu), v.refresh, v.dealing, v.turnaround, f, ratio,
                    f"{gm:.4f}", f"{mx:.4f}"])
    return buf.getvalue()


def markdown(rows: list) -> str:
    """One table per figure: variants x ratios, ``geomean (max)``."""
    out = []
    for f in sorted({r[1] for r in rows}):
        sub = [r for r in rows if r[1] == f]
        ratios = list(dict.fromkeys(r[2] for r in sub))
        out.append(f"### Figure {f}: geometric mean (max) over models x batch sizes\n")
        out.append("| variant | PCU | refresh | dealing | " + " | ".join(ratios) + " |")
        out.append("|---" * (4 + len(ratios)) + "|")
        for v in dict.fromkeys(r[0] for r in sub):
            cells = [f"{gm:.2f} ({mx:.2f})" for vv, _, _, gm, mx in sub if vv == v]
            out.append(f"| {v.name} | {'PCU' if v.pcu else 'naive'} | {v.refresh} | "
                       f"{v.dealing} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # a bad option is bad input: one line, exit 2 (main)
        raise ConfigError(message)


def main(argv: list | None = None) -> int:
    """Entry point; returns the exit status."""
    p = _Parser(prog="python -m sysmodel.pim_ablation", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    add_executor_args(p)           # --executor local|ray, --address, --jobs
    p.add_argument("--timing", type=Path, default=None,
                   help="SPU timing file preferred over the default search order")
    try:
        args = p.parse_args(argv)
        timing = TIMING_FILES
        if args.timing is not None:
            if not args.timing.is_file():
                raise ConfigError(f"{args.timing}: --timing: no such file "
                                  "(allowed: an SPU timing YAML)")
            timing = (args.timing,) + TIMING_FILES
        with executor_from_args(args) as ex:
            rows = run(timing, executor=ex)
        write_atomic(args.out / "pim_ablation.csv", csv_text(rows).encode("utf-8"))
        write_atomic(args.out / "pim_ablation.md", markdown(rows).encode("utf-8"))
        print(markdown(rows))
        return 0
    except (ConfigError, ValueError, ExecutorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
