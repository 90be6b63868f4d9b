"""GPU model: roofline bounds, SM quantization, tiling traffic, state and attention traffic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sysmodel.config import CONFIG_DIR
from sysmodel.gpu import (allreduce_cost, allreduce_time_s, attention_cost, elementwise_cost,
                          gemm_cost, state_traffic_bytes, state_update_cost)
from sysmodel.hardware import GemmTiles, load_hardware
from sysmodel.system import Point, evaluate
from sysmodel.workload import AllReduce, Attention, StateUpdate

HW = load_hardware(timing_files=(CONFIG_DIR / "spu_timing_defaults.yaml",))
A100 = HW.gpu("A100")


def one_tile(gpu, m=128, n=128, split_k=1):
    return dataclasses.replace(gpu, gemm_tiles=GemmTiles((m,), (n,), (split_k,)))


@pytest.mark.parametrize("m,k,n", [(32, 2560, 2560), (128, 2560, 10576), (128, 15360, 7680),
                                   (4096, 4096, 4096), (1, 4096, 50272)])
def test_gemm_respects_roofline(m, k, n):
    c = gemm_cost(A100, m, k, n)
    compulsory = 2 * (k * n + m * k + m * n)
    assert c.time_s >= 2 * m * k * n / A100.tensor_flops * (1 - 1e-12)
    assert c.time_s >= compulsory / A100.dram_bytes_per_s * (1 - 1e-12)
    assert c.dram_bytes >= compulsory and c.ops == 2 * m * k * n


def test_gemm_sm_count_quantization():
    gpu = dataclasses.replace(one_tile(A100), dram_gbs=A100.dram_gbs * 100)   # math-bound
    k, m = 8192, 128
    per_tile = 2 * 128 * 128 * k / (A100.tensor_flops / A100.sms)
    full = gemm_cost(gpu, m, k, 128 * A100.sms)          # exactly one wave
    over = gemm_cost(gpu, m, k, 128 * (A100.sms + 1))    # one tile more: two waves
    assert full.time_s == pytest.approx(per_tile)
    assert over.time_s == pytest.approx(2 * per_tile)
    assert over.time_s > 1.9 * full.time_s


def test_gemm_tiling_rereads_weights_that_do_not_fit_l2():
    gpu = one_tile(A100, m=64)
    k, n = 8192, 8192                     # 134 MB of weights > L2 / 2
    c = gemm_cost(gpu, 256, k, n)         # 4 rows of tiles: weights read 4 times
    assert c.dram_bytes == 4 * k * n * 2 + 256 * k * 2 + 256 * n * 2
    small = gemm_cost(gpu, 256, 1024, 1024)   # 2 MB of weights: re-reads hit L2
    assert small.dram_bytes == 1024 * 1024 * 2 + 256 * 1024 * 2 + 256 * 1024 * 2
    assert small.l2_bytes == 3 * 1024 * 1024 * 2 + 7 * 256 * 1024 * 2   # 8 column tiles


def test_elementwise_is_bandwidth_bound():
    c = elementwise_cost(A100, 1e9, 1e9, 1e9)
    assert c.time_s == pytest.approx(2e9 / (1935e9 * A100.dram_fraction))
    assert A100.dram_fraction == 0.93      # 1.80 TB/s measured over the brief's 1935 GB/s


def test_gpu_q_state_traffic_is_int8_with_scales():
    op = StateUpdate("su", 128, 80, 128, 64, vector_gate=False)
    fp16, int8 = HW.formats["fp16"], HW.formats["int8"]
    # int8 values plus one fp32 scale per 32 values: 9 bits per value (quant/formats.py)
    assert state_traffic_bytes(op, int8) == 9 / 16 * state_traffic_bytes(op, fp16)
    gpu, q = state_update_cost(A100, op, fp16), state_update_cost(A100, op, int8)
    operands = op.input_bytes + op.output_bytes
    assert q.dram_bytes - operands == pytest.approx(9 / 16 * (gpu.dram_bytes - operands))
    assert gpu.dram_bytes - operands == 2 * op.values * 2      # read + write of fp16


def test_state_update_time_linear_in_state_bytes():
    fp16 = HW.formats["fp16"]
    times = [state_update_cost(A100, StateUpdate("su", b, 10, 256, 512, False), fp16).time_s
             for b in (16, 32, 64, 128)]
    assert np.allclose(np.array(times) / times[0], [1, 2, 4, 8])


def test_attention_grows_linearly_with_kv_length():
    op = Attention("attn", 64, 32, 128)
    lens = np.arange(2049, 4097)
    c = attention_cost(A100, op, HW.formats["fp16"], lens)
    steps = np.diff(c.time_s)
    assert np.allclose(steps, steps[0]) and steps[0] > 0
    kv_bytes = 2 * 64 * 32 * 128 * 2          # K and V per token
    assert steps[0] == pytest.approx(kv_bytes / A100.dram_bytes_per_s)


def test_allreduce_follows_measured_points():
    link = HW.gpu("H100").interconnect
    for size, us in link.allreduce_points:          # exact at every measured size
        assert allreduce_cost(HW.gpu("H100"), AllReduce("ar", size), 8).time_s == \
            pytest.approx(us * 1e-6)
    # the figures: about 20 us at 256-512 KB, about 40 us at 2 MB (8 GPUs, NVLink)
    for size, lo, hi in ((262144, 18, 22), (524288, 18, 22), (2097152, 38, 43)):
        assert lo < allreduce_cost(A100, AllReduce("ar", size), 8).time_s * 1e6 < hi
    op = AllReduce("ar", 1_000_000)
    c = allreduce_cost(A100, op, 8)
    (s0, t0), (s1, t1) = link.allreduce_points[1:3]   # 512 KB .. 1 MB segment
    assert c.time_s == pytest.approx((t0 + (t1 - t0) * (1e6 - s0) / (s1 - s0)) * 1e-6)
    assert c.link_bytes == pytest.approx(2 * 7 / 8 * 1e6 * 8)
    assert allreduce_cost(A100, op, 1).time_s == 0.0


def test_allreduce_beyond_table_uses_bus_bandwidth():
    link = A100.interconnect                        # A100: points up to 2 MB, then 200 GB/s
    last, t_last = link.allreduce_points[-1]
    big = 64 * 2 ** 20
    t = allreduce_time_s(link, big, 8)
    assert t == pytest.approx(t_last * 1e-6 + 2 * 7 / 8 * (big - last) / 200e9)
    # a 4-GPU group moves 2*3/4 instead of 2*7/8 of the message: scaled onto the 8-GPU points
    assert allreduce_time_s(link, 1e6, 4) == pytest.approx(
        allreduce_time_s(link, 1e6 * (6 / 4) / (14 / 8), 8))
    assert allreduce_time_s(link, 1000, 8) == pytest.approx(link.allreduce_points[0][1] * 1e-6)


def _faster_memory(factor: float):
    gpus = {}
    for key, g in HW.gpus.items():
        mem = dataclasses.replace(g.memory, clock_ghz=g.memory.clock_ghz * factor)
        gpus[key] = dataclasses.replace(g, dram_gbs=g.dram_gbs * factor, memory=mem)
    return dataclasses.replace(HW, gpus=gpus)


@pytest.mark.parametrize("system", ["GPU", "GPU+Q", "GPU+PIM", "Pimba"])
@pytest.mark.parametrize("model", ["mamba2-2.7b", "opt-7b"])
def test_throughput_rises_with_bandwidth(system, model):
    point = Point(model, system, batch_size=64, output_len=256)
    slow = evaluate(point, HW).tokens_per_s
    fast = evaluate(point, _faster_memory(1.5)).tokens_per_s
    assert fast > 1.1 * slow
