"""Operand-class coverage (cosim/coverage.py) and the bulk mode (cosim/bulk.py).

Fast: the enumeration hits every bin of every class of each MX8 unit kind (with the units' own
PRBS31 seeds for the random-bit bins); the labels are right on hand-made operands (the worked
examples of docs/mx8.md); the directed prefix of ``make_batch`` is the enumeration; the
generated wrapper has the unit's ports. Slow: bulk runs pass on both simulators, catch an RTL
mutant and a reference mutant, and the long bulk regression (1 M vectors, Verilator).
"""

from __future__ import annotations

import pytest
import torch

from cosim.coverage import CLASSES, Coverage, class_bins, enumerate_batch, label_batch
from cosim.mx_vectors import Batch, Expect, KINDS, make_batch
from quant.mx8 import EXP_NAN, GROUP, MX8, PAIRS, MX8Scalar


def _unit(kind):
    from hw.export import UNITS, load_units

    load_units()
    return UNITS[{"mul": "mx_mul", "mul_scalar": "mx_mul_scalar", "add": "mx_add",
                  "dot": "mx_dot"}[kind]]()


@pytest.mark.parametrize("kind", KINDS)
def test_enumeration_covers_every_class(kind):
    unit = _unit(kind)
    batch = enumerate_batch(kind)
    model = Expect(kind) if kind == "dot" else Expect(kind, rbits=unit.rbits,
                                                       renorm=unit.renorm, seed=unit.seed)
    model.keep_draws = True
    model(batch)
    cov = Coverage(kind)
    cov.add(label_batch(batch, rand=model.last_draws()))
    table = cov.table()
    assert set(table) == set(CLASSES[kind])
    missing = {c: r["missing"] for c, r in table.items() if r["hit"] != r["bins"]}
    assert not missing, missing
    assert all(r["vectors"] > 0 for r in table.values())
    assert cov.total == len(batch) < 400        # packed: 4096 magnitude pairs in 128 vectors


def test_directed_prefix_is_the_enumeration(gen):
    for kind in KINDS:
        enum = enumerate_batch(kind)
        head = make_batch(kind, 50, gen, directed=True)
        assert torch.equal(head.a.mag, enum.a.mag[:50])
        longer = make_batch(kind, len(enum) + 30, gen, directed=True)
        assert len(longer) == len(enum) + 30
        assert torch.equal(longer.stoch[:len(enum)], enum.stoch)


def test_random_batches_are_labelled(gen):
    """Random vectors count too: a random batch hits many bins of every common class."""
    cov = Coverage("add")
    cov.add(label_batch(make_batch("add", 1000, gen)))
    t = cov.table()
    assert t["mag_pair"]["hit"] > 1500 and t["sign_pair"]["hit"] == 4
    assert t["special_group"]["vectors"] > 0 and t["exp_diff"]["hit"] > 20


def _mx(exp, mags, signs=None, mu=None, n=1):
    """One-vector MX8 operand: ``exp`` per group (2), lane magnitudes (list, rest 0)."""
    e = torch.tensor([exp], dtype=torch.int32).reshape(n, 2)
    mag = torch.zeros((n, 2, GROUP), dtype=torch.int32)
    sign = torch.zeros_like(mag)
    m = torch.zeros((n, 2, PAIRS), dtype=torch.int32)
    for g, vals in enumerate(mags):
        mag[0, g, :len(vals)] = torch.tensor(vals)
    for g, vals in enumerate(signs or []):
        sign[0, g, :len(vals)] = torch.tensor(vals)
    for g, vals in enumerate(mu or []):
        m[0, g, :len(vals)] = torch.tensor(vals)
    return MX8(e, m, sign, mag)


def _bins(kind, labels, cls):
    names = class_bins(kind)[cls]
    return {names[i] for i in labels[cls].flatten().tolist() if i >= 0}


def _batch(kind, a, b, stoch=False):
    return Batch(kind, a, b, torch.tensor([stoch]), torch.zeros(1, dtype=torch.int32))


