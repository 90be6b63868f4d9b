"""The real-model hook: transformers' Mamba-2 generation step through the quantized update."""

import pytest
import torch

try:  # `make setup` installs the study extra: a missing transformers is a failure, not a skip
    import transformers  # noqa: F401
except ImportError as exc:  # pragma: no cover
    raise ImportError("transformers is missing: run `make setup` (installs the [study] extra "
                      "of pyproject.toml)") from exc

from transformers.models.mamba2 import modeling_mamba2  # noqa: E402

from quant.study.mamba2_hook import quantized_mamba2, stepwise_nll, tiny_mamba2  # noqa: E402

SEED = 11


@pytest.fixture(scope="module")
def model_and_ref():
    model = tiny_mamba2(seed=SEED)
    ids = torch.randint(0, 128, (2, 20), generator=torch.Generator().manual_seed(SEED))
    nll, logits = stepwise_nll(model, ids, prompt=4)
    return model, ids, nll, logits


def rel(a, b):
    return float((a - b).norm() / b.norm())


def test_fp32_fakequant_is_bit_identical_and_patch_is_restored(model_and_ref):
    model, ids, nll, ref = model_and_ref
    orig = modeling_mamba2.mamba2_selective_state_update
    with quantized_mamba2("fakequant", "fp32") as step:
        assert modeling_mamba2.mamba2_selective_state_update is step
        _, logits = stepwise_nll(model, ids, prompt=4)
        gen = model.generate(ids[:, :4], max_new_tokens=4, do_sample=False)
    assert modeling_mamba2.mamba2_selective_state_update is orig
    assert step.calls == 2 * (15 + 3)  # 2 layers x (15 cached steps + 3 generated)
    assert torch.equal(logits, ref)
    assert torch.equal(gen, model.generate(ids[:, :4], max_new_tokens=4, do_sample=False))


@pytest.mark.parametrize("kw", [dict(datapath="exact", rounding="stochastic"),
                                dict(datapath="exact", rounding="nearest",
                                     decay="stochastic-carry"),
                                dict(datapath="exact", rounding="stochastic",
                                     decay="feedback", fused=True),
                                dict(datapath="fakequant", fmt="bf16", rounding="nearest")])
def test_quantized_step_is_close_but_not_identical(model_and_ref, kw):
    model, ids, nll, ref = model_and_ref
    with quantized_mamba2(seed=SEED, **kw) as step:
        qnll, logits = stepwise_nll(model, ids, prompt=4)
    assert step.calls == 2 * 15
    err = rel(logits, ref)
    assert 0 < err < 0.05, err
    assert abs(qnll - nll) < 0.05


def test_exact_hook_is_deterministic(model_and_ref):
    model, ids, _, _ = model_and_ref
    runs = []
    for _ in range(2):
        with quantized_mamba2("exact", seed=5):
            runs.append(stepwise_nll(model, ids[:1, :10], prompt=2)[1])
    assert torch.equal(runs[0], runs[1])


def test_bad_option_is_one_line_error():
    with pytest.raises(ValueError, match="renorm must be one of lod,fixed"):
        with quantized_mamba2("exact", renorm="float"):
            pass
