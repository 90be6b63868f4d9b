"""Committed synthesis measurements: one record per unit, keyed by everything that decides it.

Synthesizing every unit from scratch takes about an hour of CPU on a 2-core machine (Yosys
runs as WebAssembly; the PCU and the SPU take 5-30 min each), so the main job would spend most
of its time re-deriving figures nobody changed. A record here is the result of a real run of
:func:`synth.flow.synth_unit`, stored with the same key the flow's build cache uses (a SHA-256
of the Verilog text, the Yosys and ABC scripts, the Liberty file, the clock period, the ABC
delay target, FLOW_VERSION and the Yosys/OpenSTA versions) and its provenance. A record is
used only when its key equals the key of the unit as it is exported now, on the tools
installed now; anything else (an RTL change, another Yosys) is synthesized. So a record is a
cache entry that ships with the repository, never a typed-in figure:

* ``python -m synth`` uses the matching records (the log says which) and synthesizes the rest;
  ``--measured ignore`` synthesizes everything (``make synth``);
* ``--check UNIT ...`` re-synthesizes those units although their record matches, and stops
  with one line naming every field that differs: the main job re-derives a few units live, so
  each run shows that the records reproduce;
* ``--record`` writes the results of the run into this folder (``<unit>.json``);
* ``tests/test_synth_measured.py`` fails when a unit of ``synth/units.yaml`` has no record for
  its current Verilog.

Standard library only.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path

__all__ = ["MEASURED_DIR", "RECORD_KEYS", "MeasuredError", "record_path", "load_record",
           "matching_result", "write_record", "compare_results"]

MEASURED_DIR = Path(__file__).resolve().parent
#: The keys of a record file.
RECORD_KEYS = ("unit", "key", "abc_script_text", "result", "provenance")


class MeasuredError(ValueError):
    """A record file is unreadable or malformed (the message names the file)."""


def record_path(unit: str, folder: Path | None = None) -> Path:
    """The record file of ``unit`` in ``folder`` (default :data:`MEASURED_DIR`, read at the
    call)."""
    return Path(MEASURED_DIR if folder is None else folder) / f"{unit}.json"


def load_record(unit: str, folder: Path | None = None) -> dict | None:
    """The record of ``unit`` (``None`` when there is none); a malformed one raises."""
    path = record_path(unit, folder)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MeasuredError(f"{path}: not a JSON record ({exc})") from exc
    if not isinstance(data, dict) or sorted(data) != sorted(RECORD_KEYS):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise MeasuredError(f"{path}: keys {got}, expected {sorted(RECORD_KEYS)}")
    if data["unit"] != unit:
        raise MeasuredError(f"{path}: unit {data['unit']!r}, expected {unit!r}")
    return data


def matching_result(unit: str, key: str, scripts: dict[str, str],
                    folder: Path | None = None) -> tuple[dict, dict] | None:
    """``(result fields, provenance)`` of the record of ``unit`` when it was made with
    ``key`` and one of ``scripts`` (name -> ABC script text), else ``None``."""
    rec = load_record(unit, folder)
    if rec is None or rec["key"] != key:
        return None
    used = rec["result"].get("abc_script", "main")
    if scripts.get(used) != rec["abc_script_text"]:
        return None
    return dict(rec["result"]), dict(rec["provenance"])


def write_record(unit: str, key: str, abc_script_text: str, result: dict, *,
                 tools: dict, git_revision: str, folder: Path | None = None) -> Path:
    """Write the record of ``unit`` atomically. ``tools``: the versions and files the run
    used (Yosys, OpenSTA, Liberty name and SHA-256, ...), kept as provenance."""
    if not tools.get("verilog_sha256"):
        raise ValueError("tools must carry the Verilog's verilog_sha256")
    prov = {**tools, "git_revision": git_revision,
            "date": datetime.datetime.now(datetime.timezone.utc).replace(
                microsecond=0).isoformat()}
    data = {"unit": unit, "key": key, "abc_script_text": abc_script_text, "result": result,
            "provenance": prov}
    path = record_path(unit, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def compare_results(measured: dict, fresh: dict) -> list[str]:
    """The fields on which a fresh synthesis differs from the record, ``field: a != b``
    (every field compared exactly, the area by submodule included)."""
    diffs = []
    for name in sorted(set(measured) | set(fresh)):
        a, b = measured.get(name), fresh.get(name)
        if name == "breakdown":  # the chart category is re-derived, not measured
            a = [{k: v for k, v in p.items() if k != "category"} for p in a or ()]
            b = [{k: v for k, v in p.items() if k != "category"} for p in b or ()]
        if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            shown = (f"{len(a)} parts differ" if name == "breakdown"
                     else f"{a!r} (record) != {b!r} (now)")
            diffs.append(f"{name}: {shown}")
    return diffs


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