def test_labels_of_the_adder_examples():
    """docs/mx8.md section 6: the worked example, cancellation, carry; saturation; NaN."""
    a = _mx([127, 127], [[50, 20, 31, 16], [40, 33]], [[0, 0, 1, 0]], [[0, 1]])
    b = _mx([124, 127], [[63, 40, 37, 45], [38, 30]], [[0, 1, 0, 1], [1, 1]], [[0, 1]])
    lab = label_batch(_batch("add", a, b))
    assert {"d=3", "d=0"} <= _bins("add", lab, "exp_diff")
    # example: shifts a 0 and 1, b 3 and 4; the cancelling group 0
    assert {"s=0", "s=1", "s=3", "s=4"} <= _bins("add", lab, "align_shift")
    assert "renorm_left" in _bins("add", lab, "sum")        # [40, 33] - [38, 30]
    assert "carry" not in _bins("add", lab, "sum")
    assert _bins("add", lab, "sign_pair") == {"++", "+-", "-+"}
    carry = label_batch(_batch("add", _mx([127, 0], [[63, 60]]), _mx([127, 0], [[63, 10]])))
    assert "carry" in _bins("add", carry, "sum")
    assert "zero_both" in _bins("add", carry, "special_group")   # group 1: both zero
    sat = label_batch(_batch("add", _mx([127, 5], [[63], [1]]), _mx([126, 5], [[1], [1]])))
    assert "saturate" in _bins("add", sat, "sum")
    assert "d=1" in _bins("add", sat, "exp_diff")
    nan = label_batch(_batch("add", _mx([EXP_NAN, 127], [[1], [1]]), _mx([3, 127], [[], [2]])))
    assert _bins("add", nan, "special_group") == {"nan_a_zero_b"}
    assert "1,2" in _bins("add", nan, "mag_pair") and "1,0" not in _bins("add", nan, "mag_pair")


def test_labels_of_the_multiplier_and_dot_examples():
    """docs/mx8.md sections 5 and 7: the worked examples."""
    a = _mx([128, 1], [[40, 63, 20, 33], [5]], [[0, 1]], [[0, 1]])
    b = _mx([126, 1], [[50, 45, 60, 7], [5]], [[0, 0, 1, 0]], [[1, 1]])
    lab = label_batch(_batch("mul", a, b, stoch=True))
    assert "Ep=127" not in class_bins("mul")["exp_sum"]          # mid-range: one bin
    assert "Ep=mid" in _bins("mul", lab, "exp_sum")
    assert "Ep<-8" in _bins("mul", lab, "exp_sum")               # group 1: 1 + 1 - 127
    assert "sh=6" in _bins("mul", lab, "product_shift")         # bitlen(5670) = 13
    assert {"0,0", "0,1", "1,1"} == _bins("mul", lab, "mu_pair")
    assert {"40,50", "63,45", "20,60", "33,7"} <= _bins("mul", lab, "mag_pair")
    assert _bins("mul", lab, "rounding") == {"stochastic"}
    assert "1,1" in _bins("mul", lab, "exp_extreme") and "mid,mid" in _bins("mul", lab,
                                                                           "exp_extreme")
    a = _mx([127, 120], [[32, 16], [63]])
    b = _mx([128, 127], [[40, 50], [33]], [[0, 1]], [[1]])
    lab = label_batch(_batch("dot", a, b))
    assert _bins("dot", lab, "group_exp_diff") == {"d=8"}         # X0 = 255, X1 = 247
    assert _bins("dot", lab, "dot_sum") == {"positive"}           # exact: 8316 << 8 >> 8
    # the scalar broadcast of mul_scalar: (m_a, m_b) of every lane against the scalar
    s = MX8Scalar(*(torch.tensor([v], dtype=torch.int32) for v in (130, 1, 1, 9)))
    lab = label_batch(_batch("mul_scalar", _mx([127, 127], [[3, 4]]), s))
    assert {"3,9", "4,9", "0,9"} == _bins("mul_scalar", lab, "mag_pair")
    assert _bins("mul_scalar", lab, "sign_pair") == {"+-"}
    assert _bins("mul_scalar", lab, "mu_pair") == {"0,1"}


def test_noncanonical_labels():
    a = _mx([77, 127], [[], [5]], [[], [0, 1]])
    lab = label_batch(_batch("mul", a, _mx([127, 127], [[1], [1]])))
    assert _bins("mul", lab, "noncanonical") == {"neg_zero", "zero_group_exp"}


def test_wrapper_has_the_units_ports():
    from cosim.bulk import Port, unit_ports, wrapper_verilog

    ins, outs = unit_ports(_unit("mul_scalar"))
    assert Port("i_b", 16) in ins and Port("i_stoch", 1) in ins and outs == [Port("o_y", 256)]
    text = wrapper_verilog("mx_mul_scalar", ins, outs, latency=3)
    assert "module bulk_mx_mul_scalar(" in text and "mx_mul_scalar dut(" in text
    assert '$readmemh("bulk_i_b.hex", m_i_b);' in text and "$writememh" in text
    assert "localparam DRAIN = 11;" in text
    with pytest.raises(ValueError, match="power of two"):
        wrapper_verilog("x", ins, outs, latency=1, depth=1000)


