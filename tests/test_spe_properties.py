"""Property-based tests of the SPE arithmetic against the independent scalar reference.

Every property draws operands (MX8 groups over the whole field range: any exponent, both
micro-exponents, saturated/zero/small magnitudes, NaN and zero groups), an arithmetic
configuration (rounding, renormalization, random bits) and the random bits themselves, and
compares every field of ``quant.spe``'s result with ``tests/mx8_reference.py`` (plain Python
integers and fractions, written from the prose of docs/mx8.md).

Example counts: ``LONG_EXAMPLES`` (1000) per property under ``make test-long``
(``pytest -m slow``); in ``make test`` ``FAST_EXAMPLES`` (50), fewer for the state update and
the attention modes (``FAST_STATE_EXAMPLES``, ``FAST_ATTENTION_EXAMPLES``) to keep it fast.

Seed: every property runs with one seed per session, printed in pytest's header
("SPE property seed") and with any falsifying example. Replay a failure with
``SPE_PROPERTY_SEED=<seed> pytest tests/test_spe_properties.py -m slow -k <property>`` (the
example database is off, so the seed alone decides the examples).
"""

from __future__ import annotations

import os
import secrets

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, note, seed, settings, strategies as st

import mx8_reference as ref
from mx8_fields import to_dicts
from quant import spe
from quant.mx8 import MX8, MX8Scalar
from quant.rng import SPERandom

#: The session's seed (drawn and logged in the pytest header by conftest.py; set
#: SPE_PROPERTY_SEED to replay).
SEED = int(os.environ.get("SPE_PROPERTY_SEED") or secrets.randbits(32))
FAST_EXAMPLES = 50
LONG_EXAMPLES = 1000
#: ``make test`` runs fewer examples of the two costly properties (one example of the state
#: update is 16 columns x up to 2 sub-chunks x 3 reference operations)
FAST_STATE_EXAMPLES = 10
FAST_ATTENTION_EXAMPLES = 20
#: examples actually run per property in this session (printed by the long run)
RUN_COUNT: dict[str, int] = {}

COUNTS = [pytest.param(FAST_EXAMPLES, id="fast"),
          pytest.param(LONG_EXAMPLES, id="long", marks=pytest.mark.slow)]


