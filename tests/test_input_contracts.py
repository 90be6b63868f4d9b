"""Input contracts a hostile user cannot break (issue 15): one test per row of its table.

Each test reproduces the input of one row and checks the defined behaviour: a one-line
refusal naming the problem, or the specified result. Command-line rows run the ``main``
functions in-process (fast) and check the exit status, the one-line message and the files.
"""

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import torch

from quant import formats, mx8, rng as qrng, spe
from quant.mx8 import MX8, MX8Scalar
from quant.rng import SPERandom, TorchBits

LSB_AT_1 = 2.0 ** -5  # MX8 LSB of a group whose largest value is in [1, 2)


# ------------------------------------------------------------------ stochastic default rng

@pytest.mark.parametrize("quantizer", [
    lambda t: mx8.quantize(t, "stochastic"),
    lambda t: mx8.decode(mx8.encode(t, "stochastic")),
    lambda t: formats.quantize(t, "mx8", "stochastic"),
], ids=["mx8.quantize", "mx8.encode", "formats.quantize"])
def test_default_rng_advances_256_steps_of_eighth_lsb(quantizer):
    """The issue's loop: 256 steps of +1/8 LSB from 1.0 with ``rng=None`` end near 2.0 (the
    exact sum), not stuck near 1.0 as with the same random bits every call."""
    qrng.seed(0)
    x = torch.ones(16)
    for _ in range(256):
        x = quantizer(x + LSB_AT_1 / 8)
    assert abs(float(x.mean()) - 2.0) < 0.1, x


def test_default_rng_is_seedable_in_one_call():
    x = torch.full((64,), 1.0 + LSB_AT_1 / 3)
    qrng.seed(123)
    a = [mx8.quantize(x, "stochastic") for _ in range(3)]
    qrng.seed(123)
    b = [mx8.quantize(x, "stochastic") for _ in range(3)]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], a[1])  # it advances between calls


def test_default_rng_of_spe_advances():
    qrng.seed(5)
    vals = mx8.encode(torch.full((1, 32), 35 * LSB_AT_1))  # 35 * 45 needs rounding
    s = mx8.encode(torch.full((16,), 0.7)).scalars()
    sc = MX8Scalar(s.exp[:1], s.mu[:1], s.sign[:1], s.mag[:1])
    outs = [spe.attention_attend(vals, sc) for _ in range(8)]
    assert any(not outs[0].equal(o) for o in outs[1:])


# ----------------------------------------------------------------------------------- seeds

def test_distinct_seeds_distinct_streams_or_refused():
    x = torch.full((256,), 1.0 + LSB_AT_1 / 3)
    a = mx8.encode(x, "stochastic", rng=7)
    with pytest.raises(ValueError, match=r"seed 4294967303 out of range \(allowed: 0\.\.2\*\*32-1"):
        mx8.encode(x, "stochastic", rng=7 + 2 ** 32)
    assert not a.equal(mx8.encode(x, "stochastic", rng=8))
    for bad in (2 ** 64, -1):
        with pytest.raises(ValueError, match="out of range"):
            mx8.quantize(x, "stochastic", rng=bad)
        with pytest.raises(ValueError, match="out of range"):
            SPERandom.torch(bad)


def test_spe_random_torch_seeds_stay_distinct_and_in_range():
    # the study's 31-bit seeds (seed*3 + site wraps modulo 2**32, as torch always did)
    big = 2 ** 31 - 1
    r = SPERandom.torch(big)
    assert r["add"].seed == (big * 3 + 2) % 2 ** 32
    assert SPERandom.torch(1)["mul_decay"].seed != SPERandom.torch(2)["mul_decay"].seed
    assert TorchBits(2 ** 32 - 1).seed == 2 ** 32 - 1


# ---------------------------------------------------------------------------------- 1e39

def test_float64_above_fp32_range_saturates():
    """docs/mx8.md "Inputs wider than fp32": a finite float64 beyond the fp32 range saturates
    like any large finite value (E = 254, m = 63), the rest of the group is kept."""
    xs = [1e39, -1e300, 1.0, 3e38] + [0.0] * 12
    got = mx8.encode(torch.tensor(xs, dtype=torch.float64))
    assert int(got.exp[0]) == 254
    assert got.mag[0, :4].tolist() == [63, 63, 0, 56]
    assert got.sign[0, :4].tolist() == [0, 1, 0, 0]
    fmax = torch.finfo(torch.float32).max
    same = mx8.encode(torch.tensor([fmax, -fmax, 1.0, 3e38] + [0.0] * 12))
    assert got.equal(same)
    # Inf and NaN still make the group NaN
    assert bool(mx8.encode(torch.tensor([float("inf")] + [1.0] * 15,
                                        dtype=torch.float64)).nan.all())


