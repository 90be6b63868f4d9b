"""cocotb-side toolkit: driver, monitor, scoreboard and a streaming bench that ties them up.

This module runs *inside* the simulator (it imports :mod:`cocotb`); the pytest side that
builds and launches the simulator is :mod:`cosim.runner`.

The model of a unit under test is a *streaming pipeline*: an input transaction is accepted
on every rising edge where ``i_valid`` is high; after the unit's latency (its ``stages``
property) the matching output transaction is presented with ``o_valid`` high, in order.
Transactions are dataclasses whose fields name the ports (``a`` -> ``i_a``/``o_a``) and hold
unsigned integers of the full port width, so comparing transactions compares every bit.

Timing convention (the same on Icarus and Verilator): inputs are written just after a rising
edge (edge *n*), so the unit samples them at edge *n+1*; outputs are sampled in the read-only
phase after an edge *m*, i.e. they are the values registered at edge *m*. A unit with
``stages`` registers between input and output therefore answers with ``m - n == stages``,
which the scoreboard checks when given the latency.

Knobs (environment variables, with defaults): ``COSIM_VECTORS`` (number of transactions,
default given by the testbench), ``COSIM_IDLE`` (probability of an idle cycle, 0.25),
``COSIM_MUTANT`` (name of a deliberately broken reference model, "" for the golden one),
``COSIM_RESULT_FILE`` (where :meth:`StreamBench.run` writes its counters as JSON; set by the
runner). ``COCOTB_RANDOM_SEED`` is cocotb's: every test builds its own
``random.Random(cocotb.RANDOM_SEED)`` with :func:`make_rng` and logs it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

import cocotb
from cocotb.clock import Clock
from cocotb.handle import SimHandleBase
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotb.utils import get_sim_steps

__all__ = [
    "Driver",
    "Monitor",
    "Mismatch",
    "Scoreboard",
    "StreamBench",
    "env_float",
    "port_unsigned",
    "env_int",
    "fields_of",
    "make_rng",
    "port_map",
    "select_model",
    "unit_of",
    "write_result",
]

In = TypeVar("In")
Out = TypeVar("Out")

_log = logging.getLogger("cosim")


def env_int(name: str, default: int) -> int:
    """Integer knob ``name`` from the environment, ``default`` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw, 0)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None


