"""Perplexity of the study's trained Mamba-2 (:mod:`quant.study.textmodel`) on held-out text,
with its generation-step state update quantized (:mod:`quant.study.mamba2_hook`).

The held-out text is cut into :data:`BATCH` consecutive pieces; each piece's first
``seq_len + 1`` bytes are fed one token at a time through the cached (recurrent) step, so every
token after the first goes through the quantized state update. Perplexity at a length ``L`` is
``exp`` of the mean next-byte negative log-likelihood over the first ``L`` predictions of every
piece; one run at the longest length gives every shorter length (the model is causal).

``run_perplexity`` is one variant against the fp32 reference (the CLI ``perplexity``);
``run_sweep`` is the study's table and plot (every format x rounding as fake-quant, MX8 through
the exact datapath unfused and fused, and fused with feedback decays), written atomically to
``OUT``:

``perplexity.csv``  one row per (variant, length): ppl, ppl_fp32
``perplexity.md``   the table at the longest length
``perplexity.png``  perplexity against sequence length, one line per variant
``perplexity.json`` the model's metadata, the settings and the wall time
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
import time

import torch
import torch.nn.functional as F

from executor import run_all

from .mamba2_hook import quantized_mamba2, stepwise_nll
from .runner import FORMATS, ROUNDINGS, make_variant

__all__ = ["BATCH", "DECAY", "LENGTHS", "run_perplexity", "run_sweep", "sweep_variants",
           "replot"]

#: held-out pieces evaluated side by side (the batch of the recurrent step)
BATCH = 4
#: GPU encoding of the decay for the exact datapath (the study's recommendation)
DECAY = "stochastic-carry"
#: lengths at which the curve is reported (those <= the run's length, and the run's length)
LENGTHS = (64, 128, 256, 512, 1024, 2048, 4096, 8192)
_CACHE = "build/study/model"


def _token_nll(model, ids: torch.Tensor) -> torch.Tensor:
    """(batch, seq_len) next-byte NLL for ``ids`` (batch, seq_len + 1): the first token is
    prefilled, every later one goes through the cached step."""
    _, logits = stepwise_nll(model, ids, prompt=1)
    tgt = ids[:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                           reduction="none").reshape(tgt.shape)


def _curve(nll: torch.Tensor, seq_len: int) -> dict[int, float]:
    pts = [n for n in LENGTHS if n < seq_len] + [seq_len]
    return {n: math.exp(float(nll[:, :n].double().mean())) for n in pts if n <= nll.shape[1]}


def _setup(seq_len: int, batch: int, cache_dir: str, log, model=None):
    """Validate, cut the held-out pieces, and get the trained model (or ``model``, a
    ``(model, meta)`` pair, for tests)."""
    from .textmodel import heldout_segments, load_corpus, trained_model
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 2:
        raise ValueError(f"seq-len must be an integer >= 2, not {seq_len!r}")
    _, held = load_corpus()
    ids = heldout_segments(held, batch, seq_len)
    model, meta = trained_model(cache_dir, log=log) if model is None else model
    return model, meta, ids


def _variant_kwargs(datapath: str, fmt: str, rounding: str, fused: bool, decay: str) -> dict:
    make_variant(datapath, fmt, rounding, 8, decay=decay, fused=fused)  # validates
    if datapath not in ("fakequant", "exact"):
        raise ValueError(f"datapath must be one of fakequant,exact, not {datapath!r}")
    return dict(datapath=datapath, fmt=fmt, rounding=rounding, decay=decay, fused=fused)


def run_perplexity(fmt: str, rounding: str, datapath: str, seq_len: int = 2048, *,
                   fused: bool = False, decay: str = DECAY, seed: int = 0, batch: int = BATCH,
                   cache_dir: str = _CACHE, log=print, model=None) -> dict:
    """One variant and the fp32 reference on the same held-out pieces."""
    kw = _variant_kwargs(datapath, fmt, rounding, fused, decay)
    model, meta, ids = _setup(seq_len, batch, cache_dir, log, model)
    t0 = time.perf_counter()
    ref = _token_nll(model, ids)
    with quantized_mamba2(seed=seed, **kw) as step:
        nll = _token_nll(model, ids)
    curve, ref_curve = _curve(nll, seq_len), _curve(ref, seq_len)
    return {"command": "perplexity", "variant": step.variant.key, **kw, "seq_len": seq_len,
            "batch": batch, "seed": seed, "tokens": int(nll.numel()),
            "ppl": curve[seq_len], "ppl_fp32": ref_curve[seq_len],
            "ppl_at": curve, "ppl_fp32_at": ref_curve, "model": meta["key"],
            "model_params": meta["params"], "seconds": round(time.perf_counter() - t0, 2)}


def sweep_variants() -> list[dict]:
    """Every study format x rounding as fake-quant; MX8 through the exact datapath, unfused
    and fused with the decay encoded as :data:`DECAY`, and fused with error feedback
    (``feedback``, the study's recommended design)."""
    out = [dict(datapath="fakequant", fmt=f, rounding=r, fused=False, decay="-")
           for f in FORMATS for r in ROUNDINGS]
    out += [dict(datapath="exact", fmt="mx8", rounding=r, fused=fu, decay=DECAY)
            for r in ROUNDINGS for fu in (False, True)]
    out += [dict(datapath="exact", fmt="mx8", rounding=r, fused=True, decay="feedback")
            for r in ROUNDINGS]
    return out


def _sweep_job(args) -> tuple[dict, dict]:
    kw, seq_len, batch, seed, cache_dir = args
    torch.set_num_threads(1)
    model, _, ids = _setup(seq_len, batch, cache_dir, lambda s: None)
    t0 = time.perf_counter()
    if kw is None:
        nll = _token_nll(model, ids)
        key = "fp32"
    else:
        full = _variant_kwargs(kw["datapath"], kw["fmt"], kw["rounding"], kw["fused"],
                               DECAY if kw["decay"] == "-" else kw["decay"])
        with quantized_mamba2(seed=seed, **full) as step:
            nll = _token_nll(model, ids)
        key = step.variant.key
    return {"variant": key, **(kw or {"datapath": "fp32", "fmt": "fp32", "rounding": "-",
                                      "fused": False, "decay": "-"})}, {
        "curve": _curve(nll, seq_len), "seconds": time.perf_counter() - t0}


def run_sweep(out: str, seq_len: int = 2048, *, batch: int = BATCH, seed: int = 0,
              jobs: int = 2, cache_dir: str = _CACHE, log=print,
              executor=None) -> list[dict]:
    """The perplexity table and plot (see the module docstring); the variants run on
    ``executor`` (default: a local pool of ``jobs`` processes, :mod:`executor`)."""
    model, meta, _ = _setup(seq_len, batch, cache_dir, log)  # validates, trains if needed
    del model
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    tasks = [(None, seq_len, batch, seed, cache_dir)] + [
        (kw, seq_len, batch, seed, cache_dir) for kw in sweep_variants()]
    results = run_all(_sweep_job, tasks, executor, jobs)
    if executor is not None:
        jobs = getattr(executor, "jobs", None) or jobs
    ref = results[0][1]["curve"]
    rows = []
    for desc, res in results:
        log(f"  {desc['variant']:48s} ppl@{seq_len} {res['curve'][seq_len]:.4f} "
            f"({res['seconds']:.0f} s)")
        for n, p in res["curve"].items():
            rows.append({**desc, "length": n, "ppl": p, "ppl_fp32": ref[n]})
    info = {"model": meta, "seq_len": seq_len, "batch": batch, "seed": seed, "decay": DECAY,
            "wall_seconds": round(time.perf_counter() - t0, 1), "jobs": jobs}
    tmp = tempfile.mkdtemp(prefix=".ppl-", dir=out)
    try:
        with open(os.path.join(tmp, "perplexity.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        with open(os.path.join(tmp, "perplexity.md"), "w") as f:
            f.write(table_markdown(rows, seq_len, meta))
        with open(os.path.join(tmp, "perplexity.json"), "w") as f:
            json.dump(info, f, indent=1)
        plot(rows, os.path.join(tmp, "perplexity.png"))
        for name in sorted(os.listdir(tmp)):
            os.replace(os.path.join(tmp, name), os.path.join(out, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"perplexity: {len(tasks)} runs in {info['wall_seconds']} s -> {out}")
    return rows


def table_markdown(rows: list[dict], seq_len: int, meta: dict) -> str:
    """Rows: formats; columns: RTN / SR, fake-quant and exact (unfused, fused, fused with
    feedback decays)."""
    at = {(r["datapath"], r["fmt"], r["rounding"], str(r["fused"]),
           "feedback" if r.get("decay") == "feedback" else ""): r["ppl"]
          for r in rows if int(r["length"]) == seq_len}
    ref = next(r["ppl_fp32"] for r in rows if int(r["length"]) == seq_len)
    f = lambda k: f"{at[k]:.4f}" if k in at else ""  # noqa: E731
    lines = [f"Perplexity (per byte) of the {meta['params']:,}-parameter Mamba-2 on "
             f"{BATCH} x {seq_len} held-out bytes; fp32 state update: {ref:.4f}", "",
             "| format | fake-quant RTN | fake-quant SR | exact RTN | exact SR | "
             "exact fused RTN | exact fused SR | exact fused RTN, d feedback | "
             "exact fused SR, d feedback |", "|---|---|---|---|---|---|---|---|---|"]
    for fmt in FORMATS:
        cells = [f(("fakequant", fmt, r, "False", "")) for r in ROUNDINGS]
        cells += [f(("exact", fmt, r, "False", "")) for r in ROUNDINGS]
        cells += [f(("exact", fmt, r, "True", "")) for r in ROUNDINGS]
        cells += [f(("exact", fmt, r, "True", "feedback")) for r in ROUNDINGS]
        lines.append(f"| {fmt} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: str) -> None:
    """Left: perplexity against sequence length; right: its increase over fp32 (%), one line
    per variant (fake-quant by format colour, exact MX8 black, fused olive, fused with feedback decays cyan; dashed = SR)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .plots import COLORS
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    keys = []
    for r in rows:
        if r["variant"] not in keys:
            keys.append(r["variant"])
    ref = sorted((int(r["length"]), float(r["ppl_fp32"])) for r in rows
                 if r["variant"] == keys[0])
    ax.plot(*zip(*ref), color="k", lw=3, alpha=0.4, label="fp32")
    ax2.axhline(0, color="k", lw=3, alpha=0.4)
    for key in keys:
        pts = sorted(((int(r["length"]), float(r["ppl"]), float(r["ppl_fp32"]), r)
                      for r in rows if r["variant"] == key), key=lambda p: p[0])
        r0 = pts[0][3]
        if r0["datapath"] == "fp32":
            continue
        exact, fused = r0["datapath"] == "exact", str(r0["fused"]) == "True"
        feedback = r0.get("decay") == "feedback"
        color = (("tab:cyan" if feedback else "tab:olive") if fused else "k") if exact \
            else COLORS.get(r0["fmt"], "tab:gray")
        style = "--" if r0["rounding"] == "stochastic" else "-"
        label = (f"exact {r0['fmt']}{' fused' if fused else ''}"
                 f"{', d feedback' if feedback else ''}" if exact else r0["fmt"]) + (
            " SR" if r0["rounding"] == "stochastic" else " RTN")
        kw = dict(color=color, ls=style, lw=1.2 if exact else 1.0,
                  marker="o" if exact else None, ms=3, label=label)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], **kw)
        ax2.plot([p[0] for p in pts], [100 * (p[1] / p[2] - 1) for p in pts], **kw)
    for a in (ax, ax2):
        a.set_xscale("log", base=2)
        a.set_xlabel("sequence length (bytes; every one through the quantized step)")
        a.grid(alpha=0.3)
    ax.set_ylabel("perplexity per byte")
    ax2.set_ylabel("perplexity increase over the fp32 state update (%)")
    ax.set_title("Mamba-2 on held-out KJV text")
    ax2.set_title("cost of the quantized state")
    ax2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replot(out: str) -> None:
    """Redraw ``OUT/perplexity.png`` from ``OUT/perplexity.csv``."""
    with open(os.path.join(out, "perplexity.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    tmp = tempfile.mkdtemp(prefix=".ppl-", dir=out)
    try:
        plot(rows, os.path.join(tmp, "perplexity.png"))
        os.replace(os.path.join(tmp, "perplexity.png"), os.path.join(out, "perplexity.png"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
