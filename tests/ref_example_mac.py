"""Golden model of :class:`hw.example_mac.ExampleMac`, with deliberately broken variants.

The mutants exist for the harness's own tests: each must make the scoreboard fail.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODELS", "MacIn", "MacModel", "MacOut"]


@dataclass(frozen=True)
class MacIn:
    """One operand pair; ``clear`` starts a new sum."""
    a: int
    b: int
    clear: int


@dataclass(frozen=True)
class MacOut:
    """The accumulator after adding one product."""
    acc: int


class MacModel:
    """``acc <- (clear ? 0 : acc) + a * b`` modulo ``2**acc_width``; call once per input."""

    def __init__(self, *, acc_width: int):
        self.mask = (1 << acc_width) - 1
        self.acc = 0

    def product(self, txn: MacIn) -> int:
        return txn.a * txn.b

    def __call__(self, txn: MacIn) -> MacOut:
        base = 0 if txn.clear else self.acc
        self.acc = (base + self.product(txn)) & self.mask
        return MacOut(self.acc)


class _NarrowProduct(MacModel):
    """Mutant: the product loses its top bit (a classic width bug)."""

    def product(self, txn: MacIn) -> int:
        return (txn.a * txn.b) & 0x7FFF


class _IgnoreClear(MacModel):
    """Mutant: ``clear`` is ignored."""

    def __call__(self, txn: MacIn) -> MacOut:
        return super().__call__(MacIn(txn.a, txn.b, 0))


#: Golden model and mutants, selected in the testbench by ``COSIM_MUTANT``.
MODELS = {"golden": MacModel, "narrow_product": _NarrowProduct, "ignore_clear": _IgnoreClear}
