"""Random-bit sources: the PRBS31 stream model against a bit-serial register."""

import pytest
import torch

from quant.rng import (DEFAULT_SITE_SEEDS, LFSRStream, SPERandom, TorchBits, make_source,
                       prbs31_reference)


@pytest.mark.parametrize("seed", [1, 0x2545F491, (1 << 31) - 1, 0x40000000])
def test_stream_matches_bit_serial_register(seed):
    n = 5000
    want = prbs31_reference(seed, n)
    s = LFSRStream(seed)
    got = []
    for chunk in (1, 30, 31, 100, 257, 1000, n - 1419):  # odd chunk sizes cross block edges
        got += s.bits(chunk).tolist()
    assert got == want


def test_fast_blocks_agree_far_into_the_stream():
    """Deep into the stream the doubling recurrence b[n] = b[n-31*2^k] ^ b[n-28*2^k] is used;
    check it against the plain recurrence on a long prefix."""
    s = LFSRStream(12345)
    bits = s.bits(400_000).astype(int).tolist()
    assert all(bits[n] == bits[n - 31] ^ bits[n - 28] for n in range(31, len(bits)))
    assert bits[:31] == [(12345 >> j) & 1 for j in range(31)]


def test_lane_packing_lsb_first():
    a, b = LFSRStream(777), LFSRStream(777)
    vals = a.draw((2, 32), 8)
    raw = b.bits(2 * 32 * 8).reshape(2, 32, 8)
    for i in range(2):
        for lane in range(32):
            assert vals[i, lane].item() == sum(int(raw[i, lane, j]) << j for j in range(8))


def test_state_is_the_next_31_bits():
    s = LFSRStream(0x1234567)
    s.bits(1000)
    st = s.state()
    nxt = s.bits(31)
    assert st == sum(int(b) << j for j, b in enumerate(nxt))


def test_stream_is_not_short_periodic():
    s = LFSRStream(1)
    states = set()
    for _ in range(20000):
        states.add(s.state())
        s.bits(29)
    assert len(states) == 20000


def test_seed_validation():
    with pytest.raises(ValueError, match="non-zero 31-bit"):
        LFSRStream(0)
    with pytest.raises(ValueError, match="non-zero 31-bit"):
        LFSRStream(1 << 31)
    with pytest.raises(TypeError):
        LFSRStream(1.5)
    with pytest.raises(ValueError, match="random bits r must be in"):
        LFSRStream(1).draw((4,), 17)


def test_sources_and_sites():
    assert torch.equal(TorchBits(5).draw((100,), 8), TorchBits(5).draw((100,), 8))
    assert isinstance(make_source(None), TorchBits) and make_source(3).seed == 3
    with pytest.raises(TypeError):
        make_source("x")
    r = SPERandom.lfsr()
    assert {s: r[s].seed for s in DEFAULT_SITE_SEEDS} == DEFAULT_SITE_SEEDS
    with pytest.raises(ValueError, match="needs exactly the sites"):
        SPERandom({"add": TorchBits(1)})
    u = LFSRStream(99).draw((1 << 16,), 4).float()
    assert abs(u.mean().item() - 7.5) < 0.1  # uniform over 0..15


@pytest.mark.parametrize("r", [1, 3, 8])
def test_torch_bits_are_torch_randint(r):
    """TorchBits draws the values of torch.randint(0, 2**r) on the same generator, call after
    call (the cheaper drawing keeps every seeded study result)."""
    g = torch.Generator().manual_seed(77)
    src = TorchBits(77)
    for shape in ((1000,), (3, 64, 32), (0,), (5,)):
        want = torch.randint(0, 1 << r, shape, generator=g, dtype=torch.int32)
        got = src.draw(shape, r)
        assert got.dtype == torch.int32 and torch.equal(got, want)
