"""The compiled kernels of ``quant.native``: the state update against its eager form (which
tests/test_spe_arith.py checks, with the kernel, against the composition of the SPE's
operations), the compiled MT19937 draws against torch's generator, and the fallbacks."""

import pytest
import torch

from quant import mx8, native, spe
from quant.rng import SITES, SPERandom, TorchBits

pytestmark = pytest.mark.skipif(native.lib() is None,
                                reason="no C compiler: the compiled kernels are not built")


def _eager(monkeypatch, fn):
    with monkeypatch.context() as m:
        m.setenv(native.ENV, "0")
        return fn()


def _same(a: spe.StateUpdateOut, b: spe.StateUpdateOut) -> bool:
    return (a.state.equal(b.state) and torch.equal(a.partial.y_int, b.partial.y_int)
            and torch.equal(a.partial.x_exp, b.partial.x_exp)
            and torch.equal(a.y.isnan(), b.y.isnan())
            and torch.equal(a.y.nan_to_num(0.0), b.y.nan_to_num(0.0)))


CONFIGS = [spe.SPEConfig(rounding=r, renorm=n, rbits=b, fused=f)
           for r, n, b, f in [("nearest", "lod", 8, False), ("nearest", "fixed", 8, False),
                              ("stochastic", "lod", 8, False), ("stochastic", "fixed", 3, False),
                              ("nearest", "lod", 8, True), ("stochastic", "lod", 5, True)]]


@pytest.mark.parametrize("cfg", CONFIGS,
                         ids=lambda c: f"{c.rounding}-{c.renorm}-r{c.rbits}-f{int(c.fused)}")
@pytest.mark.parametrize("lead", [(), (2, 3)], ids=["lead0", "lead2"])
def test_native_update_is_the_eager_update(cfg, lead, monkeypatch):
    """Encoded real values at scales from underflow to overflow, broadcast (non-contiguous)
    operands, both kinds of random source."""
    gen = torch.Generator().manual_seed(11)
    ds, dh = 32, 64
    for scale in (1.0, 1e-30, 1e-38, 1e30, 1e38):
        x = lambda *s: torch.randn(*s, generator=gen) * scale  # noqa: E731
        S = mx8.encode(x(*lead, ds, dh))
        d = mx8.encode(torch.rand(dh, generator=gen) * 0.2 + 0.8)
        d = mx8.MX8(*(t.expand(*lead, *t.shape) for t in (d.exp, d.mu, d.sign, d.mag)))
        k, v, q = mx8.encode(x(*lead, dh)), mx8.encode(x(*lead, ds)), mx8.encode(x(*lead, dh))
        assert (scale < 1e30) or bool(mx8.decode(spe.state_update(
            S, d, k, v, q, cfg, SPERandom.torch(3)).state).isnan().any())  # overflow
        for rng in (lambda: SPERandom.torch(3), SPERandom.lfsr):
            got = spe.state_update(S, d, k, v, q, cfg, rng())
            want = _eager(monkeypatch, lambda: spe.state_update(S, d, k, v, q, cfg, rng()))
            assert _same(got, want), (scale, rng)


def test_native_update_draws_the_same_stream(monkeypatch):
    """After an update the sources stand where the eager update leaves them."""
    enc = [mx8.encode(torch.randn(*s)) for s in ((2, 16, 64), (2, 64), (2, 64), (2, 16),
                                                    (2, 64))]
    a, b = SPERandom.torch(9), SPERandom.torch(9)
    spe.state_update(*enc, spe.SPEConfig(), a)
    _eager(monkeypatch, lambda: spe.state_update(*enc, spe.SPEConfig(), b))
    for s in SITES:
        assert torch.equal(a[s].draw((100,), 8), b[s].draw((100,), 8))


@pytest.mark.parametrize("r", [1, 3, 8, 16])
def test_compiled_mt19937_is_torch_randint(r):
    """TorchBits draws (compiled) equal torch.randint on the same seed, across the
    generator's twists (624 outputs), and leave the generator where torch would."""
    src, ref = TorchBits(77), torch.Generator().manual_seed(77)
    for n in (1, 623, 1, 624, 5000, 17):
        got = src.draw((n,), r)
        assert torch.equal(got, torch.randint(0, 1 << r, (n,), generator=ref,
                                              dtype=torch.int32)), n
    # torch's own draws on the source's generator continue the same stream
    assert torch.equal(torch.randn(5, generator=src._gen), torch.randn(5, generator=ref))


def test_compiled_mt19937_off_is_the_same(monkeypatch):
    a = TorchBits(5).draw((3, 1000), 8)
    b = _eager(monkeypatch, lambda: TorchBits(5).draw((3, 1000), 8))
    assert torch.equal(a, b)


def test_native_switch_typo_is_refused(monkeypatch):
    monkeypatch.setenv(native.ENV, "yes")
    with pytest.raises(ValueError, match="QUANT_NATIVE must be 0 or 1, not 'yes'"):
        native.lib()


def test_without_a_compiler_the_eager_form_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.warns(RuntimeWarning, match="no C compiler"):
        assert native.lib() is None
    enc = [mx8.encode(torch.randn(*s)) for s in ((16, 32), (32,), (32,), (16,), (32,))]
    out = spe.state_update(*enc, spe.SPEConfig(), SPERandom.torch(1))
    assert out.state.shape == (16, 32)
    assert TorchBits(2).draw((4,), 8).shape == (4,)
