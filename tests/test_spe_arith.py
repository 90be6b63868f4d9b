"""SPE arithmetic (quant.spe) against the scalar reference, plus corner classes."""

import itertools

import pytest
import torch

import mx8_reference as ref
from mx8_fields import random_fields, to_dicts
from quant import mx8, native, spe
from quant.mx8 import MX8
from quant.rng import LFSRStream, SPERandom

CONFIGS = [spe.SPEConfig(rounding=r, renorm=n, rbits=b)
           for r, n, b in [("nearest", "lod", 8), ("nearest", "fixed", 8),
                           ("stochastic", "lod", 8), ("stochastic", "fixed", 8),
                           ("stochastic", "lod", 3)]]
IDS = [f"{c.rounding}-{c.renorm}-r{c.rbits}" for c in CONFIGS]


def rand_bits(cfg, n_groups, seed):
    if cfg.rounding == "nearest":
        return None, [None] * n_groups
    t = LFSRStream(seed).draw((n_groups, 16), cfg.rbits)
    return t.reshape(-1), [row for row in t.tolist()]


@pytest.fixture(params=["native", "eager"])
def update_path(request, monkeypatch):
    """Run a test on both forms of ``spe.state_update``: the compiled kernel
    (``quant.native``) and the eager PyTorch code (``QUANT_NATIVE=0``)."""
    if request.param == "eager":
        monkeypatch.setenv(native.ENV, "0")
    elif native.lib() is None:
        pytest.skip("no C compiler: the compiled state-update kernel is not built")
    return request.param


def flat(m: MX8) -> MX8:
    return m.reshape_lead(-1)


def check_binary(op, ref_op, a, b, cfg, seed=77):
    n = a.exp.numel()
    bits, rows = rand_bits(cfg, n, seed)
    got = to_dicts(op(a, b, cfg, None if bits is None else bits.reshape(a.shape)))
    for i, (ga, gb) in enumerate(zip(to_dicts(a), to_dicts(b))):
        want = ref_op(ga, gb, cfg.renorm, cfg.rounding, cfg.rbits, rows[i])
        assert got[i] == want, (i, ga, gb)


# ------------------------------------------------------------------------- random operands

@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_mul_matches_reference(gen, cfg):
    a = random_fields(gen, (300,), 1)
    b = random_fields(gen, (300,), 1, exp_lo=100, exp_hi=154)
    check_binary(spe.mul, ref.mul_group, a, b, cfg)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_mul_full_exponent_range(gen, cfg):
    a = random_fields(gen, (300,), 1, exp_lo=0, exp_hi=254)
    b = random_fields(gen, (300,), 1, exp_lo=0, exp_hi=254)
    check_binary(spe.mul, ref.mul_group, a, b, cfg)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_add_matches_reference(gen, cfg):
    a = random_fields(gen, (400,), 1, exp_lo=100, exp_hi=140)
    b = random_fields(gen, (400,), 1, exp_lo=100, exp_hi=140)
    check_binary(spe.add, ref.add_group, a, b, cfg)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_add_exponent_differences(gen, cfg):
    """Every exponent difference 0..20 (>= 7 included) in both orders."""
    a = random_fields(gen, (21, 10), 1, exp_lo=120, exp_hi=120)
    b = random_fields(gen, (21, 10), 1, exp_lo=120, exp_hi=120)
    diff = torch.arange(21, dtype=torch.int32)[:, None, None]
    nz = lambda m: (m.mag != 0).any(-1)  # noqa: E731  keep canonical zero groups at E=0
    a = MX8(torch.where(nz(a), a.exp + diff, 0), a.mu, a.sign, a.mag)
    check_binary(spe.add, ref.add_group, flat(a), flat(b), cfg)
    check_binary(spe.add, ref.add_group, flat(b), flat(a), cfg)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_non_canonical_inputs_are_defined(gen, cfg):
    """The spec is total: any bit pattern in, the same result as the reference."""
    a = random_fields(gen, (200,), 1, exp_lo=0, exp_hi=255, canonical=False)
    b = random_fields(gen, (200,), 1, exp_lo=0, exp_hi=255, canonical=False)
    check_binary(spe.add, ref.add_group, a, b, cfg)
    check_binary(spe.mul, ref.mul_group, a, b, cfg)


