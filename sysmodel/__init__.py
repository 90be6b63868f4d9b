"""End-to-end system model of GPU, GPU+Q, GPU+PIM and Pimba serving post-transformer LLMs.

Modules: :mod:`~sysmodel.hardware` (what the hardware is), :mod:`~sysmodel.workload` (what a
model computes per generation step), :mod:`~sysmodel.gpu` and :mod:`~sysmodel.pim` (how long
work takes on each device; :mod:`~sysmodel.pimsim` is the command-level reference for the PIM
closed form), :mod:`~sysmodel.system` (one point end to end), :mod:`~sysmodel.sweep` and
:mod:`~sysmodel.plot` (figure sets), :mod:`~sysmodel.cli` (``python -m sysmodel``),
:mod:`~sysmodel.ablation` (the GPU+PIM baseline changes, one at a time).
"""

from .config import ConfigError
from .system import Point, Result, evaluate

__all__ = ["ConfigError", "Point", "Result", "evaluate"]
