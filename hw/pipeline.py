"""Latency derived from the pipeline a unit builds.

A pipelined unit names its register stages in order (``STAGES``, or :attr:`Staged.stages` when
they depend on parameters); ``elaborate`` builds one valid register per stage from that list
(:meth:`Staged.stage_valids`: every stage but the last, whose valid register is ``o_valid``),
and :attr:`Staged.latency` is the number of stages. The hw tests measure the latency in the
Amaranth simulator (``tests/hw_stream.py``, :func:`measure_latency`) and compare it with this
property; the co-simulation benches read it as the expected input-to-output distance.

A unit without ``i_valid``/``o_valid`` (the fp16 PIM baselines, the HBM-PIM PCU) names its
stages the same way, from the command that starts an operation to its output (``o_y_valid``,
the register file written); its ``elaborate`` unpacks :attr:`Staged.stages` (or
:meth:`Staged.stage_valids`), so the list cannot disagree with what it builds, and the tests
measure that latency with the unit's own commands (``tests/test_hw_latency.py``).
"""

from __future__ import annotations

from collections.abc import Callable

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

    def stage_valids(self, *, named: bool = True, last: bool = False,
                     name: Callable[[str], str] | None = None) -> list[Signal]:
        """The valid registers ``<stage>_valid`` of every stage but the last (the last one's
        is, or drives, ``o_valid``), to be unpacked by ``elaborate``: a stage list that does not
        match the pipeline built fails there. ``last=True`` includes the last stage's (a unit
        whose output valid is driven by it). ``name`` gives a stage's register name, and
        ``named=False`` leaves them unnamed (Amaranth's ``$signal``), as a unit whose Verilog
        predates this helper had them."""
        stages = self.stages if last else self.stages[:-1]
        if not named:
            return [Signal() for _ in stages]
        name = name or (lambda stage: f"{stage}_valid")
        return [Signal(name=name(stage)) for stage in stages]
