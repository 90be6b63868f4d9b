"""MX layouts (hw/mx8_layout.py) reproduce the packing of quant.mx8."""

import pytest
import torch
from amaranth.lib import data

from cosim.mx_vectors import make_batch, scalar_words, unpack_scalars
from hw.mx8_layout import (mx_group_layout, mx_scalar_layout, mx_subchunk_layout)
from quant.mx8 import GROUP_BITS, to_words


def test_sizes():
    assert mx_group_layout().size == GROUP_BITS == 128
    assert mx_subchunk_layout().size == 256
    assert mx_scalar_layout().size == 16
    assert mx_group_layout(exp_bits=5, mag_bits=3, group=8).size == 5 + 4 + 8 * 4


def test_fields_match_golden_packing():
    batch = make_batch("mul", 20, torch.Generator().manual_seed(2))
    for n, word in enumerate(to_words(batch.a, 2)):
        c = data.Const(mx_subchunk_layout(), word)
        for g in range(2):
            assert c[g].exp == batch.a.exp[n, g]
            for j in range(8):
                assert c[g].mu[j] == batch.a.mu[n, g, j]
            for i in range(16):
                assert c[g].elems[i].mag == batch.a.mag[n, g, i]
                assert c[g].elems[i].sign == batch.a.sign[n, g, i]


def test_scalar_words_follow_the_layout():
    batch = make_batch("mul_scalar", 20, torch.Generator().manual_seed(3))
    words = scalar_words(batch.b)
    back = unpack_scalars(words)
    for n, word in enumerate(words):
        c = data.Const(mx_scalar_layout(), word)
        assert (c.exp, c.mu, c.mag, c.sign) == (batch.b.exp[n], batch.b.mu[n],
                                                batch.b.mag[n], batch.b.sign[n])
        assert back.exp[n] == c.exp and back.mag[n] == c.mag


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"group": 15}, ValueError, "group must be even (values are paired), not 15"),
    ({"group": 0}, ValueError, "group must be in 2..64, not 0"),
    ({"exp_bits": 8.0}, TypeError, "exp_bits must be an int, not 8.0"),
    ({"mag_bits": 0}, ValueError, "mag_bits must be in 1..16, not 0"),
])
def test_parameter_errors(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        mx_group_layout(**kwargs)
    assert str(info.value) == msg
