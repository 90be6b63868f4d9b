"""Micro-benchmarks of a CUDA GPU that measure the GPU parameters of ``gpus.yaml``.

``python -m sysmodel calibrate --out FILE [--gpu KEY] [--raw FILE] [--quick] [--seed N]``

Runs on one CUDA GPU with PyTorch only (Triton, if installed, adds the read bandwidth against
the number of active SMs), then fits the four parameters of
:data:`sysmodel.hardware.GPU_PARAM_KEYS` and writes them as ``KEY: {dram_fraction: ...}``, a
file ``--gpu-params FILE`` of ``run`` and ``sweep`` takes, or whose lines replace those of
``KEY`` in ``gpus.yaml``. ``--raw`` (default ``FILE`` with ``.raw.json``) gets every timing and,
per micro-benchmark, the model's time next to the measured one; the same comparison as a
Markdown table goes next to it (``.raw.md``).

The suite (medians of CUDA-event timings after warm-up; inputs from ``torch.manual_seed``):

* ``read`` / ``copy``: STREAM-style sum and copy of 256 MB .. 8 GB fp16 buffers;
* ``read_sms``: read bandwidth with 1/8 .. all SMs busy (a Triton kernel on a limited grid,
  one program per SM; skipped without Triton);
* ``gemm``: cuBLAS fp16 GEMMs of every model's decode shapes (1 and 8 GPUs) at M = 32, 64,
  128, plus large square GEMMs for the tensor rate;
* ``launch_stream`` / ``launch_graph``: back-to-back one-element kernels in a stream and
  replayed from a CUDA graph;
* ``state_update``: S = d S + k v^T, y = S^T q on every state model's head shape, composed
  from PyTorch operators: fp16 (3 kernels, 3 reads and 2 writes of S; the model side is
  charged for the same passes) and int8 with an fp32 scale per 32 values (dequantize,
  update, requantize; compared with the model's fused int8 kernel, so the gap is what a fused
  kernel would save);
* ``attention``: SDPA decode (one query) at KV 2k and 4k on the attention models' head shapes;
* ``rmsnorm``, ``silu_gate``: on decode-sized activations.

Fits (:func:`fit_params`): ``dram_fraction`` = best read bandwidth at >= 256 MB over
``dram_gbs``; ``tensor_fraction`` = best GEMM rate over ``tensor_tflops``; ``kernel_us_stream``
and ``kernel_us_graph`` = time per kernel of the launch loops. Without a CUDA GPU the command
prints one line and exits with status 2.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from pathlib import Path

from quant.constants import INT8_GROUP

from .config import ConfigError, Section
from .gpu import attention_cost, elementwise_cost, gemm_cost, state_update_cost
from .hardware import GPU_PARAM_KEYS, GpuSpec, NumberFormat, read_gpu_params
from .sweep import write_atomic
from .workload import Attention, Gemm, StateUpdate, load_models, step_operators

READ_SIZES_MB = (256, 1024, 4096, 8192)
QUICK_SIZES_MB = (256, 1024)
GEMM_MS = (32, 64, 128)
LARGE_GEMMS = ((8192, 8192, 8192), (4096, 16384, 8192))
KV_LENS = (2048, 4096)
LAUNCHES = 2000
#: Smallest buffer the bandwidth fit uses (smaller ones sit partly in L2).
MIN_FIT_BYTES = 256 * 2 ** 20


class CalibrationUnavailable(RuntimeError):
    """No CUDA GPU (or no PyTorch with CUDA) on this machine."""


class CalibrationError(ValueError):
    """Measurements that cannot give a valid parameter (e.g. above the configured peak)."""


# -- fitting (no GPU needed) -----------------------------------------------------------------
def _of(raw: dict, bench: str) -> list:
    return [r for r in raw["records"] if r["bench"] == bench]


def fit_dram_fraction(raw: dict, gpu: GpuSpec) -> float:
    """Best ``read`` bandwidth on buffers of at least :data:`MIN_FIT_BYTES` over the peak."""
    rates = [r["bytes"] / r["seconds"] for r in _of(raw, "read") if r["bytes"] >= MIN_FIT_BYTES]
    if not rates:
        raise CalibrationError(f"no read measurement of >= {MIN_FIT_BYTES} bytes")
    frac = max(rates) / (gpu.dram_gbs * 1e9)
    if frac > 1.0:
        raise CalibrationError(f"read bandwidth {max(rates) / 1e9:.0f} GB/s is above "
                               f"{gpu.key}'s dram_gbs {gpu.dram_gbs:.0f}")
    return frac


def fit_tensor_fraction(raw: dict, gpu: GpuSpec) -> float:
    """Best ``gemm`` rate (2 m k n / time) over the tensor-core peak."""
    rates = [2.0 * r["m"] * r["k"] * r["n"] / r["seconds"] for r in _of(raw, "gemm")]
    if not rates:
        raise CalibrationError("no gemm measurement")
    frac = max(rates) / (gpu.tensor_tflops * 1e12)
    if frac > 1.0:
        raise CalibrationError(f"GEMM rate {max(rates) / 1e12:.0f} TFLOP/s is above "
                               f"{gpu.key}'s tensor_tflops {gpu.tensor_tflops:.0f}")
    return frac


def fit_kernel_us(raw: dict, bench: str) -> float:
    """Median time per kernel of the ``launch_stream`` or ``launch_graph`` loops, in us."""
    per = [r["seconds"] / r["kernels"] * 1e6 for r in _of(raw, bench)]
    if not per:
        raise CalibrationError(f"no {bench} measurement")
    return statistics.median(per)


def fit_params(raw: dict, gpu: GpuSpec) -> dict:
    """The :data:`GPU_PARAM_KEYS` from a suite's raw records (rounded to 4 digits)."""
    params = {"dram_fraction": round(fit_dram_fraction(raw, gpu), 4),
              "tensor_fraction": round(fit_tensor_fraction(raw, gpu), 4),
              "kernel_us_graph": round(fit_kernel_us(raw, "launch_graph"), 3),
              "kernel_us_stream": round(fit_kernel_us(raw, "launch_stream"), 3)}
    assert tuple(params) == GPU_PARAM_KEYS
    return params