def test_dot_matches_reference(gen):
    a = random_fields(gen, (500,), 2, exp_lo=0, exp_hi=254)
    b = random_fields(gen, (500,), 2, exp_lo=0, exp_hi=254)
    # a third of the sub-chunks share exponents closely (the common case)
    b = MX8(torch.where(torch.arange(500)[:, None] % 3 == 0, 254 - a.exp, b.exp), b.mu, b.sign,
            b.mag)
    out = spe.dot(a, b)
    ga, gb = to_dicts(a), to_dicts(b)
    for i in range(500):
        Y, X = ref.dot_subchunk(ga[2 * i:2 * i + 2], gb[2 * i:2 * i + 2])
        assert (out.y_int[i, 0].item(), out.x_exp[i, 0].item()) == (Y, X), i
        assert -(1 << 27) <= Y < (1 << 27)


def test_dot_is_exact_when_groups_align(gen):
    a = random_fields(gen, (100,), 2, exp_lo=127, exp_hi=127)
    b = random_fields(gen, (100,), 2, exp_lo=127, exp_hi=127)
    got = spe.dot(a, b).value().squeeze(-1)
    want = (mx8.decode(a).double() * mx8.decode(b).double()).sum(-1)
    assert torch.equal(got, want)


# ------------------------------------------------------------------------------ corner classes

def group(E, mu, s, m):
    t = lambda v: torch.tensor([v], dtype=torch.int32)  # noqa: E731
    return MX8(t(E), t(mu), t(s), t(m))


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_every_mu_combination(cfg):
    """All 4 (mu_a, mu_b) pair combinations x magnitudes that need rounding."""
    combos = list(itertools.product([0, 1], repeat=2))
    mus_a = [c[0] for c in combos] * 2
    mus_b = [c[1] for c in combos] * 2
    mags = [63, 33, 47, 1, 62, 32, 17, 5] * 2
    a = group(130, mus_a, [0, 1] * 8, mags)
    b = group(120, mus_b, [1, 1, 0, 0] * 4, mags[::-1])
    check_binary(spe.mul, ref.mul_group, a, b, cfg)
    check_binary(spe.add, ref.add_group, a, b, cfg)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_saturation_and_cancellation(cfg):
    a = group(127, [0] * 8, [0] * 16, [63] * 16)
    check_binary(spe.add, ref.add_group, a, a, cfg)  # 63 + 63 -> needs a 7th bit
    neg = group(127, [0] * 8, [1] * 16, [63] * 16)
    out = spe.add(a, neg, cfg, None if cfg.rounding == "nearest" else
                  torch.zeros(16, dtype=torch.int32))
    assert out.exp.item() == 0 and int(out.mag.sum()) == 0  # cancels to the zero group
    c = group(127, [0] * 8, [1] * 8 + [0] * 8, [63] * 8 + [62] * 8)
    check_binary(spe.add, ref.add_group, a, c, cfg)  # near-cancellation: LOD shifts left
    check_binary(spe.mul, ref.mul_group, a, a, cfg)  # 63*63: largest product


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_exponent_extremes(cfg):
    hi = group(254, [0] * 8, [0] * 16, [63] * 16)
    lo = group(1, [1] * 8, [0] * 16, [1] * 16)
    assert spe.mul(hi, hi, cfg, 0).exp.item() == 255  # overflow -> NaN group
    check_binary(spe.mul, ref.mul_group, hi, hi, cfg)
    check_binary(spe.mul, ref.mul_group, lo, lo, cfg)  # underflow -> gradual, then zero
    check_binary(spe.add, ref.add_group, hi, hi, cfg)
    check_binary(spe.add, ref.add_group, lo, lo, cfg)
    assert spe.add(hi, hi, cfg, 0).exp.item() == 255