# ------------------------------------------------------------------- hand-built MX8 fields

def _fields(**over):
    f = dict(exp=torch.tensor([127]), mu=torch.zeros(1, 8, dtype=torch.int32),
             sign=torch.zeros(1, 16, dtype=torch.int32), mag=torch.ones(1, 16, dtype=torch.int32))
    f.update(over)
    return MX8(**f)


@pytest.mark.parametrize("field, value, pattern", [
    ("mag", 64, r"field mag out of range: min 1, max 64 \(allowed: 0\.\.63\)"),
    ("exp", 300, r"field exp out of range: min 300, max 300 \(allowed: 0\.\.255\)"),
    ("mu", 2, r"field mu out of range"),
    ("sign", -1, r"field sign out of range"),
])
def test_to_words_refuses_out_of_range_fields(field, value, pattern):
    m = _fields()
    t = getattr(m, field).clone()
    t.view(-1)[-1] = value
    bad = _fields(**{field: t})
    with pytest.raises(ValueError, match=pattern):
        mx8.to_words(bad)
    with pytest.raises(ValueError, match=pattern):
        mx8.pack(bad)


def test_scalar_to_words_refuses_out_of_range():
    s = MX8Scalar(torch.tensor([127]), torch.tensor([0]), torch.tensor([0]), torch.tensor([64]))
    with pytest.raises(ValueError, match="field mag out of range"):
        mx8.scalar_to_words(s)


# ------------------------------------------------------------------- pre-drawn random bits

@pytest.mark.parametrize("value", [-5, 300, 10 ** 9])
def test_predrawn_bits_range_checked(value):
    x = torch.full((16,), 1.01)
    bits = torch.full((16,), value, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"pre-drawn random bits out of range.*0\.\.255"):
        mx8.quantize(x, "stochastic", rng=bits)
    with pytest.raises(ValueError, match="pre-drawn random bits out of range"):
        formats.quantize(x, "fp16", "stochastic", rng=bits)
    a = mx8.encode(torch.ones(1, 16))
    with pytest.raises(ValueError, match="pre-drawn random bits out of range"):
        spe.mul(a, a, spe.SPEConfig(), torch.full((1, 16), value))


def test_predrawn_bits_must_be_integers():
    with pytest.raises(TypeError, match="integer tensor"):
        mx8.quantize(torch.ones(16), "stochastic", rng=torch.full((16,), 3.0))


# ------------------------------------------------------------------------ attention_attend

def test_attend_refuses_more_scores_than_tokens():
    vals = mx8.encode(torch.ones(2, 32))
    s = mx8.encode(torch.ones(16)).scalars()
    three = MX8Scalar(s.exp[:3], s.mu[:3], s.sign[:3], s.mag[:3])
    with pytest.raises(ValueError, match=r"scores must have shape \(2,\).*got \(3,\)"):
        spe.attention_attend(vals, three, rng=0)


# -------------------------------------------------------------------------------- cosim CLI

