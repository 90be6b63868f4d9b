"""pytest/CLI side of the co-simulation: export a unit, build it, run a cocotb testbench on it.

The one entry point is :func:`run_cosim`::

    from cosim.runner import run_cosim
    result = run_cosim("mx_add", "cosim.tb_mx")   # raises CosimFailure on failure

It exports the registered unit (:func:`hw.export.export_cached`, skipped when its sources did
not change) to ``build/verilog/<unit>.v``, builds it with ``cocotb_tools.runner`` in
``build/sim-cache/<unit>_<sim>_<hash>/`` (named by a hash of the Verilog and the build
options: a finished build is reused, a lock serialises parallel jobs that need the same one;
Verilator gets a control file that makes only the ports public instead of cocotb's
``--public-flat-rw``, and ``ccache`` through ``OBJCACHE`` when installed), plans a stream
bench (a module naming a ``PLANNER``: stimulus and expectations, :func:`cosim.stream.make_plan`,
into ``plan.npz``, so the simulator needs neither torch nor the golden model), runs the testbench
module inside the simulator in the run's own folder ``<out>/runs/<name>_<sim>/`` (log,
counters, the trace of a passing stream bench), reads the JUnit XML ``<out>/<name>_<sim>.xml``
and merges a record into ``<out>/summary.json``; ``<out>`` is ``build/sim`` or ``$COSIM_OUT``.

Knobs (environment variables; an explicit argument wins): ``SIM`` (``icarus`` or
``verilator``, default ``icarus``), ``COCOTB_RANDOM_SEED`` (default: a fresh random seed,
logged and recorded — any seed must pass), ``COSIM_VECTORS`` (default: the testbench's),
``WAVES=1`` (FST from Icarus, VCD from Verilator, in the run folder), ``COSIM_OUT`` (where
results go; the test suite sets ``build/test-sim``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import logging
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw.export import UNITS, export_cached, load_units
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
    "sim_root",
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
    trace: Path | None = None

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


def vectors_arg(text: str) -> int:
    """argparse type of a ``--vectors`` option: :func:`check_vectors`, its error as argparse's."""
    import argparse

    try:
        return check_vectors(text, "--vectors")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def one_line_parser(**kwargs):
    """An ``argparse.ArgumentParser`` whose errors are one line naming the option, exit 2."""
    import argparse

    class OneLineParser(argparse.ArgumentParser):
        def error(self, message):
            sys.stderr.write(f"{self.prog}: error: {message}\n")
            sys.exit(2)

    return OneLineParser(**kwargs)


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
        env = verilator_env()
        ccache = shutil.which("ccache")
        if ccache and "OBJCACHE" not in os.environ:
            env["OBJCACHE"] = ccache  # Verilator's makefiles prefix the compiler with it
            # paths under the checkout (the include folders of a virtual environment in it)
            # hash as relative ones: a fresh clone elsewhere hits the same cache entries
            env.setdefault("CCACHE_BASEDIR", os.environ.get("CCACHE_BASEDIR") or
                           str(REPO_ROOT))
        return env
    which("iverilog")
    which("vvp")
    return {}


def sim_root() -> Path:
    """Where runs write their results: ``$COSIM_OUT`` (the test suite uses
    ``build/test-sim``), else ``build/sim`` (``make sim``, read by the report and the system
    model)."""
    raw = os.environ.get("COSIM_OUT", "").strip()
    return Path(raw).resolve() if raw else BUILD_ROOT / "sim"


def _ports(verilog: str, top: str) -> list[str]:
    m = re.search(rf"^module {re.escape(top)}\(([^)]*)\);", verilog, re.M)
    if m is None:
        raise CosimFailure(f"no module {top} in its exported Verilog")
    return [p.strip() for p in m.group(1).split(",") if p.strip()]


def _relative(arg: str, build_dir: Path) -> str:
    """A Verilator argument that is a file of this checkout, relative to the build folder
    (where Verilator runs): the generated C++ names its source file in error messages, so an
    absolute path would make every clone's C++ differ and miss ``ccache``."""
    path = Path(arg)
    if not path.is_absolute() or not path.is_file() or REPO_ROOT not in path.parents:
        return arg
    return os.path.relpath(path, build_dir)