def _fmt(bits: int, group: int = 0, scale: int = 0) -> NumberFormat:
    return NumberFormat(f"{bits}b", bits, group, scale)


def model_seconds(record: dict, gpu: GpuSpec) -> float | None:
    """What the model charges for one micro-benchmark record (``gpu`` with fitted params);
    ``None`` for records that only feed a fit."""
    b = record["bench"]
    k_s = gpu.kernel_s(True)
    if b == "read":
        return float(elementwise_cost(gpu, record["bytes"], 0.0, 0.0).time_s) + k_s
    if b == "copy":
        return float(elementwise_cost(gpu, record["bytes"], record["bytes"], 0.0).time_s) + k_s
    if b == "gemm":
        return gemm_cost(gpu, record["m"], record["k"], record["n"]).time_s + k_s
    if b == "state_update" and record["model"] == "fused":
        op = StateUpdate("su", record["batch"], record["heads"], record["dim_head"],
                         record["dim_state"], record["vector_gate"])
        return float(state_update_cost(gpu, op, _fmt(8, INT8_GROUP, 32)).time_s) + k_s
    if b == "state_update":
        # the same passes over the fp16 state as the PyTorch composition that was timed
        state = record["values"] * _fmt(16).bytes_per_value
        t = elementwise_cost(gpu, record["passes_read"] * state, record["passes_written"] * state,
                             0.0).time_s
        return float(t) + record["kernels"] * k_s
    if b == "attention":
        op = Attention("attn", record["batch"], record["heads"], record["dim_head"])
        return float(attention_cost(gpu, op, _fmt(16), record["kv_len"]).time_s) + k_s
    if b in ("rmsnorm", "silu_gate"):
        return float(elementwise_cost(gpu, record["bytes_read"], record["bytes_written"],
                                      0.0).time_s) + record["kernels"] * k_s
    return None