def check_property(name: str, strategy, body, examples: int, shrink: bool = True) -> None:
    """Run ``body(drawn)`` for ``examples`` examples of ``strategy`` with the session seed
    (``shrink=False`` for properties whose examples are too large to shrink quickly: the
    failing example is reported as drawn)."""
    RUN_COUNT[name] = 0
    phases = (Phase.explicit, Phase.generate) + ((Phase.shrink,) if shrink else ())

    @seed(SEED)
    @settings(max_examples=examples, deadline=None, database=None, phases=phases,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(strategy)
    def run(drawn):
        note(f"replay: SPE_PROPERTY_SEED={SEED}")
        RUN_COUNT[name] += 1
        body(drawn)

    run()
    print(f"{name}: {RUN_COUNT[name]} examples, seed {SEED}")


# ------------------------------------------------------------------------------ strategies

MAGS = st.one_of(st.integers(0, 63), st.sampled_from([0, 1, 2, 31, 32, 62, 63]))


@st.composite
def groups(draw, exp=st.integers(0, 254)):
    """A canonical MX8 group dict (sometimes the NaN or the zero group)."""
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return ref.copy_group(ref.NAN_GROUP)
    if kind == 1:
        return ref.copy_group(ref.ZERO_GROUP)
    m = draw(st.lists(MAGS, min_size=16, max_size=16))
    s = draw(st.lists(st.integers(0, 1), min_size=16, max_size=16))
    mu = draw(st.lists(st.integers(0, 1), min_size=8, max_size=8))
    return ref.canonical(draw(exp), mu, s, m)


@st.composite
def near_groups(draw, n: int):
    """``n`` groups whose exponents lie within a few binades of each other (realistic
    operands of the adder and of the state update), anywhere in the exponent range."""
    centre = draw(st.integers(0, 254))
    exp = st.integers(0, 24).map(lambda d: min(254, max(0, centre + d - 12)))
    return [draw(groups(exp)) for _ in range(n)]


CONFIGS = st.builds(spe.SPEConfig, rounding=st.sampled_from(["nearest", "stochastic"]),
                    renorm=st.sampled_from(["lod", "fixed"]), rbits=st.integers(1, 8))


def rands(cfg: spe.SPEConfig, n: int = 16):
    return st.lists(st.integers(0, (1 << cfg.rbits) - 1), min_size=n, max_size=n)


def to_mx8(gs: list, lead: tuple = ()) -> MX8:
    """Reference group dicts (row-major) -> an MX8 tensor of leading shape ``lead``."""
    shape = tuple(lead) + (len(gs) // _prod(lead),)
    t = lambda key, *tail: torch.tensor([g[key] for g in gs],  # noqa: E731
                                        dtype=torch.int32).reshape(*shape, *tail)
    return MX8(t("E"), t("mu", 8), t("s", 16), t("m", 16))


def _prod(shape) -> int:
    out = 1
    for x in shape:
        out *= x
    return out


def scalar_group(e: int, mu: int, s: int, m: int) -> dict:
    """The multiplier operand of a broadcast scalar: 16 copies, its exponent and mu."""
    return {"E": e, "mu": [mu] * 8, "s": [s] * 16, "m": [m] * 16}


# ------------------------------------------------------------------------------ properties

@st.composite
def binary_case(draw, near: bool):
    cfg = draw(CONFIGS)
    a, b = draw(near_groups(2)) if near else (draw(groups()), draw(groups()))
    return cfg, a, b, draw(rands(cfg))


def _binary(op, ref_op):
    def body(case):
        cfg, a, b, r = case
        bits = None if cfg.rounding == "nearest" else torch.tensor(r, dtype=torch.int32)
        got = to_dicts(op(to_mx8([a]), to_mx8([b]), cfg, bits))[0]
        want = ref_op(a, b, cfg.renorm, cfg.rounding, cfg.rbits,
                      r if cfg.rounding == "stochastic" else None)
        assert got == want, (cfg, a, b, r)
    return body


@pytest.mark.parametrize("examples", COUNTS)
def test_multiplier_property(examples):
    check_property("multiplier", st.one_of(binary_case(False), binary_case(True)),
                   _binary(spe.mul, ref.mul_group), examples)


@pytest.mark.parametrize("examples", COUNTS)
def test_adder_property(examples):
    check_property("adder", st.one_of(binary_case(True), binary_case(False)),
                   _binary(spe.add, ref.add_group), examples)


@st.composite
def dot_case(draw):
    return [draw(st.one_of(near_groups(2), st.lists(groups(), min_size=2, max_size=2)))
            for _ in range(2)]


def _dot_body(case):
    a, b = case
    got = spe.dot(to_mx8(a), to_mx8(b))
    Y, X = ref.dot_subchunk(a, b)
    assert (int(got.y_int[0]), int(got.x_exp[0])) == (Y, X), (a, b)
    assert -(1 << (spe.DOT_Y_BITS - 1)) <= Y < 1 << (spe.DOT_Y_BITS - 1)  # fits the port


@pytest.mark.parametrize("examples", COUNTS)
def test_dot_product_property(examples):
    check_property("dot product", dot_case(), _dot_body, examples)


@st.composite
def state_case(draw):
    """One head: 16 state columns (one MX8 group of ``v``) over one or two sub-chunks of
    dim_head, all operands within a few binades, LFSR seeds per site."""
    cfg = draw(CONFIGS)
    g = 2 * draw(st.integers(1, 2))  # groups along dim_head
    S = draw(near_groups(16 * g))
    d, k, q = (draw(near_groups(g)) for _ in range(3))
    v = draw(groups())
    seeds = draw(st.lists(st.integers(1, (1 << 31) - 1), min_size=3, max_size=3))
    return cfg, g, S, d, k, v, q, seeds


def column_scalar(v: dict, j: int) -> dict:
    """Value ``j`` of group ``v`` as the multiplier's scalar operand."""
    return scalar_group(v["E"], v["mu"][j // 2], v["s"][j], v["m"][j])


def _events(cfg, rnd, site):
    """The next rounding event's 32 lanes of ``site`` (None for round-to-nearest)."""
    return None if cfg.rounding == "nearest" else rnd[site].draw((32,), cfg.rbits).tolist()


def _half(r, h):
    return None if r is None else r[16 * h:16 * h + 16]


def _state_body(case):
    cfg, g, S, d, k, v, q, seeds = case
    site_seeds = dict(zip(("mul_decay", "mul_outer", "add"), seeds))
    out = spe.state_update(to_mx8(S, (16,)), to_mx8(d), to_mx8(k), to_mx8([v]), to_mx8(q),
                           cfg, SPERandom.lfsr(site_seeds))
    # reference, in the SPU's order: chunk (sub-chunk range) then column; 32 lanes per event
    rnd = SPERandom.lfsr(site_seeds)
    state = to_dicts(out.state)
    args = (cfg.renorm, cfg.rounding, cfg.rbits)
    for c in range(g // 2):
        for j in range(16):
            r_d, r_o, r_a = (_events(cfg, rnd, s) for s in ("mul_decay", "mul_outer", "add"))
            new = []
            for h in range(2):
                gi = 2 * c + h
                dec = ref.mul_group(d[gi], S[j * g + gi], *args, _half(r_d, h))
                outer = ref.mul_group(k[gi], column_scalar(v, j), *args, _half(r_o, h))
                new.append(ref.add_group(dec, outer, *args, _half(r_a, h)))
                assert state[j * g + gi] == new[-1], (c, j, h)
            Y, X = ref.dot_subchunk(new, q[2 * c:2 * c + 2])
            assert (int(out.partial.y_int[j, c]), int(out.partial.x_exp[j, c])) == (Y, X)
    want_y = [sum(ref.dot_value(int(out.partial.y_int[j, c]), int(out.partial.x_exp[j, c]))
                  for c in range(g // 2)) for j in range(16)]
    for j in range(16):  # y: the float64 sum of the column's partials, NaN if any is NaN
        if any(int(out.partial.x_exp[j, c]) == spe.DOT_X_NAN for c in range(g // 2)):
            assert torch.isnan(out.y[j])
        else:
            assert float(out.y[j]) == pytest.approx(float(want_y[j]), rel=1e-12, abs=0.0)


@pytest.mark.parametrize("examples", COUNTS)
def test_state_update_property(examples):
    check_property("state update", state_case(), _state_body,
                   FAST_STATE_EXAMPLES if examples == FAST_EXAMPLES else examples, shrink=False)


@st.composite
def attention_case(draw):
    """``seq`` tokens of one sub-chunk: keys/values, a query, one score group per token."""
    cfg = draw(CONFIGS)
    seq = draw(st.integers(1, 4))
    keys = draw(near_groups(2 * seq))
    vals = draw(near_groups(2 * seq))
    q = draw(near_groups(2))
    scores = draw(groups())  # token t's score: value t of this group
    seeds = draw(st.lists(st.integers(1, (1 << 31) - 1), min_size=3, max_size=3))
    return cfg, seq, keys, vals, q, scores, seeds


def _attention_body(case):
    cfg, seq, keys, vals, q, scores, seeds = case
    site_seeds = dict(zip(("mul_decay", "mul_outer", "add"), seeds))
    score = spe.attention_score(to_mx8(keys, (seq,)), to_mx8(q))
    for t in range(seq):
        Y, X = ref.dot_subchunk(keys[2 * t:2 * t + 2], q)
        assert (int(score.y_int[t, 0]), int(score.x_exp[t, 0])) == (Y, X), t
    sc = to_mx8([scores]).scalars()
    sc = MX8Scalar(*(f[:seq] for f in (sc.exp, sc.mu, sc.sign, sc.mag)))
    acc = spe.attention_attend(to_mx8(vals, (seq,)), sc, cfg, SPERandom.lfsr(site_seeds))
    rnd = SPERandom.lfsr(site_seeds)
    args = (cfg.renorm, cfg.rounding, cfg.rbits)
    # the attend order (docs/mx8.md section 8): token t into partial t mod ATTEND_PARTIALS
    # (seq <= 4 tokens: one row), then the partials folded into partial 0 after the last token
    assert seq <= spe.ATTEND_ROW and spe.ATTEND_PARTIALS == 2
    zero = ref.copy_group(ref.ZERO_GROUP)
    parts = [[ref.copy_group(zero), ref.copy_group(zero)] for _ in range(2)]
    for t in range(seq):
        r_o, r_a = _events(cfg, rnd, "mul_outer"), _events(cfg, rnd, "add")
        p = parts[t % 2]
        for h in range(2):
            prod = ref.mul_group(vals[2 * t + h], column_scalar(scores, t), *args,
                                 _half(r_o, h))
            p[h] = ref.add_group(p[h], prod, *args, _half(r_a, h))
    r_f = _events(cfg, rnd, "add")
    want = [ref.add_group(parts[0][h], parts[1][h], *args, _half(r_f, h)) for h in range(2)]
    assert to_dicts(acc) == want


@pytest.mark.parametrize("examples", COUNTS)
def test_attention_modes_property(examples):
    check_property("attention modes", attention_case(), _attention_body,
                   FAST_ATTENTION_EXAMPLES if examples == FAST_EXAMPLES else examples,
                   shrink=False)