def _one_error_line(err: str, *needles: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize("argv, env, needles", [
    (["--vectors", "-5"], {}, ["--vectors", "-5", "integer >= 1"]),
    (["--vectors", "0"], {}, ["--vectors", "integer >= 1"]),
    ([], {"COSIM_VECTORS": "0"}, ["COSIM_VECTORS=0", "integer >= 1"]),
    ([], {"COSIM_VECTORS": "abc"}, ["COSIM_VECTORS='abc'", "not an integer"]),
    ([], {"SIM": "ghdl"}, ["SIM='ghdl'", "icarus, verilator"]),
    ([], {"COCOTB_RANDOM_SEED": "x"}, ["COCOTB_RANDOM_SEED='x'", "not an integer"]),
], ids=["vectors-5", "vectors0", "env-vectors0", "env-vectors-abc", "sim-ghdl", "seed-x"])
def test_cosim_cli_refuses_bad_knobs(monkeypatch, capsys, argv, env, needles):
    from cosim.__main__ import main
    for k in ("COSIM_VECTORS", "SIM", "COCOTB_RANDOM_SEED"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SystemExit) if argv else _no_raise():
        rc = main(["--tb", "lfsr"] + argv)
        assert rc == 2
    _one_error_line(capsys.readouterr().err, *needles)


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_run_cosim_refuses_zero_vectors_before_running(monkeypatch):
    from cosim.runner import check_vectors, run_cosim
    with pytest.raises(ValueError, match=r"vectors=0: out of range \(allowed: an integer >= 1"):
        run_cosim("lfsr", "cosim.tb_lfsr", vectors=0)
    monkeypatch.setenv("COSIM_VECTORS", "-1")
    with pytest.raises(ValueError, match="COSIM_VECTORS=-1"):
        run_cosim("lfsr", "cosim.tb_lfsr")
    assert check_vectors("0x10") == 16
    with pytest.raises(ValueError):
        check_vectors(True)


# ------------------------------------------------------------------- zero is not "not given"

def test_sysmodel_run_refuses_zero_gpus(capsys):
    from sysmodel.cli import main
    assert main(["run", "--model", "mamba2-2.7b", "--system", "Pimba", "--num-gpus", "0"]) == 2
    _one_error_line(capsys.readouterr().err, "--num-gpus 0", "integer >= 1")
    assert main(["run", "--model", "mamba2-2.7b", "--system", "Pimba", "--batch", "0"]) == 2
    _one_error_line(capsys.readouterr().err, "--batch 0")


@pytest.mark.parametrize("option", ["--heads", "--dim-state"])
def test_study_refuses_zero_sizes(capsys, option):
    from quant.study.__main__ import main
    with pytest.raises(SystemExit) as exc:
        main(["swamping", option, "0", "--steps", "2"])
    assert exc.value.code == 2
    _one_error_line(capsys.readouterr().err, option.lstrip("-").replace("-", "_"), "not 0")


@pytest.mark.parametrize("node", ["0", "28"])
def test_synth_refuses_unknown_node_with_the_list(capsys, node, tmp_path):
    from synth.__main__ import main
    assert main(["--node-nm", node, "--units", "fpmul_e4m3", "--out", str(tmp_path / "s")]) == 1
    _one_error_line(capsys.readouterr().err, f"--node-nm {node}",
                    "allowed: 180, 130, 90, 65, 45, 32, 20, 16, 14, 10")
    assert not (tmp_path / "s").exists()


def test_docs_node_examples_are_supported():
    """Every `--node-nm N` of README.md and docs/synth.md has a scaling factor."""
    import re
    from synth.config import load_config
    factors = load_config().area_scale_to_target
    root = Path(__file__).resolve().parents[1]
    nodes = [int(n) for doc in ("README.md", "docs/synth.md")
             for n in re.findall(r"--node-nm (\d+)", (root / doc).read_text())]
    assert nodes and all(n in factors for n in nodes), nodes


# ---------------------------------------------------------------------------- timing files

#: A measurement's provenance (sysmodel.measured.PROVENANCE_KEYS): entries below are complete
#: but for the one typo each case plants.
_PROV = "provenance: {simulator: icarus, seed: 1, git_revision: abc, date: '2026-12-01'}"


@pytest.mark.parametrize("text, needle", [
    ("scroe:\n  pipeline_depth: 1\n", "scroe: unknown key"),
    ("state_update: {pipeline_depth: 12, spu_cycles_per_comp: 1, comps_per_row_pair: 64,"
     f" utilization: 1.0, vectors_checked: 1, {_PROV}, extra: 3}}\n",
     "state_update.extra: unknown key"),
    ("timemux_fp16_naive: {cycles_per_subchunk: 8, values_per_subchunk: 16, banks_per_unit: 2,"
     " comps_per_row_pair: 64, pipeline_depth: 8, utilization: 0.125, vectors_checked: 1,"
     f" {_PROV}, cycles_per_subchnk: 3}}\n",
     "timemux_fp16_naive.cycles_per_subchnk: unknown key"),
], ids=["section", "mode-key", "baseline-key"])
def test_timing_file_typos_refused(tmp_path, capsys, text, needle):
    from sysmodel.cli import main
    path = tmp_path / "t.yaml"
    path.write_text(text)
    assert main(["run", "--model", "mamba2-2.7b", "--system", "Pimba", "--timing",
                 str(path)]) == 2
    _one_error_line(capsys.readouterr().err, str(path), needle)


# ---------------------------------------------------------------------------------- sweeps

def _grid(path: Path, name: str = "ok") -> Path:
    path.write_text(f"name: {name}\ntitle: t\nplot: {{kind: throughput, baseline: GPU}}\n"
                    "blocks:\n  - {models: [mamba2-2.7b], systems: [GPU, Pimba], gpus: [A100],"
                    " num_gpus: 1, batch_sizes: [32], input_len: 16, output_len: 16}\n")
    return path


@pytest.mark.parametrize("name", ['"../../escape"', '""', '".hidden"', '"a/b"'])
def test_grid_name_cannot_escape_out(tmp_path, capsys, name):
    from sysmodel.cli import main
    out = tmp_path / "o" / "a" / "b"
    assert main(["sweep", "--grid", str(_grid(tmp_path / "g.yaml", name)), "--out", str(out),
                 "--quiet", "--no-plot"]) == 2
    _one_error_line(capsys.readouterr().err, "g.yaml: name: bad name")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [tmp_path / "g.yaml"]


def test_sweep_out_is_a_file_or_unwritable(tmp_path, capsys):
    from sysmodel.cli import main
    grid = str(_grid(tmp_path / "g.yaml"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["sweep", "--grid", grid, "--out", str(afile), "--quiet"]) == 2
    _one_error_line(capsys.readouterr().err, f"--out {afile}: not a folder")
    assert main(["sweep", "--grid", grid, "--out", str(afile / "sub"), "--quiet"]) == 2
    _one_error_line(capsys.readouterr().err, f"--out {afile / 'sub'}: cannot create")


def test_sweep_png_path_a_folder_writes_nothing(tmp_path, capsys):
    from sysmodel.cli import main
    out = tmp_path / "out"
    (out / "ok.png").mkdir(parents=True)
    assert main(["sweep", "--grid", str(_grid(tmp_path / "g.yaml")), "--out", str(out),
                 "--quiet"]) == 2
    _one_error_line(capsys.readouterr().err, "ok.png: is a folder")
    assert sorted(p.name for p in out.iterdir()) == ["ok.png"]  # no CSV without its PNG


def test_sweep_outputs_appear_together(tmp_path, monkeypatch):
    """The PNG fails to render: neither file appears (and no temporary is left)."""
    from sysmodel import plot, sweep
    grid = sweep.load_grid(_grid(tmp_path / "g.yaml"))

    def boom(rows, grid):
        raise RuntimeError("render failed")
    monkeypatch.setattr(plot, "render_png", boom)
    with pytest.raises(RuntimeError):
        sweep.run_grid(grid, tmp_path / "out", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_created_files_follow_the_umask(tmp_path):
    from cosim.summary import update_summary
    from sysmodel import sweep
    from sysmodel.cli import main
    old = os.umask(0o022)
    try:
        assert main(["sweep", "--grid", str(_grid(tmp_path / "g.yaml")), "--out",
                     str(tmp_path / "out"), "--quiet"]) == 0
        summary = tmp_path / "sim" / "summary.json"
        update_summary({"x_icarus": {"unit": "x", "simulator": "icarus", "passed": True,
                                     "seed": 1, "vectors": 1, "mismatches": 0,
                                     "cycles_per_s": 1.0}}, summary)
        sweep.write_atomic(tmp_path / "w.bin", b"x")
    finally:
        os.umask(old)
    for p in [tmp_path / "out" / "ok.csv", tmp_path / "out" / "ok.png", summary,
              tmp_path / "w.bin"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


# ---------------------------------------------------------------------------- config files

def test_duplicate_yaml_key_refused_naming_file(tmp_path, capsys):
    from sysmodel.cli import main
    g = _grid(tmp_path / "g.yaml")
    g.write_text("title: again\n" + g.read_text())
    assert main(["sweep", "--grid", str(g), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    _one_error_line(capsys.readouterr().err, str(g), "duplicate key 'title'")


def test_non_utf8_file_refused_naming_file(tmp_path, capsys):
    from sysmodel.cli import main
    g = tmp_path / "g.yaml"
    g.write_bytes(b"name: \xff\xfe\n")
    assert main(["sweep", "--grid", str(g), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    _one_error_line(capsys.readouterr().err, str(g), "not UTF-8")


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_numbers_refused(value):
    from sysmodel.config import ConfigError, Section
    import yaml
    sec = Section({"tensor_tflops": yaml.safe_load(value)}, "gpus.yaml", "A100")
    with pytest.raises(ConfigError, match=r"gpus.yaml: A100.tensor_tflops: value .* out of "
                                          r"range \(allowed: a number > 0, finite\)"):
        sec.number("tensor_tflops", positive=True)
    with pytest.raises(ConfigError, match="finite"):
        sec.number("tensor_tflops", minimum=-1e9)


def test_gpus_yaml_with_inf_refused(tmp_path):
    import re
    import shutil
    from sysmodel.config import CONFIG_DIR, ConfigError
    from sysmodel.hardware import load_hardware
    root = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, root)
    text = (root / "gpus.yaml").read_text()
    new, n = re.subn(r"(tensor_tflops:\s*)[0-9.]+", r"\1.inf", text, count=1)
    assert n == 1
    (root / "gpus.yaml").write_text(new)
    with pytest.raises(ConfigError, match=r"gpus.yaml: .*tensor_tflops: value inf out of range"):
        load_hardware(config_dir=root)


# ------------------------------------------------------------------------------ report

def test_report_names_an_extra_sweep_csv(tmp_path):
    from report.build import section_sweep
    d = tmp_path / "sweep"
    d.mkdir()
    (d / "fig12.csv").write_text("model,system,batch_size\n")
    (d / "figure_extra.csv").write_text("a,b\n1,2\n")
    (d / "mine.csv").write_text("")
    body, _ = section_sweep(tmp_path)
    assert "figure_extra.csv, mine.csv" in body and "fig12" in body
