"""Amaranth RTL of the Pimba state-update processing engine (SPE).

Every synthesisable unit is a :class:`amaranth.lib.wiring.Component` registered in
:data:`hw.export.UNITS`, so that ``python -m hw.export`` turns it into Verilog for
co-simulation (``cosim``) and synthesis (``synth``). Tool discovery lives in :mod:`hw.tools`.
"""