def test_nan_propagates():
    cfg = spe.SPEConfig(rounding="nearest")
    nan = group(255, [0] * 8, [0] * 16, [0] * 16)
    one = mx8.encode(torch.ones(16))
    for op in (spe.mul, spe.add):
        assert op(nan, one, cfg).exp.item() == 255 and op(one, nan, cfg).exp.item() == 255
    two = mx8.encode(torch.ones(32))
    nan2 = MX8(torch.tensor([[255, 127]], dtype=torch.int32), two.mu[None], two.sign[None],
               two.mag[None])
    d = spe.dot(nan2, two)
    assert d.x_exp.item() == spe.DOT_X_NAN and torch.isnan(d.value()).all()


def test_zero_group_operands():
    cfg = spe.SPEConfig(rounding="nearest")
    zero = mx8.encode(torch.zeros(16))
    x = mx8.encode(torch.randn(16))
    once = spe.add(zero, x, cfg)
    assert once.equal(spe.add(x, zero, cfg))
    # the adder's result micro-exponent is 0 (docs/design.md): mu = 1 pairs lose their extra bit,
    # within half an LSB of the group scale; on the mu = 0 grid adding zero is then exact
    assert int(once.mu.sum()) == 0 and once.exp.item() == x.exp.item()
    err = (mx8.decode(once) - mx8.decode(x)).abs().max().item()
    assert err <= 2.0 ** (x.exp.item() - 133)
    assert spe.add(zero, once, cfg).equal(once)
    assert spe.mul(zero, x, cfg).equal(zero)


def test_config_validation():
    with pytest.raises(ValueError, match="renorm must be one of"):
        spe.SPEConfig(renorm="auto")
    with pytest.raises(ValueError, match="rbits must be in 1..8"):
        spe.SPEConfig(rbits=12)
    with pytest.raises(ValueError, match="rounding must be one of"):
        spe.SPEConfig(rounding="even")


# ------------------------------------------------------------------------------ composition

