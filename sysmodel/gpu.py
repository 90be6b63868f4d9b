"""GPU device model: per-operator roofline with tiling-aware DRAM traffic.

* GEMM: the output is cut into ``tm x tn`` tiles, the reduction into ``split_k`` slices; tiles
  run in waves of one tile per SM (SM-count quantization: ``ceil(tiles / SMs)`` waves, each as
  long as one tile's math at the per-SM rate). A weight panel is re-read once per row of tiles
  and an activation panel once per column of tiles, unless that operand fits in half of L2,
  in which case the re-reads hit L2. Split-K partials (fp32) stay in L2. The time is the
  larger of math and DRAM time; the tile shape with the least time is used.
* Element-wise: bytes / bandwidth or ops / vector rate, whichever is larger.
* State update: a read-modify-write of the whole state plus its operands; the state is stored
  in the system's state format (8-bit halves the state traffic).
* Attention: the new token's K/V are appended and the whole KV cache is read once
  (a fused decode kernel); KV length grows per step.
* All-reduce: measured NCCL times (``interconnect.yaml``) interpolated in the message size:
  each segment between two measured sizes has its own latency and bandwidth term (NCCL
  switches protocol with the size); below the first point its time, beyond the last one the
  bus bytes ``2 (n-1) / n`` of the message over the measured bus bandwidth. A group of another
  size sees the message scaled by its ring factor relative to the measurement's.
* Every kernel also pays a fixed cost (:meth:`GpuSpec.kernel_s`), charged per kernel of the
  workload's kernel list by :mod:`sysmodel.system`, not here.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .cost import Cost
from .hardware import GpuSpec, LinkSpec, NumberFormat
from .workload import ACT_BYTES, AllReduce, Attention, Elementwise, Gemm, StateUpdate

#: Operations per state value of a state update: decay multiply, outer-product multiply-add,
#: output dot-product multiply-add.
STATE_OPS = 5
#: Extra operations per value when the state is stored quantized (dequantize, requantize).
QUANT_OPS = 3
#: Operations per KV element of decode attention (score and attend multiply-adds).
ATTN_OPS = 2
#: Softmax operations per score.
SOFTMAX_OPS = 5
#: Split-K partial sums are fp32.
PARTIAL_BYTES = 4


@lru_cache(maxsize=4096)
def gemm_cost(gpu: GpuSpec, m: int, k: int, n: int) -> Cost:
    """Cost of an ``m x k @ k x n`` fp16 GEMM on ``gpu`` with the best tile shape."""
    tiles = gpu.gemm_tiles
    tm = np.array(tiles.m, dtype=np.float64)[:, None, None]
    tn = np.array(tiles.n, dtype=np.float64)[None, :, None]
    sk = np.array(tiles.split_k, dtype=np.float64)[None, None, :]
    rows, cols = np.ceil(m / tm), np.ceil(n / tn)
    n_tiles = rows * cols * sk
    waves = np.ceil(n_tiles / gpu.sms)
    tile_flops = 2.0 * tm * tn * np.ceil(k / sk)
    t_math = waves * tile_flops / (gpu.tensor_flops / gpu.sms)
    w_bytes, a_bytes, o_bytes = k * n * ACT_BYTES, m * k * ACT_BYTES, m * n * ACT_BYTES
    half_l2 = gpu.l2_bytes / 2.0
    w_reads, a_reads = w_bytes * rows, a_bytes * cols
    w_dram = w_bytes if w_bytes <= half_l2 else w_reads
    a_dram = a_bytes if a_bytes <= half_l2 else a_reads
    dram = w_dram + a_dram + o_bytes
    l2 = (w_reads - w_dram) + (a_reads - a_dram) + np.where(
        sk > 1, 2.0 * m * n * PARTIAL_BYTES * sk, 0.0)
    t_mem = dram / gpu.dram_bytes_per_s
    time = np.maximum(t_math, t_mem)
    best = np.unravel_index(int(np.argmin(time)), time.shape)
    dram_b = np.broadcast_to(dram, time.shape)[best]
    l2_b = np.broadcast_to(l2, time.shape)[best]
    return Cost(time_s=float(time[best]), dram_bytes=float(dram_b), l2_bytes=float(l2_b),
                ops=2.0 * m * k * n)


def elementwise_cost(gpu: GpuSpec, read: float, written: float, ops: float) -> Cost:
    """Cost of a bandwidth-bound element-wise operator (vectorised over its arguments)."""
    traffic = np.asarray(read, dtype=np.float64) + written
    time = np.maximum(traffic / gpu.dram_bytes_per_s, np.asarray(ops) / gpu.vector_flops)
    return Cost(time_s=time, dram_bytes=traffic, ops=ops)


def state_update_cost(gpu: GpuSpec, op: StateUpdate, state: NumberFormat) -> Cost:
    """State update on the GPU: read and write every state value, plus operands."""
    state_bytes = op.values * state.bytes_per_value
    ops = op.values * (STATE_OPS + (QUANT_OPS if state.bits_per_value < 16 else 0))
    return elementwise_cost(gpu, state_bytes + op.input_bytes, state_bytes + op.output_bytes,
                            ops)


def state_traffic_bytes(op: StateUpdate, state: NumberFormat) -> float:
    """DRAM bytes of the state itself in a GPU state update (read + write)."""
    return 2.0 * op.values * state.bytes_per_value


def attention_cost(gpu: GpuSpec, op: Attention, kv: NumberFormat, kv_len: np.ndarray) -> Cost:
    """Decode attention on the GPU over KV lengths ``kv_len`` (one entry per step)."""
    rows = op.batch * op.heads
    kv_bytes = 2.0 * rows * np.asarray(kv_len, dtype=np.float64) * op.dim_head * \
        kv.bytes_per_value
    append = 2.0 * rows * op.dim_head * kv.bytes_per_value
    q_out = 2.0 * rows * op.dim_head * ACT_BYTES
    ops = rows * np.asarray(kv_len, dtype=np.float64) * (2 * ATTN_OPS * op.dim_head
                                                         + SOFTMAX_OPS)
    return elementwise_cost(gpu, kv_bytes + q_out / 2.0, append + q_out / 2.0, ops)


def ring_factor(gpus: int) -> float:
    """Bus bytes per message byte of a ring all-reduce over ``gpus`` GPUs."""
    return 2.0 * (gpus - 1) / gpus


def allreduce_time_s(link: LinkSpec, nbytes: float, gpus: int) -> float:
    """Time of an all-reduce of ``nbytes`` over ``gpus`` GPUs (see the module docstring)."""
    if gpus <= 1:
        return 0.0
    size = nbytes * ring_factor(gpus) / ring_factor(link.allreduce_gpus)
    sizes = [b for b, _ in link.allreduce_points]
    times = [t for _, t in link.allreduce_points]
    if size <= sizes[-1]:
        return float(np.interp(size, sizes, times)) * 1e-6
    extra = (size - sizes[-1]) * ring_factor(link.allreduce_gpus)
    return times[-1] * 1e-6 + extra / (link.allreduce_busbw_gbs * 1e9)


def allreduce_cost(gpu: GpuSpec, op: AllReduce, gpus: int) -> Cost:
    """All-reduce of ``op.bytes`` over ``gpus`` GPUs: measured time, ring traffic."""
    if gpus <= 1:
        return Cost()
    per_gpu = ring_factor(gpus) * op.bytes
    return Cost(time_s=allreduce_time_s(gpu.interconnect, op.bytes, gpus),
                link_bytes=per_gpu * gpus, ops=op.bytes / gpus * (gpus - 1))


def gpu_cost(gpu: GpuSpec, op, gpus: int, state: NumberFormat, kv: NumberFormat,
             kv_len: np.ndarray) -> Cost:
    """Cost of any operator on the GPU."""
    if isinstance(op, Gemm):
        return gemm_cost(gpu, op.m, op.k, op.n)
    if isinstance(op, Elementwise):
        return elementwise_cost(gpu, op.bytes_read, op.bytes_written, op.ops)
    if isinstance(op, StateUpdate):
        return state_update_cost(gpu, op, state)
    if isinstance(op, Attention):
        return attention_cost(gpu, op, kv, kv_len)
    if isinstance(op, AllReduce):
        return allreduce_cost(gpu, op, gpus)
    raise TypeError(f"no GPU cost for {type(op).__name__}")
