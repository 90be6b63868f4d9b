"""Command line of the state-quantization accuracy study.

    python -m quant.study swamping --format mx8 --rounding stochastic --datapath exact \\
        --steps 2048 --seed 7 --json
    python -m quant.study all --out build/study [--steps 2048] [--long-steps 8192] [--jobs 2]
    python -m quant.study plot --out build/study          (re-plot from curves.csv)
    python -m quant.study fused --out build/study/fused   (state error, unfused vs fused)
    python -m quant.study perplexity --format mx8 --rounding stochastic --datapath exact \\
        [--seq-len 2048] [--fused] --json
    python -m quant.study perplexity-all --out build/study/perplexity [--seq-len 2048]

Configuration errors print one line naming the option and the allowed values and exit 2;
``all`` writes its files to temporary names and renames them when everything succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from executor import ExecutorError, add_executor_args, executor_from_args

from .runner import (DATAPATHS, DECAY_ENCODINGS, FORMATS, INPUTS, RENORMS, RNGS, ROUNDINGS,
                     derive_seed, make_variant, run)
from .workloads import FAMILIES, make_workload


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        sys.stderr.write(f"quant.study: error: {message}\n")
        sys.exit(2)


def _fail(msg: str) -> None:
    sys.stderr.write(f"quant.study: error: {msg}\n")
    sys.exit(2)


def _int(name):
    def conv(s):
        try:
            return int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, not {s!r}") from None
    return conv


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m quant.study", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    s = sub.add_parser("swamping", help="one variant on one workload; final-step errors")
    s.add_argument("--workload", default="mamba2", help=f"{','.join(FAMILIES)} (mamba2)")
    s.add_argument("--format", default="mx8", help=f"{','.join(FORMATS)} (mx8)")
    s.add_argument("--rounding", default="stochastic", help="nearest,stochastic (stochastic)")
    s.add_argument("--rbits", type=_int("--rbits"), default=8, help="random bits (8)")
    s.add_argument("--datapath", default="fakequant", help="fakequant,exact (fakequant)")
    s.add_argument("--renorm", default="lod", help="exact only: lod,fixed (lod)")
    s.add_argument("--rng", default="torch", help="exact only: torch,lfsr (torch)")
    s.add_argument("--decay", default="nearest",
                   help=f"GPU encoding of d: {','.join(DECAY_ENCODINGS)} (nearest)")
    s.add_argument("--inputs", default="fp32",
                   help=f"fakequant only: {','.join(INPUTS)} (fp32)")
    s.add_argument("--fused", action="store_true",
                   help="exact only: the SPE's fused update (one rounding, docs/mx8.md 8a)")
    s.add_argument("--steps", type=_int("--steps"), default=2048)
    s.add_argument("--seed", type=_int("--seed"), default=0)
    s.add_argument("--heads", type=_int("--heads"), default=None,
                   help="heads (default: the study's size for the workload)")
    s.add_argument("--batch", type=_int("--batch"), default=1)
    s.add_argument("--dim-state", type=_int("--dim-state"), default=None,
                   help="simulated state columns (default: the study's, 16)")
    s.add_argument("--json", action="store_true", help="print one JSON object")

    a = sub.add_parser("all", help="the whole study: CSV, summary table and plots")
    a.add_argument("--out", required=True)
    a.add_argument("--steps", type=_int("--steps"), default=2048)
    a.add_argument("--long-steps", type=_int("--long-steps"), default=8192)
    a.add_argument("--seeds", default="0,1", help="comma-separated seeds (0,1)")
    add_executor_args(a)        # --executor local|ray, --address, --jobs
    a.set_defaults(jobs=min(2, os.cpu_count() or 1))

    pl = sub.add_parser("plot", help="re-draw the plots and table from DIR/curves.csv")
    pl.add_argument("--out", required=True)

    fu = sub.add_parser("fused", help="state error: exact unfused vs fused vs fake-quant")
    fu.add_argument("--out", required=True)
    fu.add_argument("--steps", type=_int("--steps"), default=2048)
    fu.add_argument("--seeds", default="0,1", help="comma-separated seeds (0,1)")
    add_executor_args(fu)        # --executor local|ray, --address, --jobs
    fu.set_defaults(jobs=min(2, os.cpu_count() or 1))

    pp = sub.add_parser("perplexity", help="perplexity of the trained Mamba-2, one variant")
    pp.add_argument("--format", default="mx8", help=f"{','.join(FORMATS)} (mx8)")
    pp.add_argument("--rounding", default="stochastic", help="nearest,stochastic (stochastic)")
    pp.add_argument("--datapath", default="exact", help="fakequant,exact (exact)")
    pp.add_argument("--seq-len", type=_int("--seq-len"), default=2048)
    pp.add_argument("--fused", action="store_true", help="exact only: the fused update")
    pp.add_argument("--decay", default="stochastic-carry",
                    help=f"exact only, GPU encoding of d: {','.join(DECAY_ENCODINGS)}")
    pp.add_argument("--seed", type=_int("--seed"), default=0)
    pp.add_argument("--json", action="store_true", help="print one JSON object")

    pa = sub.add_parser("perplexity-all", help="perplexity table and plot, every variant")
    pa.add_argument("--out", required=True)
    pa.add_argument("--seq-len", type=_int("--seq-len"), default=2048)
    add_executor_args(pa)        # --executor local|ray, --address, --jobs
    pa.set_defaults(jobs=min(2, os.cpu_count() or 1))
    pa.add_argument("--replot", action="store_true", help="redraw the plot from OUT's CSV")
    return p


def _swamping(ns) -> int:
    from .plan import STUDY_SHAPES
    try:
        if ns.datapath not in ("fakequant", "exact"):
            raise ValueError(f"datapath must be one of fakequant,exact, not {ns.datapath!r}")
        if ns.workload not in FAMILIES:
            raise ValueError(f"workload must be one of {','.join(FAMILIES)}, "
                             f"not {ns.workload!r}")
        shape = STUDY_SHAPES[ns.workload]
        wl = make_workload(  # zero is not "not given": make_workload refuses it
            ns.workload, heads=shape["heads"] if ns.heads is None else ns.heads, batch=ns.batch,
            dim_state=shape["dim_state"] if ns.dim_state is None else ns.dim_state)
        v = make_variant(ns.datapath, ns.format, ns.rounding, ns.rbits, renorm=ns.renorm,
                         rng=ns.rng, decay=ns.decay, inputs=ns.inputs, fused=ns.fused)
        if ns.steps < 1:
            raise ValueError(f"steps must be a positive integer, not {ns.steps}")
    except ValueError as e:
        _fail(str(e))
    t0 = time.perf_counter()
    res = run(wl, [v], ns.steps, ns.seed, every=ns.steps, extra=())
    se, oe = res.state_err[v.key][-1], res.output_err[v.key][-1]
    out = {"command": "swamping", **wl.describe(), "variant": v.key, **v.describe(),
           "format": v.fmt, "steps": ns.steps, "seed": ns.seed,
           "rounding_seed": derive_seed(ns.seed, v.key, "state"),
           "state_rel_err": se, "output_rel_err": oe,
           "metric": "mean over states of ||X - X_fp32||_F / ||X_fp32||_F at the final step",
           "seconds": round(time.perf_counter() - t0, 3)}
    if ns.json:
        print(json.dumps(out))
    else:
        print(f"{wl.family} {v.key} steps={ns.steps} seed={ns.seed}: "
              f"state_rel_err={se:.4g} output_rel_err={oe:.4g}")
    return 0


def _all(ns) -> int:
    from .run import run_all
    try:
        seeds = tuple(int(x) for x in ns.seeds.split(","))
    except ValueError:
        _fail(f"--seeds must be comma-separated integers, not {ns.seeds!r}")
    for name, val in (("--steps", ns.steps), ("--long-steps", ns.long_steps),
                      ("--jobs", ns.jobs)):
        if val < 1:
            _fail(f"{name} must be a positive integer, not {val}")
    with _executor(ns) as ex:
        run_all(ns.out, steps=ns.steps, long_steps=ns.long_steps, seeds=seeds, executor=ex)
    return 0


def _executor(ns):
    """The executor of ``--executor/--address/--jobs`` (an unreachable cluster: one line)."""
    try:
        return executor_from_args(ns)
    except (ExecutorError, ValueError) as e:
        _fail(str(e))


def _plot(ns) -> int:
    from .run import replot
    path = os.path.join(ns.out, "curves.csv")
    if not os.path.exists(path):
        _fail(f"--out: {path} does not exist (run `python -m quant.study all` first)")
    replot(ns.out)
    return 0


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        _fail(f"--seeds must be comma-separated integers, not {text!r}")


def _fused(ns) -> int:
    from .plan import fused_plan
    from .run import run_all
    for name, val in (("--steps", ns.steps), ("--jobs", ns.jobs)):
        if val < 1:
            _fail(f"{name} must be a positive integer, not {val}")
    with _executor(ns) as ex:
        run_all(ns.out, steps=ns.steps, seeds=_seeds(ns.seeds), executor=ex,
                plan=fused_plan(ns.steps, _seeds(ns.seeds)))
    return 0


def _perplexity(ns) -> int:
    from .perplexity import run_perplexity
    log = (lambda s: print(s, file=sys.stderr)) if ns.json else print
    try:
        res = run_perplexity(ns.format, ns.rounding, ns.datapath, ns.seq_len, fused=ns.fused,
                             decay=ns.decay, seed=ns.seed, log=log)
    except (ValueError, RuntimeError) as e:
        _fail(str(e))
    if ns.json:
        print(json.dumps(res))
    else:
        print(f"{res['variant']} seq_len={ns.seq_len}: ppl={res['ppl']:.4f} "
              f"ppl_fp32={res['ppl_fp32']:.4f}")
    return 0


def _perplexity_all(ns) -> int:
    from .perplexity import replot, run_sweep
    if ns.replot:
        if not os.path.exists(os.path.join(ns.out, "perplexity.csv")):
            _fail(f"--out: {os.path.join(ns.out, 'perplexity.csv')} does not exist")
        replot(ns.out)
        return 0
    if ns.jobs < 1:
        _fail(f"--jobs must be a positive integer, not {ns.jobs}")
    try:
        with _executor(ns) as ex:
            run_sweep(ns.out, ns.seq_len, executor=ex)
    except (ValueError, RuntimeError) as e:
        _fail(str(e))
    return 0


def main(argv=None) -> int:
    ns = _parser().parse_args(argv)
    return {"swamping": _swamping, "all": _all, "plot": _plot, "fused": _fused,
            "perplexity": _perplexity, "perplexity-all": _perplexity_all}[ns.cmd](ns)


if __name__ == "__main__":
    sys.exit(main())
