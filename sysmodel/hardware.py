"""Hardware description: GPUs, HBM, links, PIM units, number formats, systems, energy.

Everything here is a frozen dataclass built from the YAML files in ``sysmodel/configs`` and
validated on load. This module knows what the hardware *is*; how long work takes on it lives in
:mod:`sysmodel.gpu` and :mod:`sysmodel.pim`.

SPU timing: the cycle counts of each PIM unit per mode come from the first of these files that
has an entry for that unit and mode:

1. ``build/sim/spu_timing.yaml`` -- written by the RTL simulation;
2. ``sysmodel/measured/spu_timing.yaml`` -- the committed measurement;
3. ``sysmodel/configs/spu_timing_defaults.yaml`` -- brief-derived defaults.

The measured files (1, 2) are read by :func:`sysmodel.measured.read_timing`, which checks
their format (each entry with its ``provenance``); the defaults file is configuration.

A timing file has, per mode (``state_update``, ``score``, ``attend``), the keys
``pipeline_depth``, ``spu_cycles_per_comp``, ``comps_per_row_pair``, ``utilization`` and
``vectors_checked``; modes at the top level describe the Pimba SPU (unit ``spu``), and a
``units:`` mapping gives them per unit. The SPU variants of the RTL timing file
(:data:`SPU_VARIANT_UNITS`: ``spu_mx8_fused``, the SPU with the fused state update) hold the
same mode entries for their timing unit (``spu_fused``). The fp16 baseline units measured by
the RTL simulation (top-level mappings ``timemux_fp16_naive``, ``timemux_fp16_perbank``,
``pipelined_fp16_perbank``, written by :mod:`sysmodel.measured`; see docs/baselines.md) give
the ``state_update`` timing of the timing units of :data:`RTL_BASELINES`:
``spu_cycles_per_comp`` = ``cycles_per_subchunk``, the other keys by name.

The HBM-PIM Programmable Computing Unit (top-level mappings ``hbmpim_pcu`` and
``hbmpim_pcu_perbank``, written by the PCU co-simulation; brief-derived entries in the
defaults file) gives, per mode, ``commands_per_column`` (PIM column commands per data column,
each one tCCD_L slot), ``pipeline_depth`` and ``vectors_checked``, plus ``banks_per_unit`` and
``lanes``: a :class:`UnitTiming` with ``commands_per_column`` set (see :mod:`sysmodel.pim`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from quant.constants import COLUMN_BITS, MODES, TIMING_KEYS

from .config import CONFIG_DIR, ConfigError, Section, load_yaml
from .measured import BASELINE_KEYS as BASELINE_TIMING_KEYS  # the writer's keys
from .measured import (MEASURED_FILES, PCU_UNITS, SPU_EXTRA_KEYS, SPU_VARIANTS, TimingFileError,
                       read_timing)
from .measured import PCU_KEYS as PCU_MODE_KEYS

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The timing files, first wins: a fresh measurement, the committed one, the defaults.
TIMING_FILES = (*MEASURED_FILES, CONFIG_DIR / "spu_timing_defaults.yaml")
#: fp16 baseline unit of the RTL timing file -> the timing unit whose state update it measures.
#: ``timemux_fp16_naive`` (8 cycles per column, unpipelined 16 -> 1 reduction) is an ablation
#: only; the HBM-PIM baseline is the PCU (:data:`PCU_UNITS`).
RTL_BASELINES = {"timemux_fp16_naive": "shared_time_multiplexed_fp16",
                 "timemux_fp16_perbank": "per_bank_time_multiplexed_fp16",
                 "pipelined_fp16_perbank": "per_bank_pipelined_fp16"}
#: SPU variant of the RTL timing file (sysmodel.measured.SPU_VARIANTS) -> its timing unit.
SPU_VARIANT_UNITS = {"spu_mx8_fused": "spu_fused"}
assert set(SPU_VARIANT_UNITS) == set(SPU_VARIANTS), "a measured SPU variant without timing unit"
#: HBM-PIM PCU units of the timing file (their key is also their timing unit) and the keys of
#: one mode's entry: :data:`PCU_UNITS`, :data:`PCU_MODE_KEYS`, from the writer
#: (sysmodel/measured).
TIMING_NAMES = ("tRP", "tRAS", "tCCD_S", "tCCD_L", "tWR", "tRTP_S", "tRTP_L", "tREFI", "tRFC",
                "tFAW", "tRCD", "tRC", "tRRD_S", "tRRD_L", "burst", "CL", "CWL", "tWTR_L",
                "tRPRE")
#: How a memory controller schedules all-bank refresh around PIM rounds (see sysmodel.pim).
REFRESH_RULES = ("postponed", "window")
#: JEDEC's limit on postponed all-bank refreshes (docs/sysmodel.md, "Refresh").
MAX_POSTPONED_LIMIT = 8
#: A PCU processes one 256-bit DRAM column (its lanes x the format's bits) per command.
PCU_COLUMN_BITS = COLUMN_BITS
#: How chunk rows are dealt to banks (see sysmodel.pim.deal).
DEALING_RULES = ("rows", "groups")
#: Whether a PCU program's switches between bank reads and writes pay the DRAM read/write
#: turnarounds (``charged``, as PIMSimulator's controller does) or not (``free``, ablation).
TURNAROUND_RULES = ("charged", "free")
#: Largest relative gap allowed between a GPU's datasheet bandwidth and its HBM organisation.
BANDWIDTH_TOLERANCE = 0.02



@dataclass(frozen=True)
class HbmTiming:
    """DRAM timing parameters in memory-bus cycles (names as in JEDEC)."""

    tRP: int
    tRAS: int
    tCCD_S: int
    tCCD_L: int
    tWR: int
    tRTP_S: int
    tRTP_L: int
    tREFI: int
    tRFC: int
    tFAW: int
    tRCD: int
    tRC: int
    tRRD_S: int
    tRRD_L: int
    burst: int
    CL: int
    CWL: int
    tWTR_L: int
    tRPRE: int

    @property
    def read_to_write(self) -> int:
        """Minimum RD -> WR command distance: ``CL + burst - CWL + tRPRE`` (DRAMsim3)."""
        return self.CL + self.burst - self.CWL + self.tRPRE

    @property
    def write_to_read(self) -> int:
        """Minimum WR -> RD distance, same bank group: ``CWL + burst + tWTR_L`` (DRAMsim3)."""
        return self.CWL + self.burst + self.tWTR_L


@dataclass(frozen=True)
class HbmSpec:
    """An HBM memory system: organisation and timing.

    Members
    -------
    key : str
        Name in ``hbm.yaml``.
    clock_ghz : float
        Memory-bus clock; timings count its cycles.
    channels : int
        Channels of the whole GPU (all stacks).
    refresh : str
        Refresh rule for PIM phases (:data:`REFRESH_RULES`).
    max_postponed_refreshes : int
        All-bank refreshes the controller may owe at any time (``postponed`` rule).
    """

    key: str
    standard: str
    clock_ghz: float
    stacks: int
    channels: int
    pseudo_channels_per_channel: int
    bank_groups_per_pc: int
    banks_per_bank_group: int
    row_bytes: int
    column_bytes: int
    bus_bytes_per_cycle_per_pc: int
    timing: HbmTiming
    refresh: str = "postponed"
    max_postponed_refreshes: int = MAX_POSTPONED_LIMIT

    @property
    def banks_per_pc(self) -> int:
        """Banks of one pseudo-channel."""
        return self.bank_groups_per_pc * self.banks_per_bank_group

    @property
    def pseudo_channels(self) -> int:
        """Pseudo-channels of the whole memory."""
        return self.channels * self.pseudo_channels_per_channel

    @property
    def banks(self) -> int:
        """Banks of the whole memory."""
        return self.pseudo_channels * self.banks_per_pc

    @property
    def columns_per_row(self) -> int:
        """Columns (sub-chunks) per row (chunk)."""
        return self.row_bytes // self.column_bytes

    @property
    def peak_gbs(self) -> float:
        """Peak external bandwidth in GB/s."""
        return self.pseudo_channels * self.bus_bytes_per_cycle_per_pc * self.clock_ghz

    @property
    def spu_clock_mhz(self) -> float:
        """PIM unit clock: one column command interval (tCCD_L)."""
        return self.clock_ghz * 1e3 / self.timing.tCCD_L


@dataclass(frozen=True)
class LinkSpec:
    """A GPU-to-GPU interconnect and its measured all-reduce (see :func:`sysmodel.gpu.
    allreduce_time_s`).

    Members
    -------
    allreduce_gpus : int
        GPU count of the all-reduce measurement.
    allreduce_points : tuple of (bytes, microseconds)
        Measured all-reduce times, message sizes strictly increasing.
    allreduce_busbw_gbs : float
        Bus bandwidth (nccl-tests' ``busbw``) for messages beyond the last point.
    """

    key: str
    name: str
    bidirectional_gbs: float
    allreduce_gpus: int
    allreduce_points: tuple
    allreduce_busbw_gbs: float

    @property
    def unidirectional_gbs(self) -> float:
        """Bandwidth one ring direction sees."""
        return self.bidirectional_gbs / 2.0


@dataclass(frozen=True)
class GemmTiles:
    """Tile shapes a GEMM may use: output rows ``m``, output columns ``n``, K split."""

    m: tuple[int, ...]
    n: tuple[int, ...]
    split_k: tuple[int, ...]


@dataclass(frozen=True)
class GpuSpec:
    """A GPU with its memory and interconnect."""

    key: str
    name: str
    sms: int
    tensor_tflops: float
    vector_tflops: float
    dram_gbs: float
    memory_gb: float
    l2_mb: float
    l1_kb_per_sm: int
    memory: HbmSpec
    interconnect: LinkSpec
    dram_fraction: float
    tensor_fraction: float
    kernel_us_graph: float
    kernel_us_stream: float
    gemm_tiles: GemmTiles

    @property
    def l2_bytes(self) -> float:
        """L2 capacity in bytes."""
        return self.l2_mb * 1e6

    @property
    def dram_bytes_per_s(self) -> float:
        """Attained DRAM bandwidth in bytes per second."""
        return self.dram_gbs * 1e9 * self.dram_fraction

    @property
    def tensor_flops(self) -> float:
        """Attained tensor-core rate (flop/s) of the whole GPU."""
        return self.tensor_tflops * 1e12 * self.tensor_fraction

    @property
    def vector_flops(self) -> float:
        """Element-wise rate (op/s), at peak: element-wise work is bandwidth-bound throughout."""
        return self.vector_tflops * 1e12

    def kernel_s(self, cuda_graphs: bool) -> float:
        """Fixed cost of one kernel, replayed from a CUDA graph or launched into a stream."""
        return (self.kernel_us_graph if cuda_graphs else self.kernel_us_stream) * 1e-6


@dataclass(frozen=True)
class UnitTiming:
    """Cycle counts of one PIM unit in one mode (see the module docstring).

    ``commands_per_column`` is set (> 0) for an HBM-PIM PCU only: its COMPs are PIM column
    commands, ``commands_per_column`` per data column, one tCCD_L slot each.
    """

    pipeline_depth: int
    spu_cycles_per_comp: int
    comps_per_row_pair: int
    utilization: float
    vectors_checked: int
    source: str
    commands_per_column: int = 0


@dataclass(frozen=True)
class NumberFormat:
    """A storage format for state or KV cache.

    Members
    -------
    bits_per_value : int
        Bits of one stored element.
    group_size, scale_bits : int
        A separately stored scale of ``scale_bits`` per ``group_size`` values (0: none; MX8's
        shared exponents are inside its 8 bits).
    """

    name: str
    bits_per_value: int
    group_size: int = 0
    scale_bits: int = 0

    @property
    def bytes_per_value(self) -> float:
        """Bytes per stored value, scales included."""
        scale = self.scale_bits / self.group_size if self.group_size else 0.0
        return (self.bits_per_value + scale) / 8.0


@dataclass(frozen=True)
class PimUnit:
    """A PIM compute unit design with its timing per mode."""

    key: str
    description: str
    banks_per_unit: int
    format: NumberFormat
    timing_unit: str
    timing: tuple
    result_bytes: int
    dealing: str = "rows"
    turnaround: str = "charged"

    def mode(self, mode: str) -> UnitTiming:
        """Timing of ``mode`` (one of :data:`MODES`)."""
        return dict(self.timing)[mode]

    @property
    def is_pcu(self) -> bool:
        """Whether the unit is an HBM-PIM PCU (timing per PIM column command)."""
        return any(tm.commands_per_column for _, tm in self.timing)


@dataclass(frozen=True)
class SystemSpec:
    """A compared system: storage formats and which operators run in PIM."""

    name: str
    state_format: NumberFormat
    kv_format: NumberFormat
    pim_unit: PimUnit | None
    offload: frozenset
    cuda_graphs: bool = True

    def in_pim(self, category: str) -> bool:
        """Whether operators of ``category`` run in PIM."""
        return self.pim_unit is not None and category in self.offload


@dataclass(frozen=True)
class EnergySpec:
    """Energy parameters (docs/design.md §7), pJ."""

    register_pj_per_byte: float
    l1_pj_per_byte: float
    l2_pj_per_byte: float
    dram_pj_per_byte: float
    interconnect_pj_per_byte: float
    alu_pj_per_op: float
    activation_pj_per_bank: float
    column_access_pj: float
    comp_pj: float


@dataclass(frozen=True)
class Hardware:
    """All hardware descriptions, keyed by their names in the config files."""

    gpus: dict
    memories: dict
    links: dict
    units: dict
    formats: dict
    systems: dict
    energy: EnergySpec
    timing_files: tuple

    def gpu(self, key: str) -> GpuSpec:
        """GPU by name, with an error listing the known ones."""
        return _lookup(self.gpus, key, "GPU")

    def system(self, key: str) -> SystemSpec:
        """System by name, with an error listing the known ones."""
        return _lookup(self.systems, key, "system")


def _lookup(table: dict, key: str, what: str):
    if key not in table:
        raise ConfigError(f"unknown {what} {key!r} (allowed: {', '.join(table)})")
    return table[key]


def _load_hbm(sec: Section, key: str) -> HbmSpec:
    s = sec.section(key)
    s.check_keys(["standard", "clock_ghz", "stacks", "channels", "pseudo_channels_per_channel",
                  "bank_groups_per_pc", "banks_per_bank_group", "row_bytes", "column_bytes",
                  "bus_bytes_per_cycle_per_pc", "timing", "refresh", "max_postponed_refreshes"])
    t = s.section("timing")
    t.check_keys(TIMING_NAMES)
    timing = HbmTiming(**{name: t.integer(name, minimum=1) for name in TIMING_NAMES})
    if timing.tRFC >= timing.tREFI:
        raise t.fail("tRFC", f"{timing.tRFC} not below tREFI {timing.tREFI}", "tRFC < tREFI")
    if timing.burst > timing.tCCD_S or timing.tCCD_S > timing.tCCD_L:
        raise t.fail("tCCD_S", "need burst <= tCCD_S <= tCCD_L", "burst <= tCCD_S <= tCCD_L")
    row = s.integer("row_bytes", minimum=32)
    col = s.integer("column_bytes", minimum=1)
    if row % col:
        raise s.fail("row_bytes", f"{row} is not a multiple of column_bytes {col}",
                     "a multiple of column_bytes")
    banks_per_bg = s.integer("banks_per_bank_group", minimum=1)
    bgs = s.integer("bank_groups_per_pc", minimum=1)
    if (banks_per_bg * bgs) % 4:
        raise s.fail("banks_per_bank_group", "banks per pseudo-channel not a multiple of 4",
                     "a bank count that ACT4 commands cover")
    return HbmSpec(key=key, standard=s.string("standard"),
                   clock_ghz=s.number("clock_ghz", positive=True),
                   stacks=s.integer("stacks", minimum=1), channels=s.integer("channels", minimum=1),
                   pseudo_channels_per_channel=s.integer("pseudo_channels_per_channel", minimum=1),
                   bank_groups_per_pc=bgs, banks_per_bank_group=banks_per_bg, row_bytes=row,
                   column_bytes=col,
                   bus_bytes_per_cycle_per_pc=s.integer("bus_bytes_per_cycle_per_pc", minimum=1),
                   timing=timing, refresh=s.string("refresh", REFRESH_RULES),
                   max_postponed_refreshes=s.integer("max_postponed_refreshes", minimum=1,
                                                     maximum=MAX_POSTPONED_LIMIT))


def _load_formats(sec: Section) -> dict:
    out = {}
    for key in sec.keys():
        f = sec.section(key)
        f.check_keys(["bits_per_value"], ["group_size", "scale_bits"])
        if f.has("group_size") != f.has("scale_bits"):
            raise f.fail("scale_bits" if f.has("group_size") else "group_size",
                         "group_size and scale_bits go together", "both keys or neither")
        group = f.integer("group_size", minimum=1) if f.has("group_size") else 0
        scale = f.integer("scale_bits", minimum=1, maximum=64) if f.has("scale_bits") else 0
        out[key] = NumberFormat(key, f.integer("bits_per_value", minimum=1, maximum=64),
                                group_size=group, scale_bits=scale)
    return out


def _timing_entries(path: Path) -> dict:
    """Per (unit, mode) timing entries of one SPU timing file."""
    data = load_yaml(path)
    if not (isinstance(data, dict) and "source" in data):
        # not the hand-written defaults (they name their ``source``): a measurement, read and
        # checked by its one reader (every entry with its provenance)
        try:
            data = read_timing(path)
        except TimingFileError as exc:
            raise ConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping (allowed: modes or units:)")
    top = Section(data, str(path))
    top.check_keys([], ("source", "units") + MODES + tuple(RTL_BASELINES)  # no typo ignored
                   + PCU_UNITS + tuple(SPU_VARIANT_UNITS))
    units: dict[str, Section] = {}
    if any(m in data for m in MODES):
        units["spu"] = top
    for variant, timing_unit in SPU_VARIANT_UNITS.items():
        if variant in data:
            units[timing_unit] = top.section(variant)
    if "units" in data:
        us = top.section("units")
        for unit in us.keys():
            units[unit] = us.section(unit)
    out = {}
    for unit, sec in units.items():
        for mode in MODES:
            if not sec.has(mode):
                continue
            m = sec.section(mode)
            m.check_keys(TIMING_KEYS, ("provenance",) + (SPU_EXTRA_KEYS if mode == "state_update"
                                                         else ()))
            out[(unit, mode)] = UnitTiming(
                pipeline_depth=m.integer("pipeline_depth", minimum=1, maximum=64),
                spu_cycles_per_comp=m.integer("spu_cycles_per_comp", minimum=1, maximum=64),
                comps_per_row_pair=m.integer("comps_per_row_pair", minimum=1),
                utilization=m.number("utilization", minimum=0.0, maximum=1.0),
                vectors_checked=m.integer("vectors_checked", minimum=0),
                source=str(path))
    for pcu in PCU_UNITS:
        if pcu not in data:
            continue
        b = top.section(pcu)
        b.check_keys(["banks_per_unit", "lanes", *MODES], ("provenance",))
        banks = b.integer("banks_per_unit", minimum=1, maximum=2)
        lanes = b.integer("lanes", minimum=1, maximum=64)
        for mode in MODES:
            m = b.section(mode)
            m.check_keys(PCU_MODE_KEYS)
            cpc = m.integer("commands_per_column", minimum=1, maximum=64)
            out[(pcu, mode)] = UnitTiming(
                pipeline_depth=m.integer("pipeline_depth", minimum=1, maximum=64),
                spu_cycles_per_comp=1, comps_per_row_pair=0, utilization=1.0 / cpc,
                vectors_checked=m.integer("vectors_checked", minimum=0), source=str(path),
                commands_per_column=cpc)
        out[(pcu, "banks_per_unit")] = banks
        out[(pcu, "lanes")] = lanes
    for rtl, timing_unit in RTL_BASELINES.items():
        if rtl not in data:
            continue
        b = top.section(rtl)
        b.check_keys(BASELINE_TIMING_KEYS, ("provenance",))
        out[(timing_unit, "state_update")] = UnitTiming(
            pipeline_depth=b.integer("pipeline_depth", minimum=1, maximum=64),
            spu_cycles_per_comp=b.integer("cycles_per_subchunk", minimum=1, maximum=64),
            comps_per_row_pair=b.integer("comps_per_row_pair", minimum=1),
            utilization=b.number("utilization", minimum=0.0, maximum=1.0),
            vectors_checked=b.integer("vectors_checked", minimum=0),
            source=str(path))
    return out


def _load_units(sec: Section, formats: dict, timing_files: tuple) -> dict:
    entries: dict = {}
    for path in reversed(timing_files):          # earlier files override later ones
        if Path(path).is_file():
            entries.update(_timing_entries(Path(path)))
    sec.check_keys(["units", "result_bytes", "bank_dealing", "pcu_turnaround"])
    result_bytes = sec.integer("result_bytes", minimum=1, maximum=8)
    dealing = sec.string("bank_dealing", DEALING_RULES)
    turnaround = sec.string("pcu_turnaround", TURNAROUND_RULES)
    units_sec = sec.section("units")
    out = {}
    for key in units_sec.keys():
        u = units_sec.section(key)
        u.check_keys(["description", "banks_per_unit", "format", "timing_unit"])
        timing_unit = u.string("timing_unit")
        timing = []
        for mode in MODES:
            if (timing_unit, mode) not in entries:
                raise u.fail("timing_unit", f"no {mode} timing for {timing_unit!r} in "
                             f"{', '.join(str(p) for p in timing_files)}",
                             ", ".join(sorted({k[0] for k in entries})))
            timing.append((mode, entries[(timing_unit, mode)]))
        banks = u.integer("banks_per_unit", minimum=1, maximum=2)
        pcu = [tm.commands_per_column > 0 for _, tm in timing]
        if any(pcu) and not all(pcu):
            raise u.fail("timing_unit", f"{timing_unit!r} mixes PCU and COMP timing entries",
                         "all three modes from one kind of entry")
        if all(pcu):
            measured = entries[(timing_unit, "banks_per_unit")]
            if measured != banks:
                raise u.fail("banks_per_unit", f"{banks} but the timing file's {timing_unit} "
                             f"has banks_per_unit {measured}", str(measured))
            lanes = entries[(timing_unit, "lanes")]
        fmt = formats[u.string("format", formats)]
        if all(pcu) and lanes * fmt.bits_per_value != PCU_COLUMN_BITS:
            raise u.fail("format", f"{fmt.name} x {lanes} lanes is not one "
                         f"{PCU_COLUMN_BITS}-bit column", "a format filling the PCU's lanes")
        out[key] = PimUnit(key=key, description=u.string("description"), banks_per_unit=banks,
                           format=fmt, timing_unit=timing_unit, timing=tuple(timing),
                           result_bytes=result_bytes, dealing=dealing,
                           turnaround=turnaround)
    return out


#: GPU parameters of the achievable-rate and fixed-cost model (docs/sysmodel.md has their
#: sources); ``python -m sysmodel calibrate`` measures and writes exactly these keys.
GPU_PARAM_KEYS = ("dram_fraction", "tensor_fraction", "kernel_us_graph", "kernel_us_stream")


def read_gpu_params(g: Section) -> dict:
    """The :data:`GPU_PARAM_KEYS` of a GPU section, validated: fractions in (0, 1], fixed
    costs finite and >= 0, the graph cost not above the stream cost."""
    params = {"dram_fraction": g.fraction("dram_fraction"),
              "tensor_fraction": g.fraction("tensor_fraction"),
              "kernel_us_graph": g.number("kernel_us_graph", minimum=0.0),
              "kernel_us_stream": g.number("kernel_us_stream", minimum=0.0)}
    if params["kernel_us_graph"] > params["kernel_us_stream"]:
        raise g.fail("kernel_us_graph", f"{params['kernel_us_graph']} above kernel_us_stream "
                     f"{params['kernel_us_stream']}", "kernel_us_graph <= kernel_us_stream")
    return params


def _load_gpu(sec: Section, key: str, memories: dict, links: dict) -> GpuSpec:
    g = sec.section(key)
    g.check_keys(["name", "sms", "tensor_tflops", "vector_tflops", "dram_gbs", "memory_gb",
                  "l2_mb", "l1_kb_per_sm", "memory", "interconnect", *GPU_PARAM_KEYS,
                  "gemm_tiles"])
    tiles = g.section("gemm_tiles")
    tiles.check_keys(["m", "n", "split_k"])
    memory = memories[g.string("memory", memories)]
    dram = g.number("dram_gbs", positive=True)
    if abs(dram - memory.peak_gbs) > BANDWIDTH_TOLERANCE * dram:
        raise g.fail("dram_gbs", f"{dram} GB/s disagrees with {memory.key} "
                     f"({memory.peak_gbs:.0f} GB/s)",
                     f"within {BANDWIDTH_TOLERANCE:.0%} of the HBM organisation")
    return GpuSpec(key=key, name=g.string("name"), sms=g.integer("sms", minimum=1),
                   tensor_tflops=g.number("tensor_tflops", positive=True),
                   vector_tflops=g.number("vector_tflops", positive=True), dram_gbs=dram,
                   memory_gb=g.number("memory_gb", positive=True),
                   l2_mb=g.number("l2_mb", minimum=0.0),
                   l1_kb_per_sm=g.integer("l1_kb_per_sm", minimum=1), memory=memory,
                   interconnect=links[g.string("interconnect", links)], **read_gpu_params(g),
                   gemm_tiles=GemmTiles(tiles.int_list("m"), tiles.int_list("n"),
                                        tiles.int_list("split_k")))


def _load_link(sec: Section, key: str) -> LinkSpec:
    s = sec.section(key)
    s.check_keys(["name", "bidirectional_gbs", "allreduce"])
    a = s.section("allreduce")
    a.check_keys(["gpus", "busbw_gbs", "points"])
    raw = a.raw("points")
    allowed = "a non-empty list of [bytes, microseconds], sizes increasing, times not falling"
    if not isinstance(raw, list) or not raw:
        raise a.fail("points", f"expected a list, got {raw!r}", allowed)
    points = []
    for i, item in enumerate(raw):
        if not isinstance(item, list) or len(item) != 2:
            raise a.fail(f"points[{i}]", f"expected [bytes, us], got {item!r}", allowed)
        p = Section({"bytes": item[0], "us": item[1]}, a.file, f"{a.path}.points[{i}]")
        size, us = p.integer("bytes", minimum=0), p.number("us", positive=True)
        if points and (size <= points[-1][0] or us < points[-1][1]):
            raise a.fail(f"points[{i}]", f"{item!r} does not follow {list(points[-1])!r}",
                         allowed)
        points.append((size, us))
    return LinkSpec(key, s.string("name"), s.number("bidirectional_gbs", positive=True),
                    allreduce_gpus=a.integer("gpus", minimum=2),
                    allreduce_points=tuple(points),
                    allreduce_busbw_gbs=a.number("busbw_gbs", positive=True))


def _load_systems(sec: Section, formats: dict, units: dict) -> dict:
    out = {}
    for name in sec.keys():
        s = sec.section(name)
        s.check_keys(["state_format", "kv_format", "pim_unit", "offload"], ["cuda_graphs"])
        graphs = True
        if s.has("cuda_graphs"):
            graphs = s.raw("cuda_graphs")
            if not isinstance(graphs, bool):
                raise s.fail("cuda_graphs", f"expected true or false, got {graphs!r}",
                             "true, false")
        unit_key = s.raw("pim_unit")
        unit = None
        if unit_key is not None:
            unit = units[s.string("pim_unit", units)]
        offload = frozenset(s.raw("offload") and s.str_list("offload",
                                                            ["state_update", "attention"]))
        if offload and unit is None:
            raise s.fail("offload", "offload without a pim_unit", "[] when pim_unit is null")
        state = formats[s.string("state_format", formats)]
        kv = formats[s.string("kv_format", formats)]
        if unit is not None:
            for cat, fmt, key in (("state_update", state, "state_format"),
                                  ("attention", kv, "kv_format")):
                if cat in offload and fmt.name != unit.format.name:
                    raise s.fail(key, f"{fmt.name} but the PIM unit computes on "
                                 f"{unit.format.name}", unit.format.name)
        out[name] = SystemSpec(name=name, state_format=state, kv_format=kv, pim_unit=unit,
                               offload=offload, cuda_graphs=graphs)
    return out


def _load_energy(sec: Section) -> EnergySpec:
    sec.check_keys(["gpu", "pim"])
    g, p = sec.section("gpu"), sec.section("pim")
    gk = ["register_pj_per_byte", "l1_pj_per_byte", "l2_pj_per_byte", "dram_pj_per_byte",
          "interconnect_pj_per_byte", "alu_pj_per_op"]
    pk = ["activation_pj_per_bank", "column_access_pj", "comp_pj"]
    g.check_keys(gk)
    p.check_keys(pk)
    values = {k: g.number(k, minimum=0.0) for k in gk}
    values.update({k: p.number(k, minimum=0.0) for k in pk})
    return EnergySpec(**values)


def load_hardware(config_dir: Path | str = CONFIG_DIR,
                  timing_files: tuple = TIMING_FILES) -> Hardware:
    """Load and validate every hardware file of ``config_dir``.

    Parameters
    ----------
    config_dir : path
        Folder with ``hbm.yaml``, ``gpus.yaml``, ``interconnect.yaml``, ``pim.yaml``,
        ``systems.yaml`` and ``energy.yaml``.
    timing_files : tuple of paths
        SPU timing files, most preferred first; missing files are skipped.
    """
    return _load_hardware_cached(str(Path(config_dir)), tuple(str(p) for p in timing_files))


@lru_cache(maxsize=8)
def _load_hardware_cached(config_dir: str, timing_files: tuple) -> Hardware:
    root = Path(config_dir)
    hbm = Section.from_file(root / "hbm.yaml")
    memories = {key: _load_hbm(hbm, key) for key in hbm.keys()}
    ic = Section.from_file(root / "interconnect.yaml")
    links = {key: _load_link(ic, key) for key in ic.keys()}
    sysf = Section.from_file(root / "systems.yaml")
    sysf.check_keys(["formats", "systems"])
    formats = _load_formats(sysf.section("formats"))
    units = _load_units(Section.from_file(root / "pim.yaml"), formats, timing_files)
    gpus_sec = Section.from_file(root / "gpus.yaml")
    gpus = {key: _load_gpu(gpus_sec, key, memories, links) for key in gpus_sec.keys()}
    systems = _load_systems(sysf.section("systems"), formats, units)
    energy = _load_energy(Section.from_file(root / "energy.yaml"))
    return Hardware(gpus=gpus, memories=memories, links=links, units=units, formats=formats,
                    systems=systems, energy=energy, timing_files=timing_files)


def apply_gpu_params(hw: Hardware, path: Path | str) -> Hardware:
    """``hw`` with the GPU parameters of a ``calibrate`` file (``GPU: {dram_fraction: ...}``
    for one or more GPUs of ``gpus.yaml``) in place of the configured ones, validated."""
    top = Section.from_file(path)
    gpus = dict(hw.gpus)
    for key in top.keys():
        if key not in gpus:
            raise top.fail(str(key), "unknown GPU", ", ".join(gpus))
        g = top.section(key)
        g.check_keys(GPU_PARAM_KEYS)
        gpus[key] = replace(gpus[key], **read_gpu_params(g))
    return replace(hw, gpus=gpus)


def ceil_div(a: int, b: int) -> int:
    """Integer ceiling of ``a / b``."""
    return -(-a // b)


__all__ = ["HbmTiming", "HbmSpec", "LinkSpec", "GpuSpec", "GemmTiles", "UnitTiming",
           "NumberFormat", "PimUnit", "SystemSpec", "EnergySpec", "Hardware", "load_hardware",
           "ceil_div", "read_gpu_params", "apply_gpu_params", "GPU_PARAM_KEYS", "MODES",
           "TIMING_FILES", "PCU_UNITS", "REFRESH_RULES", "DEALING_RULES"]
