"""Workload decomposition: parameter counts, operators per layer, tensor parallelism."""

from __future__ import annotations

import pytest

from sysmodel.workload import (AllReduce, Attention, Gemm, StateUpdate, load_models,
                               step_operators)

MODELS = load_models()


@pytest.mark.parametrize("name,nominal", [
    ("retnet-2.7b", 2.7e9), ("gla-2.7b", 2.7e9), ("hgrn2-2.7b", 2.7e9), ("mamba2-2.7b", 2.7e9),
    ("opt-7b", 6.7e9), ("retnet-70b", 70e9), ("gla-70b", 70e9), ("hgrn2-70b", 70e9),
    ("mamba2-70b", 70e9), ("opt-70b", 66e9)])
def test_parameter_counts_near_nominal(name, nominal):
    params = MODELS[name].weight_params()
    assert 0.9 * nominal < params < 1.1 * nominal


def _ops(name, batch=128, gpus=1):
    return step_operators(MODELS[name], batch, gpus)


def test_mamba2_layer_operators():
    ops = _ops("mamba2-2.7b")
    names = [op.name for op, count in ops if count == 64]
    assert names == ["in_norm", "in_proj", "conv1d", "conv_act_dt", "state_update", "gate_norm",
                     "out_proj", "residual"]
    (in_proj,) = [op for op, _ in ops if op.name == "in_proj"]
    assert (in_proj.m, in_proj.k, in_proj.n) == (128, 2560, 2 * 5120 + 2 * 128 + 80)
    (su,) = [op for op, _ in ops if isinstance(op, StateUpdate)]
    assert (su.heads, su.dim_head, su.dim_state, su.values) == (80, 128, 64, 128 * 80 * 128 * 64)


def test_opt_has_attention_and_no_state():
    ops = _ops("opt-7b")
    assert not [op for op, _ in ops if isinstance(op, StateUpdate)]
    (attn,) = [(op, c) for op, c in ops if isinstance(op, Attention)]
    assert attn[1] == 32 and (attn[0].heads, attn[0].dim_head) == (32, 128)


def test_zamba2_mixes_mamba_and_attention():
    ops = _ops("zamba2-7b")
    counts = {type(op).__name__: c for op, c in ops if isinstance(op, (StateUpdate, Attention))}
    assert counts == {"StateUpdate": 81, "Attention": 13}


def test_tensor_parallel_sharding():
    one, eight = _ops("retnet-70b", gpus=1), _ops("retnet-70b", gpus=8)
    su1 = [op for op, _ in one if isinstance(op, StateUpdate)][0]
    su8 = [op for op, _ in eight if isinstance(op, StateUpdate)][0]
    assert (su1.heads, su8.heads) == (10, 2)                   # ceil(10 / 8)
    ffn1 = [op for op, _ in one if op.name == "ffn_up"][0]
    ffn8 = [op for op, _ in eight if op.name == "ffn_up"][0]
    assert ffn8.n * 8 == ffn1.n and isinstance(ffn8, Gemm)
    ars = [(op, c) for op, c in eight if isinstance(op, AllReduce)]
    assert [(op.name, c) for op, c in ars] == [("out_allreduce", 96), ("ffn_allreduce", 96)]
    assert ars[0][0].bytes == 128 * 7680 * 2
    assert not [op for op, _ in one if isinstance(op, AllReduce)]
    mamba = [op.name for op, _ in _ops("mamba2-70b", gpus=8) if isinstance(op, AllReduce)]
    assert mamba == ["out_allreduce"]


def test_state_and_kv_sizes():
    assert MODELS["mamba2-2.7b"].state_values(1) == 64 * 80 * 128 * 64
    assert MODELS["opt-7b"].kv_values(1, 100) == 2 * 32 * 32 * 128 * 100
    assert MODELS["opt-7b"].state_values(4) == 0
