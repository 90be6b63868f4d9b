"""Helpers shared by the MX8 tests: random field tensors and conversion to reference dicts."""

import torch

from quant.mx8 import MX8


def random_fields(gen, lead, groups, *, exp_lo=1, exp_hi=254, canonical=True):
    """Random MX8 fields. With ``canonical`` the sign of zero magnitudes is 0 and all-zero
    groups are the zero group (what the SPE ever produces or receives)."""
    shape = tuple(lead) + (groups,)
    exp = torch.randint(exp_lo, exp_hi + 1, shape, generator=gen, dtype=torch.int32)
    mu = torch.randint(0, 2, shape + (8,), generator=gen, dtype=torch.int32)
    sign = torch.randint(0, 2, shape + (16,), generator=gen, dtype=torch.int32)
    mag = torch.randint(0, 64, shape + (16,), generator=gen, dtype=torch.int32)
    # make some magnitudes small / zero / saturated so the corner cases are frequent
    sel = torch.randint(0, 8, shape + (16,), generator=gen)
    mag = torch.where(sel == 0, 0, torch.where(sel == 1, 63, torch.where(sel == 2, mag % 4,
                                                                         mag)))
    if canonical:
        sign = torch.where(mag == 0, 0, sign)
        zero = (mag == 0).all(-1)
        exp = torch.where(zero, 0, exp)
        mu = torch.where(zero.unsqueeze(-1), 0, mu)
    return MX8(exp, mu, sign, mag)


def to_dicts(m: MX8):
    """Flatten an MX8 tensor into a list of reference group dicts (row-major)."""
    e = m.exp.reshape(-1).tolist()
    mu = m.mu.reshape(-1, 8).tolist()
    s = m.sign.reshape(-1, 16).tolist()
    mg = m.mag.reshape(-1, 16).tolist()
    return [{"E": e[i], "mu": mu[i], "s": s[i], "m": mg[i]} for i in range(len(e))]
