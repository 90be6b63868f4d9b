"""pytest/CLI side of the co-simulation: export a unit, build it, run a cocotb testbench on it.

The one entry point is :func:`run_cosim`::

    from cosim.runner import run_cosim
    result = run_cosim("example_mac", "cosim.tb_example_mac")   # raises CosimFailure on failure

It exports the registered unit (:mod:`hw.export`) to ``build/verilog/<unit>.v``, builds it with
``cocotb_tools.runner`` in ``build/sim/<unit>_<sim>/`` (incremental: an unchanged unit is not
rebuilt), runs the testbench module inside the simulator, reads the JUnit XML
``build/sim/<name>_<sim>.xml`` and the counters the bench wrote, and merges a record into
``build/sim/summary.json``.

Knobs (environment variables; an explicit argument wins): ``SIM`` (``icarus`` or
``verilator``, default ``icarus``), ``COCOTB_RANDOM_SEED`` (default: a fresh random seed,
logged and recorded — any seed must pass), ``COSIM_VECTORS`` (default: the testbench's),
``WAVES=1`` (FST from Icarus, VCD from Verilator, in the build folder).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw.export import UNITS, export_unit, load_units
from hw.tools import verilator_env, which

from .summary import update_summary

__all__ = [
    "BUILD_ROOT",
    "CosimFailure",
    "CosimResult",
    "REPO_ROOT",
    "SIMULATORS",
    "build_unit",
    "check_vectors",
    "default_sim",
    "run_cosim",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = REPO_ROOT / "build"
SIMULATORS = ("icarus", "verilator")

# Verilator: the Verilog that Amaranth emits is not lint-clean (unused bits, widths of
# intermediate expressions); warnings must not stop the build.
_VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style"]
_TIMESCALE = ("1ns", "1ps")

_log = logging.getLogger("cosim.runner")


class CosimFailure(AssertionError):
    """A co-simulation failed: build error, simulator crash, or a failing testbench."""

    def __init__(self, message: str, result: CosimResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class CosimResult:
    """Outcome of one :func:`run_cosim` call.

    ``vectors``/``mismatches``/``cycles_per_s`` are summed over the benches of the testbench
    module (``benches`` holds what each wrote); ``build_s`` and ``run_s`` are wall-clock
    seconds of the build (0 when up to date) and of the simulator run.
    """
    name: str
    unit: str
    sim: str
    seed: int
    passed: bool
    tests: int
    failed: int
    vectors: int
    mismatches: int
    cycles: int
    cycles_per_s: float | None
    build_s: float
    run_s: float
    results_xml: Path
    log: Path
    mutant: str | None = None
    benches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The ``summary.json`` record of this run (with the operand-class ``coverage`` table
        and the ``bulk`` flag of a bench that wrote them)."""
        extra = {k: b[k] for b in self.benches.values() for k in ("coverage", "bulk") if k in b}
        return {
            **extra,
            "unit": self.unit,
            "simulator": self.sim,
            "seed": self.seed,
            "passed": self.passed,
            "vectors": self.vectors,
            "mismatches": self.mismatches,
            "cycles": self.cycles,
            "cycles_per_s": self.cycles_per_s,
            "build_s": round(self.build_s, 2),
            "run_s": round(self.run_s, 2),
        }


def default_sim() -> str:
    """The ``SIM`` knob, validated (default ``icarus``)."""
    sim = os.environ.get("SIM", "").strip().lower() or "icarus"
    if sim not in SIMULATORS:
        raise ValueError(f"SIM={sim!r}: unknown simulator (allowed: {', '.join(SIMULATORS)})")
    return sim


def check_vectors(value, name: str = "COSIM_VECTORS") -> int:
    """A vector count (int or text): an integer >= 1, else a one-line ValueError naming
    ``name`` (zero vectors would check nothing and still pass)."""
    try:
        n = int(value, 0) if isinstance(value, str) else int(value)
        if isinstance(value, bool) or (not isinstance(value, str) and n != value):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: not an integer (allowed: an integer >= 1)") from None
    if n < 1:
        raise ValueError(f"{name}={n}: out of range (allowed: an integer >= 1; zero vectors "
                         "check nothing)")
    return n


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "yes", "true", "on")


@contextlib.contextmanager
def _environment(variables: Mapping[str, str | None]) -> Iterator[None]:
    """Set (value) or unset (None) environment variables, and put the repository on sys.path,
    for the duration of a cocotb runner call.

    ``cocotb_tools.runner`` builds the simulator's environment from :data:`os.environ`
    (which overrides its ``extra_env``) and sets ``PYTHONPATH`` from :data:`sys.path`.
    """
    saved = {name: os.environ.get(name) for name in variables}
    added_path = str(REPO_ROOT) not in sys.path
    try:
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if added_path:
            sys.path.insert(0, str(REPO_ROOT))
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if added_path:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(REPO_ROOT))