def env_float(name: str, default: float) -> float:
    """Float knob ``name`` from the environment, ``default`` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def make_rng(log: logging.Logger | None = None) -> random.Random:
    """The test's own random generator, seeded from ``cocotb.RANDOM_SEED`` (and logged).

    cocotb derives ``RANDOM_SEED`` per test from ``COCOTB_RANDOM_SEED`` and the test's name, so
    a failure replays with the same ``COCOTB_RANDOM_SEED``.
    """
    seed = cocotb.RANDOM_SEED
    (log or _log).info("random seed: test seed %d (COCOTB_RANDOM_SEED=%s)", seed,
                       os.environ.get("COCOTB_RANDOM_SEED", "<unset>"))
    return random.Random(seed)


def select_model(models: Mapping[str, Callable[..., Any]], golden: str = "golden"):
    """Pick the reference model named by ``COSIM_MUTANT`` (default: ``golden``).

    Testbenches list their deliberately broken models (mutants) next to the golden one, so
    the harness tests can prove that the scoreboard catches each of them.

    Raises
    ------
    ValueError
        If ``COSIM_MUTANT`` names no model in ``models``.
    """
    name = os.environ.get("COSIM_MUTANT", "").strip() or golden
    if name not in models:
        raise ValueError(f"COSIM_MUTANT={name!r}; known models: {', '.join(sorted(models))}")
    if name != golden:
        _log.warning("using MUTANT reference model %r: this run is expected to fail", name)
    return models[name]


def unit_of(dut: SimHandleBase):
    """A fresh instance of the Amaranth unit simulated as ``dut``, for its properties
    (``stages``, widths): the testbench reads them instead of hard-coding them.

    The unit is ``hw.export.UNITS[$COSIM_UNIT]`` (default: the toplevel's name); the runner
    sets ``COSIM_UNIT_MODULE`` to the module that registers it, so nothing else is imported.
    """
    import importlib

    from hw.export import UNITS, load_units

    name = os.environ.get("COSIM_UNIT", "").strip() or dut._name
    module = os.environ.get("COSIM_UNIT_MODULE", "").strip()
    if name not in UNITS and module:
        importlib.import_module(module)
    if name not in UNITS:
        load_units()
    return UNITS[name]()


def fields_of(txn: Any) -> dict[str, int]:
    """Port values of a transaction: ``txn.pack()`` if it has one, else its dataclass fields."""
    pack = getattr(txn, "pack", None)
    if pack is not None:
        return dict(pack())
    return {f.name: getattr(txn, f.name) for f in dataclasses.fields(txn)}


def port_map(dut: SimHandleBase, txn_type: type, prefix: str) -> dict[str, SimHandleBase]:
    """Map each field ``x`` of the dataclass ``txn_type`` to the DUT port ``<prefix>x``.

    A type with a ``PORTS`` class attribute (a tuple of names) uses those names instead of its
    fields, for transactions that pack several fields into one port.
    """
    names = getattr(txn_type, "PORTS", None) or [f.name for f in dataclasses.fields(txn_type)]
    ports = {}
    for name in names:
        try:
            ports[name] = getattr(dut, prefix + name)
        except AttributeError:
            raise AttributeError(f"DUT has no port {prefix + name!r} for field {name!r} of "
                                 f"{txn_type.__name__}") from None
    return ports


@dataclasses.dataclass
class _Timed(Generic[In]):
    cycle: int
    txn: In


class _CycleClock:
    """Cycle numbers from simulation time, identical for every coroutine of a time step."""

    def __init__(self, period_steps: int):
        self.period_steps = period_steps
        self.t0 = get_sim_time("step")

    def now(self) -> int:
        return (get_sim_time("step") - self.t0) // self.period_steps


class Driver(Generic[In]):
    """Feeds transactions into ``ports`` with ``valid`` high, one per cycle, with random idle
    cycles in between.

    Parameters
    ----------
    clk, valid : SimHandleBase
        Clock and the valid input of the unit.
    ports : mapping of str to SimHandleBase
        Port of each transaction field (see :func:`port_map`).
    rng : random.Random
        The test's generator; decides the idle cycles and the junk driven on idle data ports.
    idle_prob : float
        Probability of an idle cycle before each transaction.
    on_send : callable, optional
        Called as ``on_send(txn, cycle)`` when a transaction is driven; the bench connects the
        reference model and the scoreboard here.
    """

    def __init__(self, clk: SimHandleBase, valid: SimHandleBase,
                 ports: Mapping[str, SimHandleBase], rng: random.Random, *,
                 idle_prob: float = 0.25,
                 on_send: Callable[[In, int], None] | None = None,
                 cycle_clock: _CycleClock | None = None):
        if not 0.0 <= idle_prob < 1.0:
            raise ValueError(f"idle_prob must be in [0, 1), not {idle_prob}")
        self.clk = clk
        self.valid = valid
        self.ports = dict(ports)
        self.rng = rng
        self.idle_prob = idle_prob
        self.on_send = on_send
        self._clock = cycle_clock
        self.sent = 0
        self.idle_cycles = 0

    def _junk(self) -> None:
        # Idle cycles carry random data: a unit must ignore its inputs while valid is low.
        for port in self.ports.values():
            port.value = self.rng.getrandbits(len(port))

    async def send(self, txns: Iterable[In]) -> None:
        """Drive every transaction of ``txns``; return after the last one was sampled."""
        for txn in txns:
            while self.rng.random() < self.idle_prob:
                self.valid.value = 0
                self._junk()
                self.idle_cycles += 1
                await RisingEdge(self.clk)
            values = fields_of(txn)
            for name, port in self.ports.items():
                port.value = values[name]
            self.valid.value = 1
            cycle = self._clock.now() if self._clock else self.sent
            if self.on_send is not None:
                self.on_send(txn, cycle)
            self.sent += 1
            await RisingEdge(self.clk)
        self.valid.value = 0


_RESOLVABLE = frozenset("01LH")


def _resolvable(value) -> bool:
    """``value.is_resolvable``, but from the value's string (``LogicArray.is_resolvable``
    builds one object per bit: ~0.2 ms for a 256-bit port, the bench's largest cost)."""
    return frozenset(str(value)) <= _RESOLVABLE


class Monitor(Generic[Out]):
    """Samples ``ports`` into ``txn_type`` on every cycle where ``valid`` is high.

    ``txn_type`` is built with keyword arguments named after the ports, or with its
    ``unpack(values)`` class method when it has one. Sampling happens in the read-only phase
    after each rising edge. An X or Z on ``valid``, or on a data port while ``valid`` is high,
    fails the test.
    """

    def __init__(self, clk: SimHandleBase, valid: SimHandleBase,
                 ports: Mapping[str, SimHandleBase], txn_type: type[Out],
                 callback: Callable[[Out, int], None], *,
                 cycle_clock: _CycleClock | None = None):
        self.clk = clk
        self.valid = valid
        self.ports = dict(ports)
        self.txn_type = txn_type
        self.callback = callback
        self._clock = cycle_clock
        self.received = 0
        self._task = None

    def _build(self, values: dict[str, int]) -> Out:
        unpack = getattr(self.txn_type, "unpack", None)
        return unpack(values) if unpack is not None else self.txn_type(**values)

    async def _run(self) -> None:
        cycles = 0
        while True:
            await RisingEdge(self.clk)
            await ReadOnly()
            cycles += 1
            valid = self.valid.value
            if not valid.is_resolvable:
                raise AssertionError(f"{self.valid._name} is {valid} (not 0/1)")
            if not valid:
                continue
            values = {}
            for name, port in self.ports.items():
                value = port.value
                if not _resolvable(value):
                    raise AssertionError(f"{port._name} is {value} while valid is high")
                values[name] = value.to_unsigned()
            self.received += 1
            self.callback(self._build(values), self._clock.now() if self._clock else cycles)

    def start(self) -> None:
        """Start sampling in the background (idempotent)."""
        if self._task is None:
            self._task = cocotb.start_soon(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """One failed comparison: index of the vector, expected and actual transaction."""
    index: int
    expected: Any
    actual: Any
    reason: str


def _diff(expected: Any, actual: Any) -> str:
    if expected is None or actual is None:
        return ""
    if not (dataclasses.is_dataclass(expected) and dataclasses.is_dataclass(actual)):
        return f"expected {expected!r}, got {actual!r}"
    parts = []
    for f in dataclasses.fields(expected):
        e, a = getattr(expected, f.name), getattr(actual, f.name, None)
        if e != a:
            if isinstance(e, int) and isinstance(a, int):
                parts.append(f"{f.name}: expected {e:#x}, got {a:#x} (xor {e ^ a:#x})")
            else:
                parts.append(f"{f.name}: expected {e!r}, got {a!r}")
    return "; ".join(parts)


class Scoreboard(Generic[Out]):
    """In-order scoreboard: an expected queue compared, transaction by transaction, with what
    the monitor saw.

    Parameters
    ----------
    name : str
        Name used in log messages.
    latency : int, optional
        When given, every output must come exactly ``latency`` cycles after its input.
    max_logged : int
        Number of mismatches logged in full (all are counted).
    """

    def __init__(self, name: str, *, latency: int | None = None, max_logged: int = 10,
                 log: logging.Logger | None = None):
        self.name = name
        self.latency = latency
        self.max_logged = max_logged
        self.log = log or _log
        self._expected: deque[_Timed[Out]] = deque()
        self.vectors = 0
        self.mismatches: list[Mismatch] = []

    @property
    def pending(self) -> int:
        """Number of expected transactions not yet received."""
        return len(self._expected)

    def expect(self, txn: Out, cycle: int = 0) -> None:
        """Queue ``txn`` as the next expected output; ``cycle`` is when its input was driven."""
        self._expected.append(_Timed(cycle, txn))

    def _fail(self, mismatch: Mismatch) -> None:
        self.mismatches.append(mismatch)
        if len(self.mismatches) <= self.max_logged:
            self.log.error("%s: vector %d: %s %s", self.name, mismatch.index, mismatch.reason,
                           _diff(mismatch.expected, mismatch.actual))

    def receive(self, txn: Out, cycle: int = 0) -> None:
        """Compare an observed output with the oldest expected one."""
        index = self.vectors
        self.vectors += 1
        if not self._expected:
            self._fail(Mismatch(index, None, txn, f"unexpected output {txn!r}"))
            return
        exp = self._expected.popleft()
        if exp.txn != txn:
            self._fail(Mismatch(index, exp.txn, txn, "value mismatch:"))
        elif self.latency is not None and cycle - exp.cycle != self.latency:
            self._fail(Mismatch(index, exp.txn, txn,
                                f"latency {cycle - exp.cycle} cycles, expected {self.latency}"))

    def summary(self) -> str:
        return (f"{self.name}: {self.vectors} vectors, {len(self.mismatches)} mismatches, "
                f"{self.pending} pending")

    def check(self) -> None:
        """Fail (AssertionError) on any mismatch or expected output never seen."""
        assert not self.mismatches and not self._expected, self.summary()


class StreamBench(Generic[In, Out]):
    """A complete streaming testbench: clock, reset, driver, monitor, reference model and
    scoreboard, plus the counters written for the run summary.

    Parameters
    ----------
    dut : SimHandleBase
        The toplevel; it must have ``clk``, ``rst``, ``i_valid`` and ``o_valid`` ports (the
        prefixes can be changed with ``in_prefix``/``out_prefix``).
    in_type, out_type : dataclass types
        Input and output transactions (see :func:`port_map`).
    model : callable
        The reference: ``model(txn_in)`` returns the expected ``out_type`` (it may keep state;
        it is called in input order).
    latency : int, optional
        Expected cycles from input to output (the unit's ``stages``); checked when given.
    rng : random.Random, optional
        Default: :func:`make_rng`.
    idle_prob : float, optional
        Default: the ``COSIM_IDLE`` knob, else 0.25.
    period_ns : int
        Clock period (only the ratio of simulated to wall time depends on it).
    """

    def __init__(self, dut: SimHandleBase, *, in_type: type[In], out_type: type[Out],
                 model: Callable[[In], Out], latency: int | None = None,
                 rng: random.Random | None = None, idle_prob: float | None = None,
                 in_prefix: str = "i_", out_prefix: str = "o_", period_ns: int = 10,
                 name: str | None = None):
        self.dut = dut
        self.name = name or dut._name
        self.log = logging.getLogger(f"cosim.{self.name}")
        self.rng = rng or make_rng(self.log)
        self.model = model
        self.period_ns = period_ns
        idle = env_float("COSIM_IDLE", 0.25) if idle_prob is None else idle_prob
        self.scoreboard: Scoreboard[Out] = Scoreboard(self.name, latency=latency, log=self.log)
        self._clock: _CycleClock | None = None
        self.driver: Driver[In] = Driver(
            dut.clk, getattr(dut, f"{in_prefix}valid"), port_map(dut, in_type, in_prefix),
            self.rng, idle_prob=idle, on_send=self._on_send)
        self.monitor: Monitor[Out] = Monitor(
            dut.clk, getattr(dut, f"{out_prefix}valid"), port_map(dut, out_type, out_prefix),
            out_type, self.scoreboard.receive)

    def _on_send(self, txn: In, cycle: int) -> None:
        self.scoreboard.expect(self.model(txn), cycle)

    async def reset(self, cycles: int = 2) -> None:
        """Hold ``rst`` high for ``cycles`` rising edges, inputs idle."""
        self.dut.rst.value = 1
        self.driver.valid.value = 0
        for port in self.driver.ports.values():
            port.value = 0
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0

    async def run(self, txns: Iterable[In], *, drain_cycles: int | None = None) -> dict:
        """Start the clock, reset, drive ``txns``, wait for the outputs, write the counters
        (``COSIM_RESULT_FILE``) and check the scoreboard. Returns the counters."""
        Clock(self.dut.clk, self.period_ns, unit="ns").start()
        await self.reset()
        self._clock = _CycleClock(get_sim_steps(self.period_ns, "ns"))
        self.driver._clock = self._clock
        self.monitor._clock = self._clock
        self.monitor.start()
        wall0 = time.perf_counter()
        cycle0 = self._clock.now()
        await self.driver.send(txns)
        limit = drain_cycles if drain_cycles is not None else 2 * (self.scoreboard.latency or 0)
        limit += 16
        for _ in range(limit):
            if not self.scoreboard.pending:
                break
            await RisingEdge(self.dut.clk)
        # A few more cycles to catch spurious outputs after the last expected one.
        await ClockCycles(self.dut.clk, 4)
        self.monitor.stop()
        wall = time.perf_counter() - wall0
        cycles = self._clock.now() - cycle0
        result = {
            "vectors": self.scoreboard.vectors,
            "expected": self.driver.sent,
            "mismatches": len(self.scoreboard.mismatches),
            "pending": self.scoreboard.pending,
            "cycles": cycles,
            "idle_cycles": self.driver.idle_cycles,
            "wall_s": round(wall, 4),
            "cycles_per_s": round(cycles / wall, 1) if wall > 0 else None,
            "test_seed": cocotb.RANDOM_SEED,
        }
        self.log.info("%s; %d cycles in %.2f s (%s cycles/s)", self.scoreboard.summary(),
                      cycles, wall, result["cycles_per_s"])
        write_result(self.name, result)
        self.scoreboard.check()
        return result


def write_result(name: str, result: Mapping[str, Any]) -> None:
    """Merge ``{name: result}`` into the JSON file named by ``COSIM_RESULT_FILE`` (if set)."""
    target = os.environ.get("COSIM_RESULT_FILE", "").strip()
    if not target:
        return
    path = Path(target)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[name] = dict(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def port_unsigned(handle) -> int:
    """Unsigned value of a port; X or Z fails the test (``to_unsigned``/``int`` raise on them,
    cheaper than ``is_resolvable`` on wide ports)."""
    value = handle.value
    try:
        return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)
    except ValueError:
        raise AssertionError(f"{handle._name} is {value} (not 0/1)") from None
