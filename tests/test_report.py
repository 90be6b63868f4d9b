"""The report renders in a real browser: every image loads, every section's table is there."""

import json
import re
import shutil
import subprocess

import pytest

from report.build import write_report
from sysmodel.cli import main as sysmodel_main

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--virtual-time-budget=5000"]

CHECKER = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const ids = [...document.querySelectorAll('h2[id]')].map(h => {
    let n = h.nextElementSibling, t = 0;
    while (n && n.tagName !== 'H2') { t += n.matches('table') ? 1 : n.querySelectorAll('table').length; n = n.nextElementSibling; }
    return h.id + ':' + t;
  });
  document.body.setAttribute('data-check', 'images ' + ok + '/' + imgs.length + ' ' + ids.join(' '));
});
</script></body>"""


def _fake_build(build, tmp_path):
    """Small but real artifacts: a real sysmodel sweep, and one record of every other kind in
    the formats the steps write."""
    assert sysmodel_main(["sweep", "--figure", "12", "--out", str(build / "sweep"),
                          "--quiet"]) == 0
    (build / "sim").mkdir(parents=True)
    (build / "sim" / "summary.json").write_text(json.dumps({
        "mx_add_icarus": {"unit": "mx_add", "simulator": "icarus", "seed": 5, "passed": True,
                          "vectors": 2000, "mismatches": 0, "cycles_per_s": 9000.0}}))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (build / "synth").mkdir()
    (build / "synth" / "area.csv").write_text(
        "unit,format,sharing,cells,transistors,area_um2,tech,area_mm2_10nm,crit_path_ns,"
        "bank_pair_overhead_pct\n"
        "spu_mx8,mx8,bank-pair,100,1000,5000,osu018,0.001,3.0,2.0\n"
        "hbmpim_pcu,fp16,bank-pair,300,3000,15000,osu018,0.003,4.0,3.0\n")
    (build / "synth" / "timing.csv").write_text(
        "unit,crit_path_ns,crit_ns_dram,hbm2e_a100_dram\nspu_mx8,3.0,0.36,met\n"
        "hbmpim_pcu,40.0,4.79,NOT met\n")
    for sub, name in (("synth", "area.png"), ("study", "errors.png")):
        (build / sub).mkdir(exist_ok=True)
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [1, 0])
        fig.savefig(build / sub / name)
        plt.close(fig)
    (build / "study" / "summary.csv").write_text(
        "workload,variant,step,seeds,state_rel_err,output_rel_err\n"
        "mamba2,exact/mx8/SR8/lod/torch/d=stochastic-carry,2048,1,0.0831,0.07\n"
        "mamba2,fakequant/mx8/SR8,2048,2,0.0466,0.04\n")
    (build / "bench").mkdir()
    (build / "bench" / "quant.json").write_text(json.dumps({"seed": 0, "x_per_s": 1.0}))


def test_report_renders_in_chromium(tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "chromium not found: `make setup` (scripts/setup_tools.sh) installs it"
    build = tmp_path / "build"
    _fake_build(build, tmp_path)
    out = write_report([{"step": "sweep", "seconds": 0.3, "finished": "now"}], build=build)
    page = out.read_text()
    assert "data:image/png;base64," in page and 'src="http' not in page  # self-contained
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", CHECKER, 1))
    proc = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'prof'}",
                           "--dump-dom", checked.as_uri()], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    m = re.search(r'data-check="images (\d+)/(\d+) ([^"]*)"', proc.stdout)
    assert m, proc.stderr[-2000:]
    loaded, total = int(m.group(1)), int(m.group(2))
    assert total >= 3 and loaded == total
    tables = dict(kv.split(":") for kv in m.group(3).split())
    for section in ("summary", "sim", "synth", "sweep", "study", "bench", "provenance"):
        assert int(tables[section]) >= 1, (section, tables)
    assert "Pimba / GPU" in page and "hbmpim_pcu / spu_mx8" in page and "1.50x" in page
    assert "Critical path against the SPU clocks" in page and "NOT met" in page
    assert "state error vs fp32: fakequant/mx8/SR8" in page and "0.0466" in page


def test_report_names_what_is_missing(tmp_path):
    out = write_report(build=tmp_path / "empty")
    page = out.read_text()
    assert page.count('class="missing"') >= 5 and "make sim" in page


@pytest.mark.parametrize("argv", [["--build", "/nonexistent/x"]])
def test_report_cli_bad_folder(argv, capsys):
    from report.build import main
    assert main(argv) == 2
    assert "no such folder" in capsys.readouterr().err


def test_report_never_shows_a_zero_vector_run_green(tmp_path):
    """A co-simulation record that checked no vector is a FAIL in the report, even when it
    says passed with no mismatches (issue 14, item 9)."""
    from report.build import section_sim

    (tmp_path / "sim").mkdir()
    rec = {"unit": "mx_add", "simulator": "icarus", "seed": 5, "passed": True,
           "mismatches": 0, "cycles_per_s": 1.0}
    (tmp_path / "sim" / "summary.json").write_text(json.dumps({
        "a_icarus": {**rec, "vectors": 0}, "b_icarus": {**rec, "vectors": 7}}))
    body, totals = section_sim(tmp_path)
    rows = body.split("<tr>")
    row_a = next(r for r in rows if "a_icarus" in r)
    row_b = next(r for r in rows if "b_icarus" in r)
    assert "FAIL" in row_a and "pass" not in row_a
    assert "pass" in row_b and totals["vectors"] == 7
