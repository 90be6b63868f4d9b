"""The fused state update (SPEConfig(fused=True), docs/mx8.md section 8a) against its scalar
reference (tests/fused_reference.py), on random and corner operands."""

import pytest
import torch

from fused_reference import fused_group
from mx8_fields import random_fields, to_dicts
from quant import mx8, spe
from quant.mx8 import MX8
from quant.rng import LFSRStream, SPERandom

CONFIGS = [spe.SPEConfig(rounding=r, rbits=b, fused=True)
           for r, b in [("nearest", 8), ("stochastic", 8), ("stochastic", 3)]]
IDS = [f"{c.rounding}-r{c.rbits}" for c in CONFIGS]


def check(a, b, c, e, cfg, seed=77):
    n = a.exp.numel()
    rows = [None] * n
    bits = None
    if cfg.rounding == "stochastic":
        t = LFSRStream(seed).draw((n, 16), cfg.rbits)
        bits, rows = t.reshape(a.shape), t.tolist()
    got = to_dicts(spe.fused_mul_add(a, b, c, e, cfg, bits))
    for i, g in enumerate(zip(to_dicts(a), to_dicts(b), to_dicts(c), to_dicts(e))):
        assert got[i] == fused_group(*g, cfg.rounding, cfg.rbits, rows[i]), (i, g)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@pytest.mark.parametrize("lo,hi", [(1, 254), (100, 154), (1, 40), (200, 254)])
def test_fused_matches_reference(cfg, lo, hi):
    gen = torch.Generator().manual_seed(lo + hi)
    a, b, c, e = (random_fields(gen, (120,), 1, exp_lo=lo, exp_hi=hi) for _ in range(4))
    check(a, b, c, e, cfg)


def group(E, mu, s, m):
    t = lambda x: torch.tensor([x], dtype=torch.int32)  # noqa: E731
    return MX8(t(E), t(mu), t(s), t(m))


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_fused_corners(cfg):
    full = group(127, [0] * 8, [0] * 16, [63] * 16)
    one = group(127, [0] * 8, [0] * 16, [32] * 16)
    tiny = group(1, [1] * 8, [1] * 16, [1] * 16)
    neg = group(127, [0] * 8, [1] * 16, [63] * 16)
    zero = group(0, [0] * 8, [0] * 16, [0] * 16)
    nan = group(255, [0] * 8, [0] * 16, [0] * 16)
    mixed = group(130, [0, 1] * 4, [0, 1] * 8, list(range(0, 64, 4)))
    huge = group(254, [0] * 8, [0] * 16, [63] * 16)
    cases = [(full, one, neg, one),  # exact cancellation -> zero group
             (full, full, full, full),  # carry into a new binade
             (one, mixed, tiny, tiny),  # far smaller addend: truncated away
             (huge, huge, zero, zero),  # overflow -> NaN
             (tiny, tiny, tiny, tiny),  # underflow to E = 0
             (nan, one, one, one), (zero, zero, zero, zero), (mixed, mixed, neg, mixed)]
    for a, b, c, e in cases:
        check(a, b, c, e, cfg)


def test_fused_config_checks():
    with pytest.raises(ValueError, match="fused=True needs renorm='lod'"):
        spe.SPEConfig(fused=True, renorm="fixed")
    with pytest.raises(TypeError, match="fused must be a bool"):
        spe.SPEConfig(fused=1)


@pytest.mark.parametrize("cfg", CONFIGS[:2], ids=IDS[:2])
def test_fused_state_update_is_one_rounding_in_hardware_order(cfg):
    torch.manual_seed(4)
    B, ds, dh = 2, 16, 64
    e = mx8.encode
    S, d, k, v, q = (e(torch.randn(B, ds, dh)), e(torch.rand(B, dh)), e(torch.randn(B, dh)),
                     e(torch.randn(B, ds)), e(torch.randn(B, dh)))
    rng = SPERandom.lfsr()
    out = spe.state_update(S, d, k, v, q, cfg, rng)
    assert rng["mul_decay"].position == 0 and rng["mul_outer"].position == 0
    ref_rng = SPERandom.lfsr()
    rand = spe.hardware_order_rand(ref_rng["add"], (B,), ds, dh, cfg.rounding, cfg.rbits)
    new = spe.fused_mul_add(S, d.unsqueeze(1), k.unsqueeze(1),
                            v.scalars().expand_groups((B, ds), dh // 16), cfg, rand)
    assert new.equal(out.state)
    p = spe.dot(new, q.unsqueeze(1))
    assert torch.equal(p.y_int, out.partial.y_int)


def test_fused_is_closer_to_the_exact_update():
    """One rounding instead of three: the fused update's error against the exact value of
    d*S + k v (from the same MX8 operands) is smaller than the unfused one's."""
    torch.manual_seed(6)
    e = mx8.encode
    S, d, k, v, q = (e(torch.randn(4, 32, 128)), e(torch.rand(4, 128) * 0.2 + 0.8),
                     e(torch.randn(4, 128) * 0.3), e(torch.randn(4, 32)), e(torch.randn(4, 128)))
    D = lambda x: mx8.decode(x).double()  # noqa: E731
    exact = D(d)[:, None, :] * D(S) + D(k)[:, None, :] * D(v)[:, :, None]
    errs = {}
    for fused in (False, True):
        cfg = spe.SPEConfig(rounding="nearest", fused=fused)
        errs[fused] = float((D(spe.state_update(S, d, k, v, q, cfg).state) - exact).norm())
    assert errs[True] < 0.8 * errs[False], errs
