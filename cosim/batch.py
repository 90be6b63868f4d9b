"""The operation batches of the MX unit benches (:class:`Batch`) and their port words: the
layer under both the vector generators (:mod:`cosim.mx_vectors`) and the operand-class
coverage (:mod:`cosim.coverage`), so neither imports the other's internals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from quant.constants import GROUPS_PER_COLUMN
from quant.mx8 import MX8, MX8Scalar, to_words

__all__ = ["CLASSES", "DRAWN", "GROUPS", "KINDS", "Batch", "subchunk_words"]

CLASSES = ("random", "zero", "exp_diff", "mu", "saturate", "cancel", "extreme_exp", "nan",
           "small", "noncanonical", "enumerated")
#: The classes :func:`make_batch` draws from.
DRAWN = CLASSES[:-1]
#: Unit kinds: the operation of the golden model each one checks.
KINDS = ("mul", "mul_scalar", "add", "dot")
GROUPS = GROUPS_PER_COLUMN


@dataclass
class Batch:
    """``n`` operations: operands as MX8 fields and the rounding mode of each."""
    kind: str
    a: MX8                       # (n, 2)
    b: MX8 | MX8Scalar           # (n, 2) or scalars (n,)
    stoch: torch.Tensor          # (n,) bool
    cls: torch.Tensor            # (n,) int, index into CLASSES

    def __len__(self) -> int:
        return int(self.stoch.shape[0])

    def slice(self, start: int, stop: int) -> "Batch":
        """Operations ``start .. stop - 1``."""
        return Batch(self.kind, self.a[start:stop], _index(self.b, slice(start, stop)),
                     self.stoch[start:stop], self.cls[start:stop])

    @staticmethod
    def concat(batches: Sequence["Batch"]) -> "Batch":
        """The operations of ``batches`` (of one kind) in order."""
        def cat(xs):
            return type(xs[0])(*(torch.cat([getattr(x, k) for x in xs])
                                 for k in ("exp", "mu", "sign", "mag")))
        return Batch(batches[0].kind, cat([x.a for x in batches]), cat([x.b for x in batches]),
                     torch.cat([x.stoch for x in batches]), torch.cat([x.cls for x in batches]))


def subchunk_words(m: MX8) -> list[int]:
    """256-bit port values of ``(n, 2)`` MX8 operands (:func:`quant.mx8.to_words`)."""
    return to_words(m, GROUPS)


def _index(b, sel):
    if isinstance(b, MX8Scalar):
        return MX8Scalar(b.exp[sel], b.mu[sel], b.sign[sel], b.mag[sel])
    return b[sel]
