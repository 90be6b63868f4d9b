"""Design-space exploration of the SPE and the SPU: ``python -m dse --grid FILE --out DIR``.

Every point of a grid (:mod:`dse.space`: keys derived from the RTL constructors) is
synthesized, co-simulated bit-exactly, measured by the accuracy study and by the system model
(:mod:`dse.evaluate`), as one pure job on the project's executor (local pool or Ray); the
results, the Pareto fronts and where the paper's MX8 sits are written by :mod:`dse.pareto`.
See docs/dse.md.
"""
