"""Synthesis flow: Yosys area, OpenSTA timing and area scaling of the hardware units.

Run ``python -m synth --help``; see docs/synth.md.
"""
