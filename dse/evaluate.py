"""One design point, measured four ways, as one pure job (:func:`evaluate_point`).

1. **Synthesis** (:func:`synth.flow.synth_unit`, the flow of ``python -m synth``): area, cells,
   critical path; scaled to 10 nm and to the DRAM process (:func:`synth.tables.make_rows`,
   :func:`synth.timing.timing_rows`).
2. **Co-simulation** (:func:`cosim.runner.run_cosim`), a short bit-exact run against the
   golden model: the SPE slice bench (``cosim.tb_spe``) or the SPU state-update bench with
   its bank models (``cosim.tb_spu``, state-update mode), in the unit's own build folder
   (``build/sim/dse_<id>_<sim>``). The SPU bench writes the timing it measured to the
   point's folder; the system model uses it.
3. **Accuracy** (:mod:`quant.study`): the state error of the point's arithmetic against fp32
   (:func:`quant.study.runner.run`: the bit-exact MX8 datapath for MX8 points, the study's
   fake-quant state rounding for the other formats) and, when asked and the trained model
   exists, perplexity (:func:`quant.study.perplexity.run_perplexity`).
4. **System model** (:mod:`sysmodel`): figure 12's Pimba points with the SPU replaced by this
   design: its storage format, its pipeline depth (RTL latency; measured for the SPU) and its
   SPU cycles per COMP (one, times ``ceil(critical path / SPU clock)`` when the scaled path
   does not fit one tCCD_L).

Results are cached in ``<out>/points/<id>/result.json`` under a hash of every input (the
point, the grid's settings, the Verilog text, the Liberty file, the tool versions, the
system-model configuration and timing files).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .space import DesignPoint, DseGrid, build_component
from .units import ENV, cosim_unit, env_value, register

__all__ = ["DSE_VERSION", "SynthContext", "evaluate_point", "synth_context", "FIGURE"]

#: Bumped when what a point's result holds, or how it is computed, changes.
DSE_VERSION = "1"
#: The system-model figure whose points measure throughput (fig. 12: generation throughput).
FIGURE = 12
#: The system the design replaces the SPU of.
BASE_SYSTEM = "Pimba"


@dataclass(frozen=True)
class SynthContext:
    """What synthesis needs, resolved once by the driver (paths must exist on every node)."""

    liberty: object      # synth.flow.Liberty
    cfg: object          # synth.config.SynthConfig
    yosys: tuple
    sta: str | None
    delay_ps: int | None
    node_nm: int | None


def synth_context(liberty_path: Path | None = None) -> SynthContext:
    """The default synthesis setting of ``python -m synth`` (OSU 0.18 um, common ABC target)."""
    from synth.config import load_config
    from synth.flow import default_liberty, find_yosys, parse_liberty, sta_version
    from synth.timing import abc_delay_ps, load_timing

    cfg = load_config()
    lib = parse_liberty(liberty_path if liberty_path else default_liberty())
    node = cfg.liberty_nodes_nm.get(lib.name)
    return SynthContext(lib, cfg, find_yosys(), sta_version(),
                        abc_delay_ps(load_timing(), node), node)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sysmodel_inputs() -> dict:
    """Content hashes of the system model's configuration and timing files."""
    from sysmodel.config import CONFIG_DIR
    from sysmodel.hardware import TIMING_FILES

    files = sorted(Path(CONFIG_DIR).glob("*.yaml")) + sorted(
        Path(CONFIG_DIR, "grids").glob("*.yaml")) + [Path(p) for p in TIMING_FILES]
    return {p.name if p.parent == Path(CONFIG_DIR) else str(p): _sha(p.read_bytes())
            for p in files if p.is_file()}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# The four measurements


def _synth(point: DesignPoint, verilog: str, ctx: SynthContext, folder: Path) -> dict:
    from synth.config import UnitSpec
    from synth.flow import synth_unit
    from synth.tables import make_rows
    from synth.timing import load_timing, timing_rows

    res, _ = synth_unit(point.unit_name, verilog, ctx.liberty, ctx.cfg, folder, ctx.yosys,
                        ctx.sta, delay_ps=ctx.delay_ps)
    row = make_rows([(UnitSpec(point.unit_name, point.fmt, "bank-pair", 1), res)], ctx.cfg,
                    ctx.node_nm)[0]
    trow = timing_rows([row], load_timing(), ctx.node_nm)[0]
    return {"cells": res.cells, "area_um2": res.area_um2,
            "area_mm2_10nm": row["area_mm2_10nm"], "area_mm2_dram": row["area_mm2_dram"],
            "bank_pair_overhead_pct": row["bank_pair_overhead_pct"],
            "crit_path_ns": row["crit_path_ns"], "crit_ns_dram": trow["crit_ns_dram"],
            "abc_script": res.abc_script}


