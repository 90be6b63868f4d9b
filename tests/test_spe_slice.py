"""quant/spe_slice.py, the port-level golden model of the SPE datapath slices: port widths,
parameter errors, the composition of each format's arithmetic, and the random-bit order."""


import numpy as np
import pytest
import torch

from cosim.mx_vectors import make_batch, scalar_words, unpack_scalars
from quant.fparith import ref_add, ref_mul
from quant.mx8 import scalar_from_words, scalar_to_words, to_words
from quant.rng import SITES, SPERandom
from quant.spe import SPEConfig, state_update
from quant.spe_slice import FORMATS, reference, slice_ports


def test_slice_ports():
    assert FORMATS == ("fp16", "e4m3", "e5m2", "mx8", "int8")
    want = {"fp16": (512, 16), "e4m3": (256, 8), "e5m2": (256, 8), "mx8": (256, 16),
            "int8": (272, 24)}
    for fmt, (w, wv) in want.items():
        assert slice_ports(fmt) == {"W": w, "Wv": wv, "lanes": 32}


@pytest.mark.parametrize("call, exc, msg", [
    (lambda: slice_ports("bf16"), ValueError,
     "fmt must be one of ('fp16', 'e4m3', 'e5m2', 'mx8', 'int8'), not 'bf16'"),
    (lambda: reference("fp32", "rne", [], [], [], []), ValueError,
     "fmt must be one of ('fp16', 'e4m3', 'e5m2', 'mx8', 'int8'), not 'fp32'"),
    (lambda: reference("fp16", "nearest", [], [], [], []), ValueError,
     "rounding must be one of ('rne', 'sr'), not 'nearest'"),
    (lambda: reference("mx8", "sr", [0], [0], [0], [0]), ValueError,
     "rounding='sr' needs rng (an SPERandom, e.g. SPERandom.lfsr())"),
    (lambda: reference("e4m3", "sr", [0], [0], [0], [0], rng=7), TypeError,
     "rng must be an SPERandom, not int"),
    (lambda: reference("e4m3", "rne", [0, 0], [0], [0], [0]), ValueError,
     "s, d, k, v must have the same length, not 2, 1, 1, 1"),
    (lambda: reference("e4m3", "rne", [0], [1 << 256], [0], [0]), ValueError,
     f"d[0] = {1 << 256:#x} does not fit the 256-bit port"),
    (lambda: reference("mx8", "rne", [0], [0], [0], [1 << 16]), ValueError,
     "v[0] = 0x10000 does not fit the 16-bit port"),
    (lambda: reference("fp16", "rne", [0, -1], [0, 0], [0, 0], [0, 0]), ValueError,
     "s[1] = -0x1 does not fit the 512-bit port"),
    (lambda: reference("fp16", "rne", [0], [0], [1.0], [0]), TypeError,
     "k[0] must be an int port word, not 1.0"),
    (lambda: reference("fp16", "rne", [0], [0], [True], [0]), TypeError,
     "k[0] must be an int port word, not True"),
])
def test_errors(call, exc, msg):
    with pytest.raises(exc) as info:
        call()
    assert str(info.value) == msg


def test_float_worked_example():
    """fp16 1.0 * 2.0 + 0.5 * 4.0 = 4.0 in every lane; lane i is bits [16i, 16i+16)."""
    rep = lambda x: sum(x << (16 * i) for i in range(32))  # noqa: E731
    s, d, k = [rep(0x4000)], [rep(0x3C00)], [rep(0x3800)]
    assert reference("fp16", "rne", s, d, k, [0x4400]) == [rep(0x4400)]
    # lane 5 differs: s = -2.0 there gives 1.0 * -2.0 + 2.0 = +0
    s2 = [s[0] ^ (0x8000 << 80)]
    assert reference("fp16", "rne", s2, d, k, [0x4400]) == [rep(0x4400) & ~(0xFFFF << 80)]


@pytest.mark.parametrize("fmt", ["fp16", "e4m3", "e5m2"])
@pytest.mark.parametrize("rounding", ["rne", "sr"])
def test_float_composes_fparith(fmt, rounding):
    w = 16 if fmt == "fp16" else 8
    rng = np.random.default_rng(5)
    n = 40
    lanes = [rng.integers(0, 1 << w, (n, 32)) for _ in range(3)]
    v = rng.integers(0, 1 << w, n)
    s, d, k = ([sum(int(e) << (w * i) for i, e in enumerate(row)) for row in x] for x in lanes)
    src = SPERandom.lfsr() if rounding == "sr" else None
    got = reference(fmt, rounding, s, d, k, [int(x) for x in v], rng=src)
    kw = dict.fromkeys(SITES, {})
    if rounding == "sr":
        twin = SPERandom.lfsr()
        kw = {site: {"rounding": "sr", "sr_bits": 8,
                     "rand": twin[site].draw((n, 32), 8).numpy().astype(np.int64)}
              for site in SITES}
    vv = np.broadcast_to(v[:, None], (n, 32))
    want = ref_add(ref_mul(lanes[1], lanes[0], fmt, **kw["mul_decay"]),
                   ref_mul(lanes[2], vv, fmt, **kw["mul_outer"]), fmt, **kw["add"])
    assert got == [sum(int(e) << (w * i) for i, e in enumerate(row)) for row in want]