def comparison(raw: dict, gpu: GpuSpec) -> list:
    """Per record with a model: measured and modelled microseconds and the relative error."""
    rows = []
    for r in raw["records"]:
        model = model_seconds(r, gpu)
        if model is None:
            continue
        rows.append({"bench": r["bench"], "shape": r.get("shape", ""),
                     "measured_us": r["seconds"] * 1e6, "model_us": model * 1e6,
                     "error_pct": (model / r["seconds"] - 1.0) * 100.0})
    return rows


def comparison_markdown(raw: dict) -> str:
    """Model versus measurement per micro-benchmark, a Markdown table for docs/sysmodel.md."""
    lines = [f"Model vs measurement on {raw.get('device', '?')} ({raw.get('when', '')}; torch "
             f"{raw.get('torch', '?')}, CUDA {raw.get('cuda', '?')}, seed {raw.get('seed', '?')})",
             "", "| micro-benchmark | shape | measured us | model us | model error |",
             "|---|---|---|---|---|"]
    for r in raw["comparison"]:
        lines.append(f"| {r['bench']} | {r['shape']} | {r['measured_us']:.2f} | "
                     f"{r['model_us']:.2f} | {r['error_pct']:+.1f} % |")
    lines += ["", "| micro-benchmark | mean abs error |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} % |" for k, v in relative_errors(raw["comparison"]).items()]
    return "\n".join(lines) + "\n"


def params_yaml(gpu_key: str, params: dict, header: str) -> str:
    """The parameter file's text (one GPU mapping, comment header)."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines.append(f"{gpu_key}:")
    lines += [f"  {k}: {params[k]}" for k in GPU_PARAM_KEYS]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, raw_path: Path, gpu: GpuSpec, raw: dict) -> dict:
    """Fit, validate (the loader's own checks, naming ``out``) and write both files.

    Nothing is written when a fit or a check fails.
    """
    params = fit_params(raw, gpu)
    read_gpu_params(Section(dict(params), str(out), gpu.key))
    from dataclasses import replace
    fitted = replace(gpu, **params)
    raw = dict(raw, params=params, comparison=comparison(raw, fitted))
    header = (f"GPU parameters measured by `python -m sysmodel calibrate` on "
              f"{raw.get('device', 'unknown device')}\n{raw.get('when', '')}; raw timings: "
              f"{raw_path.name}")
    text = params_yaml(gpu.key, params, header)
    write_atomic(raw_path, (json.dumps(raw, indent=1) + "\n").encode("utf-8"))
    write_atomic(raw_path.with_suffix(".md"), comparison_markdown(raw).encode("utf-8"))
    write_atomic(out, text.encode("utf-8"))
    return params


# -- shapes of the workload ------------------------------------------------------------------
def gemm_shapes() -> list:
    """Distinct ``(k, n)`` of every model's decode GEMMs on 1 and on 8 GPUs."""
    shapes = set()
    for model in load_models().values():
        for gpus in (1, 8):
            for op, _ in step_operators(model, 1, gpus):
                if isinstance(op, Gemm):
                    shapes.add((op.k, op.n))
    return sorted(shapes)


def state_shapes() -> list:
    """Distinct ``(heads per GPU, dim_head, dim_state, vector gate)`` of the state models."""
    out = set()
    for name, model in load_models().items():
        gpus = 8 if name.endswith("70b") else 1
        for op, _ in step_operators(model, 1, gpus):
            if isinstance(op, StateUpdate):
                out.add((op.heads, op.dim_head, op.dim_state, op.vector_gate))
    return sorted(out)


def attention_shapes() -> list:
    """Distinct ``(heads per GPU, dim_head)`` of the attention layers."""
    out = set()
    for name, model in load_models().items():
        gpus = 8 if name.endswith("70b") else 1
        for op, _ in step_operators(model, 1, gpus):
            if isinstance(op, Attention):
                out.add((op.heads, op.dim_head))
    return sorted(out)


# -- the suite (CUDA) ------------------------------------------------------------------------
def _torch_cuda():
    try:
        import torch
    except ImportError:
        raise CalibrationUnavailable("PyTorch is not installed") from None
    if not torch.cuda.is_available():
        raise CalibrationUnavailable("no CUDA GPU visible to PyTorch "
                                     f"(torch {torch.__version__})")
    return torch


class Bench:
    """Where the micro-benchmarks run: ``torch``, a device and its timer (CUDA events on a
    GPU; ``time.perf_counter`` on the CPU, which only the tests use to exercise the code)."""

    def __init__(self, torch, device: str = "cuda"):
        self.torch, self.device = torch, device

    def time(self, fn, iters: int = 10, warmup: int = 3) -> float:
        """Median seconds of ``fn`` over ``iters`` timed calls after ``warmup`` calls."""
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(iters):
            if self.device == "cpu":
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
                continue
            cuda = self.torch.cuda
            start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e-3)
        return statistics.median(times)

    def free(self) -> None:
        """Return cached device memory between benchmarks."""
        if self.device != "cpu":
            self.ctx.free()