def _cosim(point: DesignPoint, grid: DseGrid, folder: Path) -> dict:
    from cosim.benches import TESTBENCHES
    from cosim.runner import run_cosim

    register(point)
    # the registered testbench of the point's kind: its module and cocotb test
    tb = TESTBENCHES["spu_state_update" if point.kind == "spu" else "spe_mx8"]
    env = {ENV: env_value(point)}
    timing = (folder / "spu_timing.yaml").resolve()   # the simulator runs in its build dir
    if point.kind == "spu":
        timing.unlink(missing_ok=True)
        env["SPU_TIMING_FILE"] = str(timing)
    r = run_cosim(cosim_unit(point), tb.module, name=point.unit_name, sim=grid.sim,
                  seed=grid.seed, vectors=grid.vectors, record=False, check=False,
                  extra_env=env, testcase=tb.testcase)
    return {"cosim_passed": bool(r.passed), "cosim_vectors": r.vectors,
            "cosim_mismatches": r.mismatches, "cosim_cycles": r.cycles,
            "cosim_sim": grid.sim, "cosim_seed": r.seed}


def study_variant(point: DesignPoint):
    """The accuracy study's variant of the point's arithmetic (:func:`make_variant`)."""
    from quant.spe import RBITS
    from quant.study.plan import FUSED_FEEDBACK, RECOMMENDED
    from quant.study.runner import make_variant

    p = dict(point.as_dict)
    fused = bool(p.get("fused", False))
    if point.fmt == "mx8":
        # the SPU's rounding is a run-time mode; its rbits matter with stochastic rounding
        stochastic = point.kind == "spu" or p.get("rounding") == "sr"
        # the GPU's decay encoding the study recommends for the point's datapath
        decay = (FUSED_FEEDBACK if fused else RECOMMENDED).decay
        return make_variant("exact", "mx8", "stochastic" if stochastic else "nearest",
                            int(p.get("rbits", RBITS)), renorm=p.get("renorm", "lod"),
                            decay=decay, fused=fused)
    rounding = "stochastic" if p.get("rounding") == "sr" else "nearest"
    return make_variant("fakequant", point.fmt, rounding, RBITS)


def _accuracy(point: DesignPoint, grid: DseGrid) -> dict:
    import torch

    from quant.study.plan import STUDY_SHAPES
    from quant.study.runner import derive_seed, run
    from quant.study.workloads import make_workload

    torch.set_num_threads(1)
    v = study_variant(point)
    shape = STUDY_SHAPES[grid.workload]
    wl = make_workload(grid.workload, heads=shape["heads"], dim_state=shape["dim_state"])
    res = run(wl, [v], grid.steps, grid.seed, every=grid.steps, extra=())
    out = {"study_variant": v.key, "study_seed": grid.seed,
           "rounding_seed": derive_seed(grid.seed, v.key, "state"),
           "state_rel_err": res.state_err[v.key][-1],
           "output_rel_err": res.output_err[v.key][-1], "ppl": "", "ppl_fp32": ""}
    if grid.perplexity_seq_len and _perplexity_applies(v):
        from quant.study.perplexity import run_perplexity
        ppl = run_perplexity(v.fmt, v.rounding, v.datapath, grid.perplexity_seq_len,
                             fused=v.fused, seed=grid.seed, log=lambda s: None,
                             **({"decay": v.decay} if v.datapath == "exact" else {}))
        out.update(ppl=ppl["ppl"], ppl_fp32=ppl["ppl_fp32"])
    return out


def _perplexity_applies(v) -> bool:
    """The perplexity hook takes format, rounding, datapath and fused (8 random bits, LOD);
    it runs only when the trained model ships with the project (no training here)."""
    if v.datapath == "exact" and (v.rbits != 8 or v.renorm != "lod"):
        return False
    model_dir = Path(__file__).resolve().parents[1] / "quant" / "study" / "model"
    return any(model_dir.glob("*/model.pt"))


def storage_format(hw, fmt: str):
    """The system model's number format of ``fmt`` (``systems.yaml``; else its bit width)."""
    from quant.fparith import get_format
    from sysmodel.hardware import NumberFormat

    if fmt in hw.formats:
        return hw.formats[fmt]
    return NumberFormat(fmt, get_format(fmt).width)


def spu_pim_unit(hw, fused: bool, base_unit):
    """The system model's PIM unit whose timing is the SPU variant with ``fused`` (the RTL
    bench writes it under :func:`sysmodel.measured.spu_variant`; the hardware maps that to a
    timing unit, :data:`sysmodel.hardware.SPU_VARIANT_UNITS`): ``base_unit`` for the SPU."""
    from sysmodel.hardware import SPU_VARIANT_UNITS
    from sysmodel.measured import spu_variant

    variant = spu_variant(fused=fused)
    if variant is None:
        return base_unit
    timing_unit = SPU_VARIANT_UNITS[variant]
    found = [u for u in hw.units.values() if u.timing_unit == timing_unit]
    if len(found) != 1:
        raise ValueError(f"sysmodel/configs/pim.yaml: expected one unit with timing_unit "
                         f"{timing_unit!r}, found {[u.key for u in found]}")
    return found[0]