def _tool_env(sim: str) -> dict[str, str]:
    if sim == "verilator":
        return verilator_env()
    which("iverilog")
    which("vvp")
    return {}


def _get_runner(sim: str):
    from cocotb_tools.runner import get_runner

    return get_runner(sim)


def build_unit(unit: str, sim: str | None = None, *, waves: bool | None = None,
               toplevel: str | None = None, sources: Sequence[Path] = (),
               build_args: Sequence[str] = ()) -> tuple[Any, Path, float]:
    """Export ``unit`` and build it for ``sim``; return (cocotb runner, build dir, seconds).

    ``toplevel``/``sources``/``build_args``: a wrapper module around the unit (the bulk mode,
    :mod:`cosim.bulk`), its extra Verilog files and extra Verilator arguments; the build
    folder is then ``build/sim/<toplevel>_<sim>/``.

    Raises
    ------
    CosimFailure
        If the build fails (the message ends with the tail of ``build.log``).
    """
    sim = sim or default_sim()
    if sim not in SIMULATORS:
        raise ValueError(f"sim={sim!r}; supported: {', '.join(SIMULATORS)}")
    waves = _env_flag("WAVES") if waves is None else waves
    source = export_unit(unit, BUILD_ROOT / "verilog")
    build_dir = BUILD_ROOT / "sim" / f"{toplevel or unit}_{sim}"
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    build_args = [*_VERILATOR_ARGS, *build_args] if sim == "verilator" else []
    # cocotb's up-to-date check looks at source times only: a change of options (waves)
    # must force a rebuild.
    stamp = build_dir / "build-options.json"
    options = json.dumps({"waves": waves, "args": build_args, "timescale": _TIMESCALE})
    always = not stamp.is_file() or stamp.read_text() != options
    t0 = time.perf_counter()
    with _environment({**_tool_env(sim), "WAVES": "1" if waves else "0"}):
        runner = _get_runner(sim)
        try:
            runner.build(
                sources=[source, *sources],
                hdl_toplevel=toplevel or unit,
                build_dir=build_dir,
                build_args=build_args,
                timescale=_TIMESCALE,
                waves=waves,
                always=always,
                log_file=log,
            )
        except (RuntimeError, SystemExit, OSError) as exc:
            stamp.unlink(missing_ok=True)
            raise CosimFailure(f"building {unit} with {sim} failed ({exc}); log {log}:\n"
                               f"{_tail(log)}") from exc
    stamp.write_text(options)
    return runner, build_dir, time.perf_counter() - t0


def _tail(path: Path, lines: int = 40) -> str:
    if not path.is_file():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _seed(seed: int | None) -> int:
    if seed is not None:
        return int(seed)
    raw = os.environ.get("COCOTB_RANDOM_SEED", "").strip()
    if raw:
        try:
            return int(raw, 0)
        except ValueError:
            raise ValueError(f"COCOTB_RANDOM_SEED={raw!r}: not an integer (allowed: an integer "
                             "seed, or unset for a fresh one)") from None
    return secrets.randbits(31)