def _get_runner(sim: str):
    from cocotb_tools.runner import Verilator, get_runner

    if sim != "verilator":
        return get_runner(sim)

    class PortsOnlyVerilator(Verilator):
        """cocotb's Verilator runner without ``--public-flat-rw`` (which makes every internal
        signal public and slows both the C++ compile and the model down): the build's control
        file makes only the toplevel's ports public."""

        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [_relative(a, Path(self.build_dir)) for a in cmds[0]
                       if a != "--public-flat-rw"]
            return cmds

    return PortsOnlyVerilator()


def _build_key(sources: Sequence[Path], sim: str, options: str) -> str:
    import cocotb

    h = hashlib.sha256()
    for source in sources:
        h.update(source.read_bytes())
        h.update(b"\0")
    h.update(f"\0{sim}\0{options}\0{cocotb.__version__}\0".encode())
    if sim == "verilator":
        h.update(verilator_env().get("VERILATOR_ROOT", "").encode())
    return h.hexdigest()[:16]


def build_unit(unit: str, sim: str | None = None, *, waves: bool | None = None,
               toplevel: str | None = None, sources: Sequence[Path] = (),
               build_args: Sequence[str] = ()) -> tuple[Any, Path, float]:
    """Export ``unit`` and build it for ``sim``; return (cocotb runner, build dir, seconds).

    Builds are cached by content: the folder ``build/sim-cache/<top>_<sim>_<hash>`` is named
    by a hash of the Verilog, the build options and the tool versions; a finished build
    (``built.ok``) is reused as it is (0 s), and a file lock makes parallel jobs that need the
    same build wait for one another instead of racing on one folder.

    ``toplevel``/``sources``/``build_args``: a wrapper module around the unit (the bulk mode,
    :mod:`cosim.bulk`), its extra Verilog files and extra Verilator arguments (the wrapper
    makes its own ports public with metacomments; otherwise a control file makes the unit's
    ports, and nothing else, public).

    Raises
    ------
    CosimFailure
        If the build fails (the message ends with the tail of ``build.log``).
    """
    sim = sim or default_sim()
    if sim not in SIMULATORS:
        raise ValueError(f"sim={sim!r}; supported: {', '.join(SIMULATORS)}")
    waves = _env_flag("WAVES") if waves is None else waves
    source = export_cached(unit, BUILD_ROOT / "verilog")
    top = toplevel or unit
    extra = [Path(x) for x in sources]
    build_args = [*_VERILATOR_ARGS, *build_args] if sim == "verilator" else []
    options = json.dumps({"waves": waves, "args": build_args, "timescale": _TIMESCALE,
                          "public": "ports", "top": top})
    key = _build_key([source, *extra], sim, options)
    build_dir = BUILD_ROOT / "sim-cache" / f"{top}_{sim}_{key}"
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    done = build_dir / "built.ok"
    runner = _get_runner(sim)
    t0 = time.perf_counter()
    with open(build_dir.with_name(build_dir.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_file():
            return runner, build_dir, 0.0
        all_sources: list[Any] = [source, *extra]
        if sim == "verilator" and toplevel is None:
            from cocotb_tools.runner import VerilatorControlFile

            vlt = build_dir / "ports.vlt"
            vlt.write_text("`verilator_config\n" + "".join(
                f'public_flat_rw -module "{unit}" -var "{p}"\n'
                for p in _ports(source.read_text(), unit)))
            all_sources.append(VerilatorControlFile(vlt))
        with _environment({**_tool_env(sim), "WAVES": "1" if waves else "0"}):
            try:
                runner.build(
                    sources=all_sources,
                    hdl_toplevel=top,
                    build_dir=build_dir,
                    build_args=build_args,
                    timescale=_TIMESCALE,
                    waves=waves,
                    always=True,
                    log_file=log,
                )
            except (RuntimeError, SystemExit, OSError) as exc:
                raise CosimFailure(f"building {top} with {sim} failed ({exc}); log {log}:\n"
                                   f"{_tail(log)}") from exc
        done.write_text(options)
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
        Importable cocotb test module, e.g. ``"cosim.tb_mx"``.
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
    # a stream bench (its module names a PLANNER) is planned here, where the golden model is
    # already loaded: the simulator process only plays and records the plan; with a window
    # (COSIM_WINDOW > 1) it plays it through the unit's generated window wrapper
    planner_name = getattr(importlib.import_module(test_module), "PLANNER", None)
    plan = meta = None
    if planner_name is not None:
        from .stream import (default_vectors, idle_knob, make_plan, plan_seed, stream_window,
                             window_layout, window_toplevel, write_window)

        n = vectors if vectors is not None else (
            check_vectors(os.environ["COSIM_VECTORS"].strip())
            if os.environ.get("COSIM_VECTORS", "").strip() else default_vectors(planner_name))
        try:
            k = stream_window(test_module, sim)
            plan, meta = make_plan(planner_name, unit, n, plan_seed(seed, test_module),
                                   idle=idle_knob(), mutant=mutant)
            if k > 1 and toplevel is None:
                comp = factory()
                comp._MustUse__silence = True  # read for its ports only, never elaborated
                layout = window_layout(comp, plan)
                meta["window"] = {"k": k, **layout}
                toplevel = window_toplevel(unit, k)
                sources = [*sources, write_window(unit, layout, k,
                                                  BUILD_ROOT / "verilog" / "window")]
                build_args = [*build_args, "--no-public-flat-rw"]
        except ValueError as exc:  # a bad knob or mutant name: one line, as from the bench
            raise CosimFailure(f"cosim {name} on {sim}: {exc}") from None
    runner, build_dir, build_s = build_unit(unit, sim, waves=waves, toplevel=toplevel,
                                            sources=sources, build_args=build_args)

    root = sim_root()
    # Mutant runs fail on purpose: their JUnit files stay out of build/sim/*.xml.
    xml_dir = root / "mutants" if mutant else root
    xml_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-mutant-{mutant}" if mutant else name
    # pytest-xdist workers may run the same testbench at once: each has its own files
    worker = os.environ.get("PYTEST_XDIST_WORKER", "").strip()
    tag = f"{sim}-{worker}" if worker else sim
    results_xml = xml_dir / f"{stem}_{tag}.xml"
    # each run has its own folder (the build folder is shared, read-only, by every run)
    run_dir = root / "runs" / f"{stem}_{tag}"
    run_dir.mkdir(parents=True, exist_ok=True)
    result_file = run_dir / "counters.json"
    trace_file = run_dir / "trace"  # .npz (stream benches) or a pickle (cosim.replay)
    log = run_dir / "sim.log"
    result_file.unlink(missing_ok=True)
    trace_file.unlink(missing_ok=True)
    env: dict[str, str | None] = {
        **_tool_env(sim),
        "COSIM_RESULT_FILE": str(result_file),
        "COSIM_TRACE_FILE": str(trace_file),
        "SPU_TIMING_FILE": os.environ.get("SPU_TIMING_FILE") or str(root / "spu_timing.yaml"),
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
    if plan is not None:
        from .stream import save_plan

        plan_file = run_dir / "plan.npz"
        plan_file.unlink(missing_ok=True)
        save_plan(plan_file, plan, meta)
        env["COSIM_PLAN_FILE"] = str(plan_file)
    t0 = time.perf_counter()  # run_s: the simulator alone (the plan's time is plan_s)
    crash = None
    with _environment(env):
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=toplevel or unit,
                hdl_toplevel_lang="verilog",
                build_dir=build_dir,
                test_dir=run_dir,
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
        benches=benches, trace=trace_file if trace_file.is_file() else None)
    _log.info("cosim %s_%s: %s, %d vectors, %d mismatches, %s cycles/s, build %.1f s, run %.1f s",
              name, sim, "passed" if passed else "FAILED", vec, mism, result.cycles_per_s,
              build_s, run_s)
    if record:
        update_summary({f"{name}_{sim}": result.record()}, root / "summary.json")
    if check and not passed:
        replay = (f"SIM={sim} COCOTB_RANDOM_SEED={seed}"
                  + (f" COSIM_VECTORS={vectors}" if vectors is not None else ""))
        raise CosimFailure(
            f"cosim {name} on {sim} failed: {failed}/{tests} tests failed, {vec} vectors, "
            f"{mism} mismatches (replay with {replay}); log {log}:\n{_tail(log)}", result)
    return result