# ---- bulk runs (simulators) ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("unit", ["mx_mul", "mx_mul_scalar", "mx_add", "mx_dot"])
def test_bulk_short(unit, sim):
    """Enumeration plus random vectors through the bulk wrapper; every class covered."""
    from cosim.bulk import run_bulk

    r = run_bulk(unit, name=f"{unit}_bulk_short", sim=sim, vectors=1000)
    assert r.passed and r.mismatches == 0 and r.vectors == 1000
    cov = next(iter(r.benches.values()))["coverage"]
    assert all(row["hit"] == row["bins"] for row in cov.values()), cov


@pytest.mark.slow
def test_bulk_catches_rtl_mutant():
    """The adder with an off-by-one alignment shift (cosim/mutants.py) fails a bulk run."""
    from cosim.bulk import run_bulk
    from cosim.mutants import registered
    from cosim.runner import BUILD_ROOT

    with registered("mx_add_mutant_align", BUILD_ROOT / "verilog") as unit:
        r = run_bulk(unit, name="mx_add_mutant_align_bulk", vectors=600, check=False,
                     record=False)
    (BUILD_ROOT / "verilog" / "bulk" / f"bulk_{unit}.v").unlink(missing_ok=True)
    assert not r.passed and r.mismatches > 0


@pytest.mark.slow
def test_bulk_catches_reference_mutant():
    """Random bits consumed by nearest operations too: the LFSR order is really checked."""
    from cosim.bulk import run_bulk

    r = run_bulk("mx_mul", vectors=600, mutant="stream_on_nearest", check=False)
    assert not r.passed and r.mismatches > 0


@pytest.mark.slow
@pytest.mark.parametrize("unit", ["mx_mul", "mx_mul_scalar", "mx_add", "mx_dot"])
def test_bulk_long(unit):
    """1 M vectors per unit in the bulk mode on Verilator (``make sim-long`` runs the same)."""
    from cosim.benches import TESTBENCHES
    from cosim.bulk import run_bulk

    tb = TESTBENCHES[unit]
    assert tb.bulk and tb.long_vectors >= 1_000_000
    r = run_bulk(unit, name=f"{unit}_long", sim="verilator", vectors=tb.long_vectors)
    assert r.passed and r.mismatches == 0 and r.vectors == tb.long_vectors


def test_update_enumeration_covers_every_class(gen):
    """The SPU's state update (spe_mx8 slices): the enumeration hits every bin of both
    products, and it is the directed prefix of the slice's operation generator."""
    import numpy as np

    from cosim.coverage import enumerate_update, label_update
    from cosim.spe_vectors import make_ops

    words = enumerate_update()
    cov = Coverage("update")
    cov.add(label_update(*words))
    missing = {c: r["missing"] for c, r in cov.table().items() if r["hit"] != r["bins"]}
    assert not missing, missing
    ops = make_ops("mx8", len(words[0]) + 5, np.random.default_rng(1), directed=True)
    assert ops.s[:len(words[0])] == words[0] and ops.v[:len(words[0])] == words[3]
    assert ops.cls[0] == "enumerated" and ops.cls[-1] != "enumerated"
    with pytest.raises(ValueError, match="mx8 only"):
        make_ops("fp16", 3, np.random.default_rng(1), directed=True)


def test_update_labels_are_the_products():
    """decay = d * s and outer = k * v_j: the labels of the port words are those of the
    two multiplications."""
    from cosim.coverage import label_update
    from cosim.mx_vectors import scalar_words, subchunk_words

    d = _mx([127, 127], [[3]])
    s = _mx([EXP_NAN, 127], [[], [5]])
    k = _mx([127, 127], [[7]])
    v = MX8Scalar(*(torch.tensor([v], dtype=torch.int32) for v in (126, 0, 0, 11)))
    lab = label_update(subchunk_words(s), subchunk_words(d), subchunk_words(k),
                       scalar_words(v))
    assert _bins("update", lab, "decay.special_group") == {"nan_b", "zero_a"}  # per group
    assert "7,11" in _bins("update", lab, "outer.mag_pair")
    assert "3,0" not in _bins("update", lab, "decay.mag_pair")     # group 0 of s is NaN
    assert "rounding" not in lab and "decay.rand" not in lab
