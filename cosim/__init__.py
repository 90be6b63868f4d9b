"""Co-simulation of the exported RTL against the Python golden models (cocotb 2.x).

* :mod:`cosim.runner` — pytest/CLI side: export, build, run, collect results
  (:func:`cosim.runner.run_cosim`).
* :mod:`cosim.stream` — stream benches as data (plans, bulk comparison, offline mutants);
  :mod:`cosim.replay` — record-and-replay of the reactive benches.
* :mod:`cosim.tb` — simulator side: knobs, seeds, the stream player (one trigger per cycle).
* :mod:`cosim.summary` — ``build/sim/summary.json``.
* :mod:`cosim.benches` — the list of testbenches that ``python -m cosim`` runs.

See ``docs/cosim.md``. This package must not import cocotb at import time: :mod:`cosim.tb`
is the only module that does, and only the simulator imports it.
"""
