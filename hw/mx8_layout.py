"""Packed layouts of the MX block format, built from its parameters.

Every MX unit reads and writes its operands through these layouts, so code says
``group.exp``, ``group.mu[j]``, ``group.elems[i].mag`` instead of slicing bit ranges. With the
default parameters they reproduce the bit layout of :mod:`quant.mx8` exactly (LSB first)::

    group (128 bits)   bits 0-7 exp | bit 8+j mu[j] | element i at 16+7i: mag (6), sign (1)
    sub-chunk (256)    group 0 in bits 0-127, group 1 in bits 128-255
    scalar (16 bits)   bits 0-7 exp | bit 8 mu | bits 9-14 mag | bit 15 sign

The scalar layout is the broadcast operand of :class:`hw.mx_mul.MxMul` (one value with its
group exponent and pair micro-exponent attached, :class:`quant.mx8.MX8Scalar`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, unsigned
from amaranth.lib import data

from quant.constants import EXP_BITS, GROUP, GROUPS_PER_COLUMN, MAG_BITS, PAIRS

__all__ = ["mx_element_layout", "mx_group_layout", "mx_subchunk_layout", "mx_scalar_layout",
           "mx_group_scalar", "mx_scalar_group", "check_format"]


def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, not {value}")
    return value


def check_format(*, exp_bits: int = EXP_BITS, mag_bits: int = MAG_BITS,
                 group: int = GROUP) -> tuple[int, int, int]:
    """Validate the format parameters; return ``(exp_bits, mag_bits, group)``.

    Raises
    ------
    TypeError
        A parameter is not an int.
    ValueError
        ``exp_bits`` outside 2..16, ``mag_bits`` outside 1..16, ``group`` not an even number
        in 2..64.
    """
    _check_int("exp_bits", exp_bits, 2, 16)
    _check_int("mag_bits", mag_bits, 1, 16)
    _check_int("group", group, 2, 64)
    if group % 2:
        raise ValueError(f"group must be even (values are paired), not {group}")
    return exp_bits, mag_bits, group


def mx_element_layout(*, mag_bits: int = MAG_BITS) -> data.StructLayout:
    """One value: ``mag`` (unsigned magnitude, LSBs) then ``sign``."""
    check_format(mag_bits=mag_bits)
    return data.StructLayout({"mag": unsigned(mag_bits), "sign": unsigned(1)})


def mx_group_layout(*, exp_bits: int = EXP_BITS, mag_bits: int = MAG_BITS,
                    group: int = GROUP) -> data.StructLayout:
    """One group: shared exponent ``exp``, per-pair micro-exponents ``mu`` (an array of
    ``group // 2`` bits), then ``elems`` (an array of ``group`` :func:`mx_element_layout`)."""
    check_format(exp_bits=exp_bits, mag_bits=mag_bits, group=group)
    return data.StructLayout({
        "exp": unsigned(exp_bits),
        "mu": data.ArrayLayout(unsigned(1), group // 2),
        "elems": data.ArrayLayout(mx_element_layout(mag_bits=mag_bits), group),
    })


def mx_subchunk_layout(*, groups: int = GROUPS_PER_COLUMN, exp_bits: int = EXP_BITS,
                       mag_bits: int = MAG_BITS, group: int = GROUP) -> data.ArrayLayout:
    """``groups`` consecutive groups, group 0 in the LSBs (one 256-bit DRAM column with the
    defaults)."""
    _check_int("groups", groups, 1, 64)
    return data.ArrayLayout(mx_group_layout(exp_bits=exp_bits, mag_bits=mag_bits, group=group),
                            groups)


def mx_scalar_layout(*, exp_bits: int = EXP_BITS, mag_bits: int = MAG_BITS) -> data.StructLayout:
    """A broadcast scalar: ``exp``, ``mu`` (its pair's micro-exponent), ``mag``, ``sign``."""
    check_format(exp_bits=exp_bits, mag_bits=mag_bits)
    return data.StructLayout({"exp": unsigned(exp_bits), "mu": unsigned(1),
                              "mag": unsigned(mag_bits), "sign": unsigned(1)})


def mx_group_scalar(group: data.View, i: int) -> data.View:
    """Value ``i`` of a group view as a :func:`mx_scalar_layout` view: its magnitude and sign
    with the group's exponent and its pair's micro-exponent (the broadcast operand of
    :class:`hw.mx_mul.MxMul`)."""
    lay = mx_scalar_layout(exp_bits=len(group.exp), mag_bits=len(group.elems[i].mag))
    field = {"exp": group.exp, "mu": group.mu[i // 2], "mag": group.elems[i].mag,
             "sign": group.elems[i].sign}
    # the fields in the layout's bit order (LSB first)
    return data.View(lay, Cat(*(field[name] for name, _ in sorted(
        lay, key=lambda item: item[1].offset))))


def mx_scalar_group(scalar: data.View) -> data.View:
    """A :func:`mx_scalar_layout` view broadcast to a :func:`mx_group_layout` view: its
    exponent, its micro-exponent for every pair, its magnitude and sign for every value (the
    broadcast operand of :class:`hw.mx_mul.MxMul` with ``scalar`` and of
    :class:`hw.mx_fma.MxFma`)."""
    raw = Cat(scalar.exp, *([scalar.mu] * PAIRS), *([Cat(scalar.mag, scalar.sign)] * GROUP))
    return data.View(mx_group_layout(), raw)