def _throughput(point: DesignPoint, synth: dict, folder: Path) -> dict:
    from sysmodel.hardware import TIMING_FILES, load_hardware
    from sysmodel.sweep import figure_grid, load_grid
    from sysmodel.system import evaluate

    timing_files = tuple(TIMING_FILES)
    measured = folder / "spu_timing.yaml"
    if point.kind == "spu" and measured.is_file():
        timing_files = (measured,) + timing_files
    hw = load_hardware(timing_files=timing_files)
    base = hw.systems[BASE_SYSTEM]
    unit = base.pim_unit
    if point.kind == "spu":
        unit = spu_pim_unit(hw, bool(dict(point.params).get("fused", False)), unit)
    # pipeline depth: the SPU's (measured for SPU points); an SPE slice changes it by its
    # latency difference to the MX8 slice in the modes that use the multipliers and adder
    delta = 0
    if point.kind == "spe":
        from hw.spe_mx8 import SpeMx8
        delta = build_component("spe", point.fmt, dict(point.params)).latency \
            - SpeMx8().latency
    crit = synth.get("crit_ns_dram")
    grid = load_grid(figure_grid(FIGURE))
    points = [p for p in grid.points if p.system == BASE_SYSTEM]
    gpus = {p.gpu for p in points}
    slow = {}
    for g in gpus:
        period_ns = 1e3 / hw.gpu(g).memory.spu_clock_mhz
        slow[g] = 1 if crit in ("", None) else max(1, math.ceil(float(crit) / period_ns))
    ratios, tps, cpc = [], [], None
    for g in sorted(gpus):
        timing = tuple((mode, replace(tm, pipeline_depth=tm.pipeline_depth + (
            delta if mode in ("state_update", "attend") else 0),
            spu_cycles_per_comp=tm.spu_cycles_per_comp * slow[g])) for mode, tm in unit.timing)
        cpc = dict(timing)["state_update"].spu_cycles_per_comp
        fmt = storage_format(hw, point.fmt)
        dse_unit = replace(unit, key="dse", format=fmt, timing=timing)
        system = replace(base, name="DSE", state_format=fmt, kv_format=fmt, pim_unit=dse_unit)
        hw2 = replace(hw, systems={**hw.systems, "DSE": system})
        for p in points:
            if p.gpu != g:
                continue
            ref = evaluate(p, hw).tokens_per_s
            got = evaluate(replace(p, system="DSE"), hw2).tokens_per_s
            ratios.append(got / ref)
            tps.append(got)
    geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
    return {"tokens_per_s_geomean": math.exp(sum(map(math.log, tps)) / len(tps)),
            "throughput_vs_pimba": geo, "spu_cycles_per_comp": cpc,
            "pipeline_depth": dict(timing)["state_update"].pipeline_depth,
            "sysmodel_points": len(ratios)}


# ---------------------------------------------------------------------------------------------
# The job


def evaluate_point(job: tuple) -> dict:
    """``job = (point, grid, out_dir, ctx, force)`` -> the point's result (a flat dict).

    Pure: everything it reads is in ``job`` or named by it; it writes only
    ``<out>/points/<id>/`` and the unit's simulator build folder.
    """
    point, grid, out, ctx, force = job
    from hw.export import to_verilog

    folder = Path(out) / "points" / point.ident
    verilog = to_verilog(build_component(point.kind, point.fmt, dict(point.params)),
                         point.unit_name)
    key = _sha(json.dumps([DSE_VERSION, point.as_dict, grid.settings(), _sha(verilog.encode()),
                           ctx.liberty.sha256, ctx.yosys[1], ctx.sta, ctx.delay_ps,
                           ctx.node_nm, _sysmodel_inputs()], sort_keys=True).encode())
    cache = folder / "result.json"
    if cache.is_file() and not force:
        try:
            stored = json.loads(cache.read_text())
            if stored.get("key") == key:
                return stored["result"]
        except ValueError:
            pass
    result = {"point": point.ident, "label": point.label, **point.as_dict,
              "paper_design": point.is_paper()}
    seconds = {}
    t0 = time.perf_counter()
    syn = _synth(point, verilog, ctx, folder / "synth")
    result.update(syn)
    seconds["synth"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result.update(_cosim(point, grid, folder))
    seconds["cosim"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result.update(_accuracy(point, grid))
    seconds["accuracy"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result.update(_throughput(point, syn, folder))
    seconds["sysmodel"] = time.perf_counter() - t0
    # wall times are not results (they differ run to run): a file of their own
    _write_json(folder / "seconds.json", {k: round(v, 2) for k, v in seconds.items()})
    _write_json(cache, {"key": key, "result": result})
    return result
