"""Benchmark of the golden model: ``python -m quant.bench [--out build/bench/quant.json]``.

Measures (best of ``--repeat`` wall-clock runs, after one warm-up):

* MX8 quantize throughput, values/s, for round-to-nearest and stochastic rounding;
* bit-exact SPE state update throughput, sub-chunk updates/s (one sub-chunk = 32 state
  values through decay multiply, outer-product multiply, add and dot product), unfused and
  fused (``SPEConfig(fused=True)``: one rounding);
* a plain fp32 torch state update on the same shapes, and the ratio of the two.

The figures go to a JSON file (written atomically) with the machine and library versions.
Each ``*_per_s`` figure also has a ``*_per_cpu_s`` twin: the same work over the process's CPU
time (best of the runs), which other jobs on a shared machine inflate far less than the wall
clock (with one thread, ``OMP_NUM_THREADS=1``, it is the comparable figure).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from . import mx8, spe
from .rng import SPERandom


def _best(fn, repeat: int) -> tuple[float, float]:
    """Best wall-clock and best process-CPU seconds of ``repeat`` runs (after a warm-up)."""
    fn()  # warm-up
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best, best_cpu


def _rate(res: dict, key: str, work: float, fn, repeat: int) -> None:
    wall, cpu = _best(fn, repeat)
    res[f"{key}_per_s"] = work / wall
    res[f"{key}_per_cpu_s"] = work / cpu


def run(n_values: int, shape: tuple[int, int, int, int], repeat: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_values, generator=gen)
    res: dict = {"seed": seed, "repeat": repeat, "threads": torch.get_num_threads()}
    for rounding in mx8.ROUNDINGS:
        _rate(res, f"quantize_{rounding}_values", n_values,
              lambda: mx8.quantize(x, rounding, rng=seed), repeat)

    b, h, ds, dh = shape
    S = torch.randn(b, h, ds, dh, generator=gen)
    d = torch.rand(b, h, dh, generator=gen) * 0.1 + 0.9
    k, q = torch.randn(b, h, dh, generator=gen), torch.randn(b, h, dh, generator=gen)
    v = torch.randn(b, h, ds, generator=gen)
    enc = [mx8.encode(t) for t in (S, d, k, v, q)]
    subchunks = b * h * ds * dh // spe.SUBCHUNK
    for fused in (False, True):
        for rounding in mx8.ROUNDINGS:
            cfg = spe.SPEConfig(rounding=rounding, fused=fused)
            _rate(res, f"state_update_exact_{'fused_' if fused else ''}{rounding}_subchunks",
                  subchunks, lambda: spe.state_update(*enc, cfg, SPERandom.torch(seed)), repeat)

    def fp32_update():
        new = d[..., None, :] * S + k[..., None, :] * v[..., :, None]
        return new, (new * q[..., None, :]).sum(-1)

    _rate(res, "state_update_fp32_subchunks", subchunks, fp32_update, repeat)
    res["exact_over_fp32_ratio"] = (res["state_update_exact_stochastic_subchunks_per_s"]
                                    / res["state_update_fp32_subchunks_per_s"])
    res["shape_batch_heads_dimstate_dimhead"] = list(shape)
    res["quantize_values"] = n_values
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m quant.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/bench/quant.json")
    ap.add_argument("--values", type=int, default=1 << 22)
    ap.add_argument("--shape", default="8,4,64,128",
                    help="batch,heads,dim_state,dim_head of the state-update benchmark")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        shape = tuple(int(s) for s in args.shape.split(","))
        if len(shape) != 4 or min(shape) <= 0 or shape[3] % spe.SUBCHUNK or shape[2] % 16:
            raise ValueError
    except ValueError:
        print(f"error: --shape must be four positive ints batch,heads,dim_state,dim_head with "
              f"dim_state % 16 == 0 and dim_head % 32 == 0, got {args.shape!r}", file=sys.stderr)
        return 2
    if args.values <= 0 or args.values % mx8.GROUP or args.repeat < 1:
        print("error: --values must be a positive multiple of 16 and --repeat >= 1",
              file=sys.stderr)
        return 2
    print(f"quant.bench: seed {args.seed}, {torch.get_num_threads()} threads", flush=True)
    res = run(args.values, shape, args.repeat, args.seed)
    res.update(python=platform.python_version(), torch=torch.__version__,
               machine=platform.machine(), cpus=os.cpu_count())
    for key, val in res.items():
        if key.endswith("_per_s"):
            cpu = res[key[:-len("_per_s")] + "_per_cpu_s"]
            print(f"  {key:52s} {val / 1e6:8.2f} M  (per CPU-second {cpu / 1e6:8.2f} M)")
    print(f"  exact/fp32 state-update ratio {res['exact_over_fp32_ratio']:.4f}")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    # a unique temporary name, created with mode 0666 & ~umask (not tempfile's 0600)
    tmp = os.path.join(out_dir, f".{os.path.basename(args.out)}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(res, f, indent=2, sort_keys=True)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
