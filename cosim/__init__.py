"""Co-simulation of the exported RTL against the Python golden models (cocotb 2.x).

* :mod:`cosim.runner` — pytest/CLI side: export, build, run, collect results
  (:func:`cosim.runner.run_cosim`).
* :mod:`cosim.tb` — simulator side: driver, monitor, scoreboard, :class:`cosim.tb.StreamBench`.
* :mod:`cosim.summary` — ``build/sim/summary.json``.
* :mod:`cosim.benches` — the list of testbenches that ``python -m cosim`` runs.

See ``docs/cosim.md``. This package must not import cocotb at import time: :mod:`cosim.tb`
is the only module that does, and only the simulator imports it.
"""
