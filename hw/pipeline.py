"""Latency derived from the pipeline a unit builds.

A pipelined unit names its register stages in order (``STAGES``, or :attr:`Staged.stages` when
they depend on parameters); ``elaborate`` builds one valid register per stage from that list
(:meth:`Staged.stage_valids`: every stage but the last, whose valid register is ``o_valid``),
and :attr:`Staged.latency` is the number of stages. The hw tests measure the latency in the
Amaranth simulator (``tests/hw_stream.py``, :func:`measure_latency`) and compare it with this
property; the co-simulation benches read it as the expected input-to-output distance.
"""

from __future__ import annotations

from amaranth.hdl import Signal

__all__ = ["Staged"]


class Staged:
    """Mixin: ``stages`` (the register stages, in order) and ``latency`` = their number."""

    #: Names of the register stages, in order (subclasses).
    STAGES: tuple[str, ...] = ()

    @property
    def stages(self) -> tuple[str, ...]:
        """The register stages from ``i_valid`` to ``o_valid``, in order."""
        return tuple(self.STAGES)

    @property
    def latency(self) -> int:
        """Cycles from ``i_valid`` to the matching ``o_valid``: one per stage."""
        return len(self.stages)

    def stage_valids(self, *, named: bool = True) -> list[Signal]:
        """The valid registers ``<stage>_valid`` of every stage but the last (the last one's
        is, or drives, ``o_valid``), to be unpacked by ``elaborate``: a stage list that does not
        match the pipeline built fails there. ``named=False`` leaves them unnamed (Amaranth's
        ``$signal``), as a unit whose Verilog predates this helper had them."""
        if not named:
            return [Signal() for _ in self.stages[:-1]]
        return [Signal(name=f"{name}_valid") for name in self.stages[:-1]]