@pytest.mark.parametrize("rounding, renorm", [("rne", "lod"), ("sr", "lod"), ("rne", "fixed"),
                                              ("sr", "fixed")])
def test_mx8_equals_state_update(rounding, renorm):
    """One operation per state column, d and k shared: the slice model equals the new state of
    quant.spe.state_update (whose SR bits follow the SPU's order, column after column), with
    either renormalization (the MX8 slice's ``renorm``)."""
    gen = torch.Generator().manual_seed(9)
    n = 32                                   # dim_state: 32 columns, v is two MX8 groups
    S = make_batch("add", n, gen).a          # (n, 2 groups): state column j is row j
    dk = make_batch("mul", 1, gen)
    d, k = dk.a[0], dk.b[0]                  # (2 groups): one sub-chunk each
    v = make_batch("add", 1, gen).a[0]       # n values
    cfg = SPEConfig(rounding="nearest" if rounding == "rne" else "stochastic", rbits=8,
                    renorm=renorm)
    rngs = [SPERandom.lfsr() if rounding == "sr" else None for _ in range(2)]
    got = reference("mx8", rounding, to_words(S, 2), to_words(d, 2) * n, to_words(k, 2) * n,
                    scalar_to_words(v.scalars()), rng=rngs[0], renorm=renorm)
    want = to_words(state_update(S, d, k, v, d, cfg, rngs[1]).state, 2)
    assert got == want
    if rounding == "sr":
        assert got != reference("mx8", "rne", to_words(S, 2), to_words(d, 2) * n,
                                to_words(k, 2) * n, scalar_to_words(v.scalars()),
                                renorm=renorm)


def test_renorm_is_the_mx8_slices_only():
    with pytest.raises(ValueError, match="renorm applies to the mx8 slice only"):
        reference("fp16", "rne", [0], [0], [0], [0], renorm="fixed")


@pytest.mark.parametrize("fmt", ["fp16", "mx8"])
def test_sr_batches_continue_the_streams(fmt):
    ports = slice_ports(fmt)
    g = np.random.default_rng(3)

    def words(bits, n):
        return [int.from_bytes(g.integers(0, 256, bits // 8, dtype=np.uint8).tobytes(),
                               "little") for _ in range(n)]

    n = 30
    ops = [words(ports["W"], n) for _ in range(3)] + [words(ports["Wv"], n)]
    whole = reference(fmt, "sr", *ops, rng=SPERandom.lfsr())
    rng = SPERandom.lfsr()
    parts = (reference(fmt, "sr", *(x[:11] for x in ops), rng=rng)
             + reference(fmt, "sr", *(x[11:] for x in ops), rng=rng))
    assert parts == whole
    for site in SITES:
        assert rng[site].position == n * 32 * 8
    # round to nearest draws nothing
    reference(fmt, "rne", *ops, rng=rng)
    assert all(rng[site].position == n * 32 * 8 for site in SITES)
    assert reference(fmt, "sr", [], [], [], [], rng=rng) == []


def test_scalar_words_match_cosim_packing():
    gen = torch.Generator().manual_seed(2)
    s = make_batch("mul_scalar", 200, gen).b
    words = scalar_to_words(s)
    assert words == scalar_words(s)
    back = scalar_from_words(words)
    ref = unpack_scalars(words)
    for f in ("exp", "mu", "sign", "mag"):
        assert torch.equal(getattr(back, f), getattr(s, f))
        assert torch.equal(getattr(ref, f), getattr(s, f))


def test_int8_is_delegated(monkeypatch):
    calls = []

    def update_words(s, d, k, v, *, rounding, rng):
        calls.append((s, d, k, v, rounding, rng))
        return [123]

    from quant import spe_int8
    monkeypatch.setattr(spe_int8, "update_words", update_words)
    rng = SPERandom.lfsr()
    assert reference("int8", "sr", [1], [2], [3], [4], rng) == [123]
    assert calls == [([1], [2], [3], [4], "sr", rng)]
    with pytest.raises(ValueError, match=r"^rounding must be one of"):
        reference("int8", "rtz", [1], [2], [3], [4])