def _bench_memory(ctx: Bench, sizes_mb, records) -> None:
    torch = ctx.torch
    for mb in sizes_mb:
        n = mb * 2 ** 20 // 2
        x = torch.randn(n, device=ctx.device, dtype=torch.float16)
        y = torch.empty_like(x)
        t = ctx.time(lambda: torch.sum(x, dtype=torch.float32))
        records.append({"bench": "read", "shape": f"{mb} MB", "bytes": 2 * n, "seconds": t})
        t = ctx.time(lambda: y.copy_(x))
        records.append({"bench": "copy", "shape": f"{mb} MB", "bytes": 2 * n, "seconds": t})
        del x, y
        ctx.free()


def _bench_read_sms(ctx: Bench, sms: int, records: list, notes: list) -> None:
    torch = ctx.torch
    try:
        import triton
        import triton.language as tl
    except ImportError:
        notes.append("read_sms skipped: Triton is not installed")
        return

    @triton.jit
    def read_kernel(x_ptr, out_ptr, n, per_prog, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        start = pid * per_prog
        for off in range(start, start + per_prog, BLOCK):
            idx = off + tl.arange(0, BLOCK)
            acc += tl.load(x_ptr + idx, mask=idx < n, other=0.0).to(tl.float32)
        tl.store(out_ptr + pid, tl.sum(acc))

    n = 1024 * 2 ** 20 // 2
    x = torch.randn(n, device=ctx.device, dtype=torch.float16)
    for frac in (8, 4, 2, 1):
        progs = max(1, sms // frac)
        out = torch.empty(progs, device=ctx.device, dtype=torch.float32)
        block = 4096
        per = -(-n // progs // block) * block
        t = ctx.time(lambda: read_kernel[(progs,)](x, out, n, per, BLOCK=block))
        records.append({"bench": "read_sms", "shape": f"{progs} programs", "sms": progs,
                        "bytes": 2 * n, "seconds": t})


def _bench_gemm(ctx: Bench, quick: bool, records: list, shapes=None, large=LARGE_GEMMS
                ) -> None:
    torch = ctx.torch
    shapes = gemm_shapes() if shapes is None else shapes
    if quick:
        shapes = shapes[:: max(1, len(shapes) // 12)]
    for k, n in shapes:
        w = torch.randn(k, n, device=ctx.device, dtype=torch.float16)
        for m in GEMM_MS:
            a = torch.randn(m, k, device=ctx.device, dtype=torch.float16)
            t = ctx.time(lambda: torch.matmul(a, w))
            records.append({"bench": "gemm", "shape": f"{m}x{k}x{n}", "m": m, "k": k, "n": n,
                            "seconds": t})
        del w
    for m, k, n in large:
        a = torch.randn(m, k, device=ctx.device, dtype=torch.float16)
        b = torch.randn(k, n, device=ctx.device, dtype=torch.float16)
        t = ctx.time(lambda: torch.matmul(a, b), iters=20, warmup=5)
        records.append({"bench": "gemm", "shape": f"{m}x{k}x{n}", "m": m, "k": k, "n": n,
                        "seconds": t})
    ctx.free()


def _bench_launch(ctx: Bench, records: list) -> None:
    torch = ctx.torch
    tiny = torch.zeros(1, device=ctx.device)

    def loop():
        for _ in range(LAUNCHES):
            tiny.add_(1.0)
    for _ in range(3):
        records.append({"bench": "launch_stream", "shape": f"{LAUNCHES} kernels",
                        "kernels": LAUNCHES, "seconds": ctx.time(loop, iters=3, warmup=1)})
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        loop()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loop()
    for _ in range(3):
        records.append({"bench": "launch_graph", "shape": f"{LAUNCHES} kernels",
                        "kernels": LAUNCHES, "seconds": ctx.time(graph.replay, iters=5)})


def _bench_state(ctx: Bench, batches, records: list, shapes=None) -> None:
    torch = ctx.torch
    for heads, dk, dv, _vector in (state_shapes() if shapes is None else shapes):
        for b in batches:
            bh = b * heads
            if bh * dk * dv * 2 > 8 * 2 ** 30:
                continue
            s = torch.randn(bh, dk, dv, device=ctx.device, dtype=torch.float16)
            d = torch.rand(bh, 1, 1, device=ctx.device, dtype=torch.float16)
            k = torch.randn(bh, dk, 1, device=ctx.device, dtype=torch.float16)
            v = torch.randn(bh, 1, dv, device=ctx.device, dtype=torch.float16)
            q = torch.randn(bh, 1, dk, device=ctx.device, dtype=torch.float16)

            def fp16_step():
                s.mul_(d)                       # read + write S
                s.baddbmm_(k, v)                # read + write S
                return torch.bmm(q, s)          # read S
            shape = f"B{b} H{heads} {dk}x{dv}"
            records.append({"bench": "state_update", "format": "fp16", "shape": shape,
                            "values": bh * dk * dv, "model": "passes", "passes_read": 3,
                            "passes_written": 2, "kernels": 3,
                            "seconds": ctx.time(fp16_step)})
            if dv % INT8_GROUP == 0:
                qs = torch.randint(-127, 128, (bh, dk, dv // INT8_GROUP, INT8_GROUP),
                                   device=ctx.device, dtype=torch.int8)
                sc = torch.rand(bh, dk, dv // INT8_GROUP, 1, device=ctx.device)

                def int8_step():
                    f = (qs.float() * sc).view(bh, dk, dv)           # dequantize
                    f.mul_(d.float()).baddbmm_(k.float(), v.float())  # update
                    y = torch.bmm(q.float(), f)
                    g = f.view(bh, dk, dv // INT8_GROUP, INT8_GROUP)
                    sc.copy_(g.abs().amax(-1, keepdim=True).clamp_min(1e-30) / 127.0)
                    qs.copy_(torch.round(g / sc).clamp_(-127, 127).to(torch.int8))
                    return y
                # compared with the model's fused int8 kernel (one read and one write of
                # the int8 state and its scales): the gap is what fusing would save
                records.append({"bench": "state_update", "format": "int8", "shape": shape,
                                "values": bh * dk * dv, "batch": b, "heads": heads,
                                "dim_head": dk, "dim_state": dv, "vector_gate": _vector,
                                "model": "fused", "seconds": ctx.time(int8_step)})
                del qs, sc
            del s
            ctx.free()


def _bench_attention(ctx: Bench, records: list, shapes=None, kv_lens=KV_LENS, b: int = 32
                     ) -> None:
    torch = ctx.torch
    import torch.nn.functional as F
    for heads, dim in (attention_shapes() if shapes is None else shapes):
        for kv_len in kv_lens:
            q = torch.randn(b, heads, 1, dim, device=ctx.device, dtype=torch.float16)
            k = torch.randn(b, heads, kv_len, dim, device=ctx.device, dtype=torch.float16)
            v = torch.randn_like(k)
            t = ctx.time(lambda: F.scaled_dot_product_attention(q, k, v))
            records.append({"bench": "attention", "shape": f"B{b} H{heads} D{dim} KV{kv_len}",
                            "batch": b, "heads": heads, "dim_head": dim, "kv_len": kv_len,
                            "seconds": t})
            del k, v


def _bench_pointwise(ctx: Bench, records: list, batches=(32, 128), widths=(2560, 7680)
                     ) -> None:
    torch = ctx.torch
    import torch.nn.functional as F
    for b in batches:
        for h in widths:
            x = torch.randn(b, h, device=ctx.device, dtype=torch.float16)
            w = torch.ones(h, device=ctx.device, dtype=torch.float16)
            t = ctx.time(lambda: F.rms_norm(x, (h,), w), iters=50)
            records.append({"bench": "rmsnorm", "shape": f"{b}x{h}", "bytes_read": 2 * b * h,
                            "bytes_written": 2 * b * h, "kernels": 1, "seconds": t})
            g = torch.randn(b, 2 * h, device=ctx.device, dtype=torch.float16)
            t = ctx.time(lambda: F.silu(g[:, :h]) * g[:, h:], iters=50)
            records.append({"bench": "silu_gate", "shape": f"{b}x{h}",
                            "bytes_read": 2 * 2 * b * h + 2 * b * h,
                            "bytes_written": 2 * 2 * b * h, "kernels": 2, "seconds": t})


def run_suite(gpu: GpuSpec, quick: bool = False, seed: int = 0) -> dict:
    """Run every micro-benchmark on the current CUDA device; the raw record."""
    torch = _torch_cuda()
    torch.manual_seed(seed)
    props = torch.cuda.get_device_properties(0)
    records, notes = [], []
    ctx = Bench(torch)
    start = time.perf_counter()
    _bench_launch(ctx, records)
    _bench_memory(ctx, QUICK_SIZES_MB if quick else READ_SIZES_MB, records)
    _bench_read_sms(ctx, props.multi_processor_count, records, notes)
    _bench_gemm(ctx, quick, records)
    _bench_state(ctx, (32,) if quick else (32, 128), records)
    _bench_attention(ctx, records)
    _bench_pointwise(ctx, records)
    return {"device": torch.cuda.get_device_name(0), "sms": props.multi_processor_count,
            "memory_gb": props.total_memory / 1e9, "torch": torch.__version__,
            "cuda": torch.version.cuda, "python": platform.python_version(), "seed": seed,
            "gpu_key": gpu.key, "quick": quick, "notes": notes,
            "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "suite_seconds": round(time.perf_counter() - start, 1), "records": records}


def calibrate(out: Path, gpu: GpuSpec, raw_path: Path | None = None, quick: bool = False,
              seed: int = 0) -> dict:
    """Run the suite, fit and write ``out`` (and the raw file); return the parameters."""
    raw_path = raw_path or out.with_suffix(".raw.json")
    raw = run_suite(gpu, quick=quick, seed=seed)
    try:
        return write_outputs(out, raw_path, gpu, raw)
    except (CalibrationError, ConfigError):
        failed = out.with_suffix(".failed.raw.json")
        write_atomic(failed, (json.dumps(raw, indent=1) + "\n").encode("utf-8"))
        raise


def relative_errors(rows: list) -> dict:
    """Mean absolute relative error (%) per micro-benchmark kind."""
    out: dict = {}
    for r in rows:
        out.setdefault(r["bench"], []).append(abs(r["error_pct"]))
    return {k: sum(v) / len(v) for k, v in out.items() if not any(map(math.isnan, v))}