@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[2]], ids=[IDS[0], IDS[2]])
def test_state_update_is_the_composition_in_hardware_order(cfg, update_path):
    torch.manual_seed(3)
    B, ds, dh = 2, 16, 64
    e = mx8.encode
    S, d, k, v, q = (e(torch.randn(B, ds, dh)), e(torch.rand(B, dh)), e(torch.randn(B, dh)),
                     e(torch.randn(B, ds)), e(torch.randn(B, dh)))
    out = spe.state_update(S, d, k, v, q, cfg, SPERandom.lfsr())
    # the same steps, sub-chunk by sub-chunk, in the SPU's order: batch, chunk, column
    rnd = SPERandom.lfsr()
    draw = lambda site: (None if cfg.rounding == "nearest"  # noqa: E731
                         else rnd[site].draw((32,), cfg.rbits))
    for b in range(B):
        for c in range(dh // 32):
            sl = slice(2 * c, 2 * c + 2)
            sub = lambda m, *i: MX8(m.exp[i][sl], m.mu[i][sl], m.sign[i][sl],  # noqa: E731
                                    m.mag[i][sl])
            for j in range(ds):
                r_d, r_o, r_a = draw("mul_decay"), draw("mul_outer"), draw("add")
                decay = spe.mul(sub(d, b), sub(S, b, j), cfg, r_d)
                vj = v.scalars()
                vj = mx8.MX8Scalar(vj.exp[b, j], vj.mu[b, j], vj.sign[b, j], vj.mag[b, j])
                outer = spe.mul_scalar(sub(k, b), vj, cfg, r_o)
                new = spe.add(decay, outer, cfg, r_a)
                assert new.equal(sub(out.state, b, j)), (b, c, j)
                p = spe.dot(new, sub(q, b))
                assert p.y_int.item() == out.partial.y_int[b, j, c].item()
    want_y = out.partial.value().sum(-1)
    assert torch.equal(out.y, want_y)


def test_state_update_close_to_float():
    torch.manual_seed(5)
    e = mx8.encode
    S = torch.randn(3, 16, 64)
    d, k, v, q = torch.rand(3, 64) * 0.5 + 0.5, torch.randn(3, 64), torch.randn(3, 16), \
        torch.randn(3, 64)
    out = spe.state_update(e(S), e(d), e(k), e(v), e(q), spe.SPEConfig(rounding="nearest"))
    D = lambda x: mx8.decode(e(x))  # noqa: E731
    ref_state = D(d)[:, None, :] * D(S) + D(k)[:, None, :] * D(v)[:, :, None]
    rel = (mx8.decode(out.state) - ref_state).norm() / ref_state.norm()
    assert rel < 0.03  # a few 6-bit roundings
    y_ref = (mx8.decode(out.state).double() * D(q).double()[:, None, :]).sum(-1)
    assert torch.allclose(out.y, y_ref, rtol=1e-9, atol=1e-9)


def test_state_update_shape_errors():
    e = mx8.encode
    S = e(torch.randn(2, 16, 64))
    good = e(torch.randn(2, 64))
    with pytest.raises(ValueError, match="v must have shape"):
        spe.state_update(S, good, good, e(torch.randn(2, 32)), good)
    S48 = e(torch.randn(2, 16, 48))
    g48 = e(torch.randn(2, 48))
    with pytest.raises(ValueError, match="multiple of 32"):
        spe.state_update(S48, g48, g48, e(torch.randn(2, 16)), g48)


def test_attention_modes():
    torch.manual_seed(9)
    e = mx8.encode
    keys, q = e(torch.randn(2, 6, 64)), e(torch.randn(2, 64))
    sc = spe.attention_score(keys, q)
    want = (mx8.decode(keys).double() * mx8.decode(q).double()[:, None, :]).sum(-1)
    assert torch.allclose(sc.value().sum(-1), want, rtol=1e-6)
    vals = e(torch.randn(2, 6, 64))
    p = torch.softmax(torch.randn(2, 6), -1)
    s = e(torch.cat([p, torch.zeros(2, 10)], -1)).scalars()
    s6 = mx8.MX8Scalar(*(f[:, :6] for f in (s.exp, s.mu, s.sign, s.mag)))
    acc = spe.attention_attend(vals, s6, spe.SPEConfig(rounding="nearest"))
    want = (mx8.decode(e(torch.cat([p, torch.zeros(2, 10)], -1)))[:, :6, None]
            * mx8.decode(vals)).sum(1)
    assert (mx8.decode(acc) - want).abs().max() < 0.1


def test_attention_attend_partial_sum_order():
    """The attend spec (docs/mx8.md section 8): token c of a row into partial c mod P, the
    partials folded into partial 0 after every row and after the last token; P = 1 is the
    plain running sum. Spelled out with add / mul_scalar on a short row length."""
    torch.manual_seed(11)
    e = mx8.encode
    vals = e(torch.randn(3, 7, 32))
    sc = e(torch.softmax(torch.randn(3, 32), -1)).scalars()
    s7 = mx8.MX8Scalar(*(f[:, :7] for f in (sc.exp, sc.mu, sc.sign, sc.mag)))
    cfg = spe.SPEConfig(rounding="nearest")

    def tok(t):
        return spe.mul_scalar(vals[:, t], mx8.MX8Scalar(*(f[:, t] for f in (
            s7.exp, s7.mu, s7.sign, s7.mag))), cfg)

    zero = spe._zero_mx8((3,), 2)
    p0, p1 = zero, zero
    for t in range(3):                        # row 0: tokens 0, 1, 2 (row = 3)
        if t % 2 == 0:
            p0 = spe.add(p0, tok(t), cfg)
        else:
            p1 = spe.add(p1, tok(t), cfg)
    p0, p1 = spe.add(p0, p1, cfg), zero       # fold after the row
    for c, t in enumerate(range(3, 6)):       # row 1
        if c % 2 == 0:
            p0 = spe.add(p0, tok(t), cfg)
        else:
            p1 = spe.add(p1, tok(t), cfg)
    p0, p1 = spe.add(p0, p1, cfg), zero
    p0 = spe.add(p0, tok(6), cfg)             # row 2: one token, then the last fold
    p0 = spe.add(p0, p1, cfg)
    got = spe.attention_attend(vals, s7, cfg, partials=2, row=3)
    assert all(torch.equal(getattr(got, f), getattr(p0, f))
               for f in ("exp", "mu", "sign", "mag"))
    run = zero
    for t in range(7):
        run = spe.add(run, tok(t), cfg)
    one = spe.attention_attend(vals, s7, cfg, partials=1)
    assert all(torch.equal(getattr(one, f), getattr(run, f))
               for f in ("exp", "mu", "sign", "mag"))
    with pytest.raises(ValueError, match="partials must be a positive int"):
        spe.attention_attend(vals, s7, cfg, partials=0)


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_fused_attention_attend_order(rounding):
    """The fused attend spec: every token sum ``fused_mul_add(P, 1, V_t, s_t)`` and every fold
    step ``fused_mul_add(P_0, 1, P_k, 1)`` (one rounding each, site ``add`` only), token c of
    a row into partial c mod 3 by default, folds after every row and after the last token.
    Spelled out on a short row length, the random bits drawn in that order."""
    from cosim.spu_model import ReplaySource
    from quant.constants import ATTEND_PARTIALS_FUSED, ONE_EXP, ONE_MAG
    torch.manual_seed(12)
    e = mx8.encode
    vals = e(torch.randn(3, 8, 32))
    sm = e(torch.softmax(torch.randn(3, 32), -1))
    sc = sm.scalars()
    s8 = mx8.MX8Scalar(*(f[:, :8] for f in (sc.exp, sc.mu, sc.sign, sc.mag)))
    cfg = spe.SPEConfig(rounding=rounding, fused=True)
    assert spe.attend_partials(cfg) == ATTEND_PARTIALS_FUSED == 3
    assert spe.attend_partials(spe.SPEConfig()) == spe.ATTEND_PARTIALS == 2
    gen = torch.Generator().manual_seed(5)
    bits = [torch.randint(0, 256, (3, 32), generator=gen, dtype=torch.int32) for _ in range(20)]
    draws = iter(bits)

    def nxt():
        return next(draws) if rounding == "stochastic" else None

    one = spe._zero_mx8((3,), 2)
    one = mx8.MX8(torch.full_like(one.exp, ONE_EXP), one.mu, one.sign,
                  torch.full_like(one.mag, ONE_MAG))
    assert torch.equal(mx8.decode(one), torch.ones(3, 32))

    def tok(p, t):
        s = mx8.MX8Scalar(*(f[:, t] for f in (s8.exp, s8.mu, s8.sign, s8.mag)))
        return spe.fused_mul_add(p, one, vals[:, t], s.expand_groups((3,), 2), cfg, nxt())

    def fold(parts):
        for k in (1, 2):
            parts[0] = spe.fused_mul_add(parts[0], one, parts[k], one, cfg, nxt())
            parts[k] = spe._zero_mx8((3,), 2)

    parts = [spe._zero_mx8((3,), 2) for _ in range(3)]
    for t in range(8):                        # rows of 5 tokens: 0..4, 5..7
        c = t % 5
        parts[c % 3] = tok(parts[c % 3], t)
        if c == 4 or t == 7:
            fold(parts)
    rng = SPERandom({"mul_decay": ReplaySource([]), "mul_outer": ReplaySource([]),
                     "add": ReplaySource(bits)}) if rounding == "stochastic" else None
    got = spe.attention_attend(vals, s8, cfg, rng, row=5)
    assert all(torch.equal(getattr(got, f), getattr(parts[0], f))
               for f in ("exp", "mu", "sign", "mag"))
    # one rounding per sum: the fused attend is closer to the exact sum than the unfused one
    want = (mx8.decode(vals).double() * mx8.decode(sm)[:, :8, None].double()).sum(1)
    if rounding == "nearest":
        unf = spe.attention_attend(vals, s8, spe.SPEConfig(rounding="nearest"), row=5)
        err = [(mx8.decode(x).double() - want).norm() for x in (got, unf)]
        assert err[0] < err[1]


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@pytest.mark.parametrize("exp_lo,exp_hi", [(1, 254), (1, 20), (120, 134), (240, 254)])
def test_fused_state_update_equals_the_composition(cfg, exp_lo, exp_hi, update_path):
    """spe.state_update (the fast, fused code) against mul/mul_scalar/add/dot on random
    fields: every exponent range (underflow, overflow to NaN), NaN and zero groups."""
    gen = torch.Generator().manual_seed(exp_lo * 7 + exp_hi)
    B, ds, dh = 3, 16, 64
    f = lambda *lead: random_fields(gen, lead, dh // 16, exp_lo=exp_lo,  # noqa: E731
                                    exp_hi=exp_hi)
    S, d, k, q = f(B, ds), f(B), f(B), f(B)
    v = random_fields(gen, (B,), ds // 16, exp_lo=exp_lo, exp_hi=exp_hi)
    S.exp[0, 3, 1] = 255  # NaN groups in the state, in d and in v
    d.exp[1, 2] = 255
    v.exp[2, 0] = 255
    out = spe.state_update(S, d, k, v, q, cfg, SPERandom.torch(5))
    rnd = SPERandom.torch(5)
    draws = {s: spe.hardware_order_rand(rnd[s], (B,), ds, dh, cfg.rounding, cfg.rbits)
             for s in ("mul_decay", "mul_outer", "add")}
    decay = spe.mul(S, d.unsqueeze(1), cfg, draws["mul_decay"])
    outer = spe.mul_scalar(k.unsqueeze(1), v.scalars(), cfg, draws["mul_outer"])
    new = spe.add(decay, outer, cfg, draws["add"])
    part = spe.dot(new, q.unsqueeze(1))
    assert new.equal(out.state)
    assert torch.equal(part.y_int, out.partial.y_int)
    assert torch.equal(part.x_exp, out.partial.x_exp)


FUSED_CONFIGS = [spe.SPEConfig(rounding=r, rbits=b, fused=True)
                 for r, b in [("nearest", 8), ("stochastic", 8), ("stochastic", 3)]]


@pytest.mark.parametrize("cfg", FUSED_CONFIGS, ids=lambda c: f"{c.rounding}-r{c.rbits}")
@pytest.mark.parametrize("exp_lo,exp_hi", [(1, 254), (1, 20), (60, 70), (120, 134), (240, 254)])
def test_fast_fused_update_equals_the_composition(cfg, exp_lo, exp_hi, update_path):
    """spe.state_update with cfg.fused (the fast in-place code) against fused_mul_add then
    dot on random fields: every exponent range (underflow, overflow to NaN), NaN groups."""
    gen = torch.Generator().manual_seed(exp_lo * 11 + exp_hi)
    B, ds, dh = 3, 16, 64
    f = lambda *lead: random_fields(gen, lead, dh // 16, exp_lo=exp_lo,  # noqa: E731
                                    exp_hi=exp_hi)
    S, d, k, q = f(B, ds), f(B), f(B), f(B)
    v = random_fields(gen, (B,), ds // 16, exp_lo=exp_lo, exp_hi=exp_hi)
    S.exp[0, 3, 1] = 255
    d.exp[1, 2] = 255
    v.exp[2, 0] = 255
    k.exp[0, 1] = 255
    out = spe.state_update(S, d, k, v, q, cfg, SPERandom.torch(5))
    rand = spe.hardware_order_rand(SPERandom.torch(5)["add"], (B,), ds, dh, cfg.rounding,
                                   cfg.rbits)
    new = spe.fused_mul_add(S, d.unsqueeze(1), k.unsqueeze(1),
                            v.scalars().expand_groups((B, ds), dh // 16), cfg, rand)
    part = spe.dot(new, q.unsqueeze(1))
    assert new.equal(out.state)
    if (exp_lo, exp_hi) == (120, 134):  # the fused result's micro-exponents are exercised
        assert int(new.mu.sum()) > 0
    assert torch.equal(part.y_int, out.partial.y_int)
    assert torch.equal(part.x_exp, out.partial.x_exp)