def run_cosim(
    unit: str,
    test_module: str,
    *,
    name: str | None = None,
    sim: str | None = None,
    seed: int | None = None,
    vectors: int | None = None,
    waves: bool | None = None,
    mutant: str | None = None,
    testcase: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    check: bool = True,
    record: bool | None = None,
    min_vectors: int = 1,
    toplevel: str | None = None,
    sources: Sequence[Path] = (),
    build_args: Sequence[str] = (),
) -> CosimResult:
    """Build ``unit`` and run the cocotb testbench module ``test_module`` on it.

    Parameters
    ----------
    unit : str
        Name of a unit registered in :data:`hw.export.UNITS` (also the Verilog toplevel).
    test_module : str
        Importable cocotb test module, e.g. ``"cosim.tb_example_mac"``.
    name : str, optional
        Testbench name for file names and the summary key ``<name>_<sim>`` (default: unit).
    sim : {"icarus", "verilator"}, optional
        Default: the ``SIM`` knob, else ``icarus``.
    seed : int, optional
        ``COCOTB_RANDOM_SEED``; default: the environment's, else a fresh random one.
    vectors : int, optional
        ``COSIM_VECTORS`` for the testbench; default: the environment's, else the testbench's.
    waves : bool, optional
        Record waveforms; default: the ``WAVES`` knob.
    mutant : str, optional
        Run with the named broken reference model (``COSIM_MUTANT``); such a run is expected
        to fail; it is not recorded in the summary by default and its JUnit XML goes to
        ``build/sim/mutants/``.
    testcase : str, optional
        Run only this cocotb test of the module.
    extra_env : mapping, optional
        More environment variables for the simulator process.
    check : bool
        Raise :class:`CosimFailure` when the run fails (default). With ``False``, return the
        failed result instead (used by mutation tests).
    record : bool, optional
        Merge the result into ``build/sim/summary.json``; default: when ``mutant`` is None.
    min_vectors : int
        A run that checked fewer vectors did not pass (default 1: zero vectors check nothing;
        0 only for a testbench that checks no vectors, such as ``cosim.tb_env``).
    toplevel, sources, build_args : optional
        A wrapper around the unit as the simulation toplevel (see :func:`build_unit`).
    """
    sim = sim or default_sim()
    if sim not in SIMULATORS:
        raise ValueError(f"sim={sim!r}: unknown simulator (allowed: {', '.join(SIMULATORS)})")
    if vectors is not None:
        vectors = check_vectors(vectors, "vectors")
    elif os.environ.get("COSIM_VECTORS", "").strip():
        check_vectors(os.environ["COSIM_VECTORS"].strip())
    name = name or unit
    seed = _seed(seed)
    waves = _env_flag("WAVES") if waves is None else waves
    if record is None:
        record = mutant is None
    if unit not in UNITS:
        load_units()
    factory = UNITS.get(unit)
    runner, build_dir, build_s = build_unit(unit, sim, waves=waves, toplevel=toplevel,
                                            sources=sources, build_args=build_args)

    sim_root = BUILD_ROOT / "sim"
    # Mutant runs fail on purpose: their JUnit files stay out of build/sim/*.xml.
    xml_dir = sim_root / "mutants" if mutant else sim_root
    xml_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-mutant-{mutant}" if mutant else name
    results_xml = xml_dir / f"{stem}_{sim}.xml"
    result_file = build_dir / f"{stem}.counters.json"
    log = build_dir / f"{stem}.log"
    result_file.unlink(missing_ok=True)
    env: dict[str, str | None] = {
        **_tool_env(sim),
        "COSIM_RESULT_FILE": str(result_file),
        "COSIM_UNIT": unit,
        "COSIM_UNIT_MODULE": getattr(factory, "__module__", None),
        "COSIM_MUTANT": mutant or "",
        # Rewrite asserts of the testbench modules only: rewriting every module (cocotb's
        # default) makes `import torch` inside the simulator very slow.
        "COCOTB_REWRITE_ASSERTION_FILES": "tb_*.py",
        "WAVES": "1" if waves else "0",
        **(extra_env or {}),
    }
    if vectors is not None:
        env["COSIM_VECTORS"] = str(vectors)
    _log.info("cosim %s: unit %s on %s, seed %d%s", name, unit, sim, seed,
              f", MUTANT {mutant}" if mutant else "")
    t0 = time.perf_counter()
    crash = None
    with _environment(env):
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=toplevel or unit,
                hdl_toplevel_lang="verilog",
                build_dir=build_dir,
                test_dir=build_dir,
                results_xml=str(results_xml),
                seed=seed,
                testcase=testcase,
                waves=waves,
                timescale=_TIMESCALE,
                log_file=log,
            )
        except (RuntimeError, SystemExit) as exc:  # failing tests exit under pytest
            crash = exc
    run_s = time.perf_counter() - t0

    from cocotb_tools.runner import get_results

    try:
        tests, failed = get_results(results_xml)
    except RuntimeError:
        tests, failed = 0, 0
    benches = json.loads(result_file.read_text()) if result_file.is_file() else {}
    vec = sum(b.get("vectors", 0) for b in benches.values())
    mism = sum(b.get("mismatches", 0) + b.get("pending", 0) for b in benches.values())
    cycles = sum(b.get("cycles", 0) for b in benches.values())
    wall = sum(b.get("wall_s", 0.0) for b in benches.values())
    # a run that checked no vector did not pass, whatever the simulator says
    passed = tests > 0 and failed == 0 and vec >= min_vectors and (
        crash is None or isinstance(crash, SystemExit) and not crash.code)
    result = CosimResult(
        name=name, unit=unit, sim=sim, seed=seed, passed=passed, tests=tests, failed=failed,
        vectors=vec, mismatches=mism, cycles=cycles,
        cycles_per_s=round(cycles / wall, 1) if wall > 0 else None,
        build_s=build_s, run_s=run_s, results_xml=results_xml, log=log, mutant=mutant,
        benches=benches)
    _log.info("cosim %s_%s: %s, %d vectors, %d mismatches, %s cycles/s, build %.1f s, run %.1f s",
              name, sim, "passed" if passed else "FAILED", vec, mism, result.cycles_per_s,
              build_s, run_s)
    if record:
        update_summary({f"{name}_{sim}": result.record()}, sim_root / "summary.json")
    if check and not passed:
        replay = (f"SIM={sim} COCOTB_RANDOM_SEED={seed}"
                  + (f" COSIM_VECTORS={vectors}" if vectors is not None else ""))
        raise CosimFailure(
            f"cosim {name} on {sim} failed: {failed}/{tests} tests failed, {vec} vectors, "
            f"{mism} mismatches (replay with {replay}); log {log}:\n{_tail(log)}", result)
    return result
