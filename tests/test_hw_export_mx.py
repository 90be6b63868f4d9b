"""The MX8 units are registered for export under their documented names."""

import pytest

from hw.export import UNITS, export_unit, load_units
from quant.rng import DEFAULT_SITE_SEEDS

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")

EXPECTED = {"mx_mul": ("mul", 3, "mul_decay"), "mx_mul_scalar": ("mul_scalar", 3, "mul_outer"),
            "mx_add": ("add", 4, "add"), "mx_dot": ("dot", 3, None)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registered_units(name):
    load_units()
    unit = UNITS[name]()
    kind, latency, site = EXPECTED[name]
    assert unit.kind == kind and unit.latency == latency
    if site is not None:
        assert unit.seed == DEFAULT_SITE_SEEDS[site]
        assert unit.rbits == 8 and unit.renorm == "lod"


def test_lfsr_exports_with_its_ports(tmp_path):
    load_units()
    assert UNITS["lfsr"]().width == 256
    text = export_unit("lfsr", tmp_path).read_text()
    assert "module lfsr(" in text
    for port in ("clk", "rst", "i_en", "o_rand", "o_state"):
        assert port in text


def test_hashes_are_those_of_the_written_files(tmp_path, capsys):
    """``python -m hw.export --hashes`` prints the SHA-256 of exactly what ``--out`` writes."""
    import hashlib

    from hw.export import export_unit, main

    assert main(["--hashes", "--unit", "example_mac"]) == 0
    printed = capsys.readouterr().out.split()
    path = export_unit("example_mac", tmp_path)
    assert printed == [hashlib.sha256(path.read_bytes()).hexdigest(), "example_mac.v"]
