"""Golden model of the fp16 baseline PIM units (``hw/pim_timemux_fp16.py``,
``hw/pim_pipelined_fp16.py``): one state-update sub-chunk in fp16.

A sub-chunk is one 256-bit DRAM column: :data:`LANES` = 16 fp16 values along dim_head. Per
sub-chunk (state column ``j``), with every operation rounded to fp16 (round-to-nearest-even,
exactly PyTorch's ``torch.float16`` arithmetic, :func:`quant.fparith.ref_mul` /
:func:`~quant.fparith.ref_add`)::

    S'[i] = fp16( fp16(d[i] * S[i]) + fp16(k[i] * v_j) )
    y     = tree( fp16(S'[i] * q[i]) )

``tree`` is the balanced pairwise reduction in lane order, every sum rounded to fp16::

    level 1: t[i] = p[2i] + p[2i+1]            (8 sums)
    level 2: t[i] = t[2i] + t[2i+1]            (4 sums)
    level 3, level 4 ...                       (2 sums, 1 sum)

i.e. ``((p0+p1)+(p2+p3)) + ((p4+p5)+(p6+p7))`` and so on: the order in which the hardware's
adder lanes reduce (the time-multiplexed unit reuses its 16 adders for 4 steps, the pipelined
unit has one adder level per stage). ``y`` is the fp16 partial of ``y_j`` for this dim_head
range; the GPU accumulates partials in higher precision. NaN results are the canonical fp16
NaN (0x7E00), as in :mod:`quant.fparith`.
"""

from __future__ import annotations

import numpy as np

from .constants import FP16_LANES
from .fparith import ref_add, ref_mul

__all__ = ["LANES", "state_update_fp16", "dot_tree_fp16", "subchunk_update_fp16"]

#: fp16 values per 256-bit column (one sub-chunk of the fp16 baselines).
LANES = FP16_LANES


def _bits(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64) & 0xFFFF


def state_update_fp16(s, d, k, v) -> np.ndarray:
    """``fp16(fp16(d*s) + fp16(k*v))`` element-wise on fp16 encodings (``v`` broadcasts)."""
    s, d, k, v = (_bits(x) for x in (s, d, k, v))
    return ref_add(ref_mul(d, s, "fp16"), ref_mul(k, v, "fp16"), "fp16")


def dot_tree_fp16(s, q) -> np.ndarray:
    """fp16 dot product over the last axis (a power of two long), pairwise-tree order."""
    p = ref_mul(_bits(s), _bits(q), "fp16")
    n = p.shape[-1]
    if n < 1 or n & (n - 1):
        raise ValueError(f"the last axis must be a power of two long, not {n}")
    while p.shape[-1] > 1:
        p = ref_add(p[..., 0::2], p[..., 1::2], "fp16")
    return p[..., 0]


def subchunk_update_fp16(s, d, k, v, q) -> tuple[np.ndarray, np.ndarray]:
    """State update and ``y`` partial of sub-chunks.

    Parameters
    ----------
    s, d, k, q : array_like of int, shape (..., LANES)
        fp16 encodings of the state sub-chunk, decay, key and query.
    v : array_like of int, shape (...)
        The element ``v_j`` of each sub-chunk (broadcast over the lanes).

    Returns
    -------
    (s_new, y)
        ``s_new`` shape (..., LANES), ``y`` shape (...): fp16 encodings.
    """
    s_new = state_update_fp16(s, d, k, np.asarray(v, dtype=np.int64)[..., None])
    return s_new, dot_tree_fp16(s_new, q)
