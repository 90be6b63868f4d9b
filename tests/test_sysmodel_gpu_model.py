"""GPU model of issue 13: parameters and their validation, kernel fixed costs, measured
all-reduce, memory feasibility, GPU+Q at 8 bits, the ablation and the calibration fits."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from sysmodel.ablation import (CHANGES, MAIN_ALLREDUCE_US, ablation_rows, breakdown_rows,
                               configurations, markdown, ratio_stats, variant)
from sysmodel.calibrate import (CalibrationError, comparison, fit_params, params_yaml,
                                relative_errors, write_outputs)
from sysmodel.cli import main
from sysmodel.config import CONFIG_DIR, ConfigError
from sysmodel.gpu import allreduce_time_s
from sysmodel.hardware import GPU_PARAM_KEYS, apply_gpu_params, load_hardware
from sysmodel.plot import feasible_geomean
from sysmodel.system import Point, evaluate, memory_parts_gb
from sysmodel.workload import get_model, load_models, step_kernels

DEFAULTS = (CONFIG_DIR / "spu_timing_defaults.yaml",)
HW = load_hardware(timing_files=DEFAULTS)
A100 = HW.gpu("A100")


def _copy_configs(tmp_path: Path) -> Path:
    dst = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, dst)
    return dst


def _edit(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _points(d, i, value):
    d["nvlink3"]["allreduce"]["points"][i] = value


@pytest.mark.parametrize("file,edit,expected", [
    ("gpus.yaml", lambda d: d["A100"].update(dram_fraction=0.0), "A100.dram_fraction"),
    ("gpus.yaml", lambda d: d["A100"].update(dram_fraction=1.2), "A100.dram_fraction"),
    ("gpus.yaml", lambda d: d["H100"].update(tensor_fraction=float("nan")),
     "H100.tensor_fraction"),
    ("gpus.yaml", lambda d: d["H200"].update(tensor_fraction="high"), "H200.tensor_fraction"),
    ("gpus.yaml", lambda d: d["A100"].update(kernel_us_graph=-0.5), "A100.kernel_us_graph"),
    ("gpus.yaml", lambda d: d["B200"].update(kernel_us_stream=float("inf")),
     "B200.kernel_us_stream"),
    ("gpus.yaml", lambda d: d["A100"].update(kernel_us_graph=5.0), "A100.kernel_us_graph"),
    ("gpus.yaml", lambda d: d["A100"].pop("tensor_fraction"), "A100.tensor_fraction"),
    ("interconnect.yaml", lambda d: _points(d, 1, [524288, 1.0]), "nvlink3.allreduce.points[1]"),
    ("interconnect.yaml", lambda d: _points(d, 0, [262144, -3.0]),
     "nvlink3.allreduce.points[0].us"),
    ("interconnect.yaml", lambda d: d["nvlink4"]["allreduce"].update(busbw_gbs=0),
     "nvlink4.allreduce.busbw_gbs"),
    ("interconnect.yaml", lambda d: d["nvlink4"].update(allreduce_latency_us=5.0),
     "nvlink4.allreduce_latency_us: unknown key"),
    ("systems.yaml", lambda d: d["systems"]["GPU"].update(cuda_graphs="yes"),
     "systems.GPU.cuda_graphs"),
    ("systems.yaml", lambda d: d["formats"]["int8"].pop("group_size"),
     "formats.int8.group_size"),
])
def test_bad_gpu_parameter_is_refused_naming_file_and_key(tmp_path, file, edit, expected):
    root = _copy_configs(tmp_path)
    _edit(root / file, edit)
    with pytest.raises(ConfigError) as info:
        load_hardware(root, timing_files=(root / "spu_timing_defaults.yaml",))
    message = str(info.value)
    assert file in message and expected in message and "allowed:" in message
    assert "\n" not in message


def test_gpu_parameters_carry_their_measured_values():
    frac = {g: HW.gpu(g).tensor_fraction for g in HW.gpus}
    assert frac == {"A100": 0.869, "H100": 0.803, "H200": 0.803, "B200": 0.776}
    assert A100.dram_bytes_per_s == pytest.approx(1800e9, rel=0.001)   # 1.80 TB/s measured
    assert all(HW.gpu(g).dram_fraction == 0.88 for g in ("H100", "H200", "B200"))
    assert (A100.kernel_s(True), A100.kernel_s(False)) == (1.1e-6, 3.0e-6)


def test_kernel_counts_come_from_the_workload_description():
    models = load_models()
    assert sum(step_kernels(models["mamba2-2.7b"]).values()) == 64 * 6 + 4
    counts = step_kernels(models["zamba2-7b"])
    assert counts["state_update"] == 81 and counts["attention"] == 13 * 2
    pim = step_kernels(models["zamba2-7b"], frozenset({"state_update", "attention"}))
    assert pim["state_update"] == 81 * 2 and pim["attention"] == 13 * 5
    assert pim["gemm"] == counts["gemm"] and pim["other"] == counts["other"]


@pytest.mark.parametrize("graphs,per_kernel", [(True, 1.1e-6), (False, 3.0e-6)])
def test_every_kernel_pays_the_fixed_cost(graphs, per_kernel):
    point = Point("mamba2-2.7b", "GPU", batch_size=32, output_len=64, cuda_graphs=graphs)
    free = dataclasses.replace(A100, kernel_us_graph=0.0, kernel_us_stream=0.0)
    hw0 = dataclasses.replace(HW, gpus={**HW.gpus, "A100": free})
    with_cost, without = evaluate(point, HW), evaluate(point, hw0)
    kernels = step_kernels(get_model("mamba2-2.7b"))
    for (cat, t1), (_, t0) in zip(with_cost.time_s, without.time_s):
        assert t1 - t0 == pytest.approx(kernels[cat] * per_kernel * 64)
    assert with_cost.cuda_graphs is graphs and with_cost.kernels_per_step == 388


def test_system_switch_turns_graphs_off(tmp_path):
    root = _copy_configs(tmp_path)
    _edit(root / "systems.yaml", lambda d: d["systems"]["GPU"].update(cuda_graphs=False))
    hw = load_hardware(root, timing_files=(root / "spu_timing_defaults.yaml",))
    assert evaluate(Point("opt-7b", "GPU", batch_size=8, output_len=8), hw).cuda_graphs is False
    assert evaluate(Point("opt-7b", "GPU", batch_size=8, output_len=8, cuda_graphs=True),
                    hw).cuda_graphs is True


def test_allreduce_of_main_is_the_ablation_baseline():
    before = variant(HW, frozenset())
    link = before.gpu("A100").interconnect
    for size in (458752, 1966080, 5e7):
        assert allreduce_time_s(link, size, 8) == pytest.approx(
            MAIN_ALLREDUCE_US * 1e-6 + 2 * 7 / 8 * size / 300e9)
    g = before.gpu("H100")
    assert (g.dram_fraction, g.tensor_fraction, g.kernel_us_graph) == (1.0, 1.0, 0.0)
    q = before.system("GPU+Q")
    assert (q.state_format.bytes_per_value, q.kv_format.bytes_per_value) == (1.0, 2.0)
    after = variant(HW, frozenset(CHANGES))
    p = Point("retnet-70b", "GPU+Q", num_gpus=8, batch_size=32, output_len=32)
    assert evaluate(p, after).tokens_per_s == evaluate(p, HW).tokens_per_s


def test_gpu_q_is_the_study_int8_for_state_and_kv():
    quant = pytest.importorskip("quant.formats")
    int8 = HW.system("GPU+Q").state_format
    assert int8.bytes_per_value * 8 == quant.bits_of["int8"] == 9
    assert HW.system("GPU+Q").kv_format == int8
    p = Point("opt-7b", "GPU", batch_size=16)
    gpu = memory_parts_gb(get_model("opt-7b"), HW.system("GPU"), p)
    q = memory_parts_gb(get_model("opt-7b"), HW.system("GPU+Q"), p)
    assert q["kv"] == pytest.approx(9 / 16 * gpu["kv"]) and q["weights"] == gpu["weights"]


def test_memory_per_gpu_and_feasibility(capsys):
    p = Point("opt-7b", "GPU", batch_size=128)
    parts = memory_parts_gb(get_model("opt-7b"), HW.system("GPU"), p)
    assert parts["kv"] == pytest.approx(2 * 32 * 32 * 128 * 4096 * 128 * 2 / 1e9)
    assert 13.0 < parts["weights"] < 14.0            # 6.85 B parameters, fp16
    r = evaluate(p, HW)
    assert not r.fits_memory and r.row()["fits_memory"] == 0
    # retnet-70b on 8 GPUs: 10 heads dealt as 2 per GPU, so a GPU holds 2/10 of the state
    p70 = Point("retnet-70b", "GPU", num_gpus=8, batch_size=32)
    st = memory_parts_gb(get_model("retnet-70b"), HW.system("GPU"), p70)["state"]
    assert st == pytest.approx(96 * 2 * 768 * 1536 * 32 * 2 / 1e9)
    assert main(["run", "--model", "opt-7b", "--system", "GPU", "--batch", "128",
                 "--output-len", "4"]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: does not fit:") and "\n" not in err
    assert main(["run", "--model", "mamba2-2.7b", "--system", "GPU", "--batch", "32",
                 "--output-len", "4"]) == 0


def test_ratio_stats_and_geomean_keep_feasible_points_only():
    def row(model, system, tput, fits):
        return {"model": model, "gpu": "A100", "num_gpus": 1, "batch_size": 32,
                "system": system, "tokens_per_s": tput, "fits_memory": fits}
    rows = [row("a", "GPU", 1.0, 1), row("a", "Pimba", 2.0, 1),
            row("b", "GPU", 1.0, 0), row("b", "Pimba", 8.0, 1),
            row("c", "GPU", 2.0, 1), row("c", "Pimba", 16.0, 1)]
    st = ratio_stats(rows, "Pimba", "GPU", feasible_only=True)
    assert (st.geomean, st.max, st.n, st.points) == (pytest.approx(4.0), 8.0, 2, 3)
    st = ratio_stats(rows, "Pimba", "GPU", feasible_only=False)
    assert (st.geomean, st.max, st.n) == (pytest.approx((2 * 8 * 8) ** (1 / 3)), 8.0, 3)
    assert feasible_geomean([2.0, 8.0, 100.0], [True, True, False]) == (pytest.approx(4.0), 2)
    assert math.isnan(feasible_geomean([2.0], [False])[0])


def test_ablation_tables_small_grid():
    pts = {12: tuple(Point(m, s, batch_size=b)
                     for m in ("mamba2-2.7b", "opt-7b") for b in (32, 128)
                     for s in ("GPU", "GPU+Q", "GPU+PIM", "Pimba"))}
    rows = ablation_rows(HW, figures=(12,), points=pts)
    assert len(rows) == len(configurations()) * 4
    after = {r["ratio"]: r for r in rows if r["config"] == "after"}
    before = {r["ratio"]: r for r in rows if r["config"] == "before"}
    assert after["Pimba/GPU"]["points"] == 4 and after["Pimba/GPU"]["n"] == 2   # opt-7b: no fit
    assert before["Pimba/GPU"]["n"] == 4                    # no filter before
    assert after["GPU+Q/GPU"]["geomean"] > 1.0
    text = markdown(rows, breakdown_rows(HW))
    assert "| after | mamba2-2.7b | 1 x A100 | 32 |" in text


def _synthetic_raw(gpu, read_gbs=1700.0, tflops=270.0, stream_us=4.0, graph_us=1.2):
    recs = []
    for mb in (64, 256, 1024):
        nbytes = mb * 2 ** 20
        bw = read_gbs * (1.3 if mb == 64 else 1.0)          # small buffer: L2 helps, ignored
        recs.append({"bench": "read", "shape": f"{mb} MB", "bytes": nbytes,
                     "seconds": nbytes / (bw * 1e9)})
        recs.append({"bench": "copy", "shape": f"{mb} MB", "bytes": nbytes,
                     "seconds": 2 * nbytes / (0.95 * read_gbs * 1e9)})
    for m, k, n in ((32, 2560, 2560), (8192, 8192, 8192)):
        rate = tflops * 1e12 if m == 8192 else 0.3 * tflops * 1e12
        recs.append({"bench": "gemm", "shape": f"{m}x{k}x{n}", "m": m, "k": k, "n": n,
                     "seconds": 2 * m * k * n / rate})
    for us in (stream_us, stream_us * 1.1, stream_us * 0.9):
        recs.append({"bench": "launch_stream", "kernels": 2000, "seconds": 2000 * us * 1e-6})
    for us in (graph_us, graph_us * 1.05, graph_us * 0.95):
        recs.append({"bench": "launch_graph", "kernels": 2000, "seconds": 2000 * us * 1e-6})
    recs.append({"bench": "attention", "shape": "x", "batch": 32, "heads": 32, "dim_head": 128,
                 "kv_len": 2048, "seconds": 1e-3})
    recs.append({"bench": "state_update", "format": "fp16", "model": "passes", "values": 1e8,
                 "passes_read": 3, "passes_written": 2, "kernels": 3, "seconds": 1e-3})
    return {"device": "synthetic", "records": recs}


def test_calibration_fits_synthetic_timings():
    params = fit_params(_synthetic_raw(A100), A100)
    assert tuple(params) == GPU_PARAM_KEYS
    assert params["dram_fraction"] == pytest.approx(1700 / 1935, abs=1e-4)
    assert params["tensor_fraction"] == pytest.approx(270 / 312, abs=1e-4)
    assert params["kernel_us_stream"] == pytest.approx(4.0)
    assert params["kernel_us_graph"] == pytest.approx(1.2)
    rows = comparison(_synthetic_raw(A100), dataclasses.replace(A100, **params))
    assert set(relative_errors(rows)) == {"read", "copy", "gemm", "attention", "state_update"}
    read = [r for r in rows if r["bench"] == "read" and r["shape"] == "1024 MB"][0]
    # the model's read of 1 GB at the fitted bandwidth plus one graph kernel
    assert read["model_us"] == pytest.approx(read["measured_us"] + 1.2, rel=1e-3)


def test_calibration_files_are_taken_by_the_model(tmp_path):
    out, raw = tmp_path / "h200.yaml", tmp_path / "h200.raw.json"
    params = write_outputs(out, raw, A100, _synthetic_raw(A100))
    assert yaml.safe_load(out.read_text()) == {"A100": params}
    assert json.loads(raw.read_text())["params"] == params
    table = raw.with_suffix(".md").read_text()
    assert "| read | 1024 MB |" in table and "mean abs error" in table
    hw = apply_gpu_params(HW, out)
    assert hw.gpu("A100").dram_fraction == params["dram_fraction"]
    assert hw.gpu("H100") == HW.gpu("H100")
    assert main(["run", "--model", "mamba2-2.7b", "--system", "GPU", "--batch", "8",
                 "--output-len", "4", "--gpu-params", str(out)]) == 0


def test_calibration_refuses_impossible_measurements(tmp_path):
    out, raw = tmp_path / "p.yaml", tmp_path / "p.raw.json"
    with pytest.raises(CalibrationError, match="above"):
        write_outputs(out, raw, A100, _synthetic_raw(A100, read_gbs=2500.0))
    with pytest.raises(ConfigError, match="kernel_us_graph"):
        write_outputs(out, raw, A100, _synthetic_raw(A100, stream_us=1.0, graph_us=2.0))
    assert not out.exists() and not raw.exists()


def test_bad_gpu_params_file_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(params_yaml("A100", {"dram_fraction": 1.3, "tensor_fraction": 0.8,
                                        "kernel_us_graph": 1.0, "kernel_us_stream": 2.0}, "x"))
    assert main(["run", "--model", "opt-7b", "--system", "GPU", "--gpu-params",
                 str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{bad}: A100.dram_fraction" in err and "allowed: a number in (0, 1]" in err


def test_calibrate_without_cuda_exits_2_with_one_line(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    out = tmp_path / "c.yaml"
    assert main(["calibrate", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: calibrate needs a CUDA GPU") and "\n" not in err
    assert not out.exists()


def test_report_headline_means_use_fitting_points_only():
    from report.build import throughput_ratios

    def row(model, system, tput, fits):
        return {"model": model, "system": system, "batch_size": "128",
                "tokens_per_s": str(tput), "fits_memory": str(fits)}
    rows = [row("a", "GPU", 1, 1), row("a", "Pimba", 2, 1), row("b", "GPU", 1, 0),
            row("b", "Pimba", 100, 1), row("a", "GPU+Q", 1, 1), row("b", "GPU+Q", 1, 1),
            row("a", "GPU+PIM", 1, 1), row("b", "GPU+PIM", 1, 1)]
    ratios = throughput_ratios(rows, 128)
    assert ratios["GPU"] == (pytest.approx(2.0), 1, 2)
    assert ratios["GPU+Q"] == (pytest.approx(math.sqrt(200)), 2, 2)


def test_sweep_switches_graphs_off_and_takes_gpu_params(tmp_path):
    from sysmodel.sweep import read_table
    grid = tmp_path / "g.yaml"
    grid.write_text("name: mine\ntitle: t\nplot: {kind: throughput, baseline: GPU}\nblocks:\n"
                    "  - {models: [mamba2-2.7b], systems: [GPU, Pimba], gpus: [A100],\n"
                    "     num_gpus: 1, batch_sizes: [8], input_len: 128, output_len: 16}\n")
    params = tmp_path / "p.yaml"
    params.write_text(params_yaml("A100", {"dram_fraction": 0.5, "tensor_fraction": 0.8,
                                           "kernel_us_graph": 1.0, "kernel_us_stream": 2.0},
                                  "test"))
    runs = {}
    for name, extra in (("graph", []), ("stream", ["--no-cuda-graphs"]),
                        ("params", ["--gpu-params", str(params)])):
        out = tmp_path / name
        assert main(["sweep", "--grid", str(grid), "--out", str(out), "--no-plot", "--quiet",
                     "--jobs", "2" if name == "params" else "1", *extra]) == 0
        runs[name] = {r["system"]: r for r in read_table(out / "mine.csv")}
    assert runs["graph"]["GPU"]["cuda_graphs"] == 1 and runs["stream"]["GPU"]["cuda_graphs"] == 0
    k = runs["graph"]["GPU"]["kernels_per_step"]
    assert k == 388
    extra_s = runs["stream"]["GPU"]["time_total_s"] - runs["graph"]["GPU"]["time_total_s"]
    assert extra_s == pytest.approx(k * (3.0 - 1.1) * 1e-6 * 16)
    assert runs["params"]["GPU"]["tokens_per_s"] < runs["graph"]["GPU"]["tokens_per_s"]


def test_benchmark_bodies_run_on_cpu_with_tiny_shapes():
    """The CUDA suite's code, run on the CPU on tiny shapes (timings meaningless): every
    benchmark produces records the model can be compared with."""
    torch = pytest.importorskip("torch")
    from sysmodel import calibrate as cal
    ctx = cal.Bench(torch, "cpu")
    records, notes = [], []
    cal._bench_memory(ctx, (1,), records)
    cal._bench_gemm(ctx, False, records, shapes=[(64, 96)], large=((64, 64, 64),))
    cal._bench_state(ctx, (2,), records, shapes=[(2, 32, 64, False)])
    cal._bench_attention(ctx, records, shapes=[(2, 32)], kv_lens=(16,), b=2)
    cal._bench_pointwise(ctx, records, batches=(2,), widths=(64,))
    benches = {r["bench"] for r in records}
    assert benches == {"read", "copy", "gemm", "state_update", "attention", "rmsnorm",
                       "silu_gate"}
    assert {r["format"] for r in records if r["bench"] == "state_update"} == {"fp16", "int8"}
    rows = comparison({"records": records}, A100)
    assert len(rows) == len(records) and all(r["measured_us"] > 0 for r in rows)
