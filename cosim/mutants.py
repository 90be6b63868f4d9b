"""Deliberately broken RTL units, for the mutation tests of the co-simulation benches.

Importing this module registers them in :data:`hw.export.UNITS` (they are not in ``hw/``, so
``python -m hw.export`` never exports them). Only the mutation tests import it, and
:func:`registered` removes the registration (and the exported Verilog) again afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from hw.export import UNITS, register_unit
from hw.mx_add import MxAdd

__all__ = ["RTL_MUTANTS", "registered"]

#: unit name -> (testbench module, factory): the adder with an off-by-one alignment shift
#: (the smaller-exponent operand is shifted one place too far).
RTL_MUTANTS = {
    "mx_add_mutant_align": ("cosim.tb_mx", lambda: MxAdd(_mutant="align_off_by_one")),
}

for _name, (_module, _factory) in RTL_MUTANTS.items():
    register_unit(_name, _factory)


@contextlib.contextmanager
def registered(name: str, verilog_dir=None) -> Iterator[str]:
    """Keep the mutant ``name`` registered for the body, then unregister it and delete its
    exported Verilog from ``verilog_dir`` (so synthesis or exports never pick it up)."""
    register_unit(name, RTL_MUTANTS[name][1])
    try:
        yield name
    finally:
        UNITS.pop(name, None)
        if verilog_dir is not None:
            (verilog_dir / f"{name}.v").unlink(missing_ok=True)
