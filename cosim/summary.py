"""``build/sim/summary.json``: one record per testbench run, merged across runs.

The file maps a key ``<testbench>_<simulator>`` to a record with at least ``vectors``,
``mismatches``, ``cycles_per_s``, ``simulator`` and ``seed``. Writers merge under an exclusive
``flock`` and replace the file atomically, so parallel pytest workers do not lose records.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_SUMMARY", "REQUIRED_KEYS", "read_summary", "update_summary"]

DEFAULT_SUMMARY = Path("build/sim/summary.json")
REQUIRED_KEYS = ("vectors", "mismatches", "cycles_per_s", "simulator", "seed")


def read_summary(path: str | Path = DEFAULT_SUMMARY) -> dict[str, dict[str, Any]]:
    """The records of ``path`` (empty when the file does not exist)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def update_summary(records: Mapping[str, Mapping[str, Any]],
                   path: str | Path = DEFAULT_SUMMARY) -> dict[str, dict[str, Any]]:
    """Merge ``records`` into ``path`` (replacing records with the same key); return all.

    Raises
    ------
    ValueError
        If a record lacks one of :data:`REQUIRED_KEYS`.
    """
    for key, record in records.items():
        missing = [k for k in REQUIRED_KEYS if k not in record]
        if missing:
            raise ValueError(f"summary record {key!r} lacks {', '.join(missing)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(path.suffix + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = read_summary(path)
        data.update({key: dict(record) for key, record in records.items()})
        # a unique temporary name created with mode 0666 & ~umask (mkstemp would give 0600)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    return data
