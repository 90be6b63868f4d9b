"""Port words: the unsigned integers that carry a unit's operands in co-simulation and in the
port-level golden models (:mod:`quant.spe_slice`, :mod:`quant.spe_int8`)."""

from __future__ import annotations

import operator
from collections.abc import Sequence

__all__ = ["check_words"]


def check_words(words, name: str, width: int) -> list[int]:
    """Validate port words: a sequence of ints (not bools) in ``[0, 2**width)``; returns them as
    a list of Python ints. Raises a one-line TypeError/ValueError naming ``name[i]``."""
    if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
        raise TypeError(f"{name} must be a sequence of int port words, not "
                        f"{type(words).__name__}")
    out = []
    for i, w in enumerate(words):
        if isinstance(w, bool):
            raise TypeError(f"{name}[{i}] must be an int port word, not {w!r}")
        try:
            w = operator.index(w)
        except TypeError:
            raise TypeError(f"{name}[{i}] must be an int port word, not {w!r}") from None
        if not 0 <= w < 1 << width:
            raise ValueError(f"{name}[{i}] = {w:#x} does not fit the {width}-bit port")
        out.append(w)
    return out
