"""The compiled kernels of the golden model (``quant/csrc/*.c``), built on first use.

* ``spe_update.c``: :func:`quant.spe.state_update` runs the whole update of a group (both
  products, the adder, the rounding, the dot-product terms) in one vectorised C loop when the
  library is available, and otherwise its eager PyTorch form; both are bit-identical to the
  composition of :mod:`quant.spe`'s operations (``tests/test_spe_arith.py`` checks both forms
  against it, ``tests/test_spe_native.py`` one against the other). The format's constants
  come from :mod:`quant.constants` as ``-D`` flags, so they live in one place.
* ``mt19937.c``: the draws of :class:`quant.rng.TorchBits` (the outputs of torch's CPU
  generator, the same stream), checked against torch's own draws before first use.

The library is compiled with the C compiler ``$CC`` (default ``cc``), ``-O3 -march=native``,
into ``build/native/`` of the source tree (``$QUANT_NATIVE_DIR`` if set;
``~/.cache/pimba-pim`` for an installed, non-editable package), under a name hashing the
sources, the flags, the compiler's version and the CPU's feature flags, so a changed source or
another machine builds its own (about a second, once). ``QUANT_NATIVE=0`` turns the kernels
off (the eager forms run); ``1`` (the default) uses them when a compiler is there. Without one
the eager forms run, after one warning.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import threading
import warnings
from pathlib import Path

from . import constants as C

__all__ = ["lib", "library_path", "mt19937_draw", "ENV", "ENV_DIR"]

ENV = "QUANT_NATIVE"
ENV_DIR = "QUANT_NATIVE_DIR"
_SRCS = tuple(Path(__file__).with_name("csrc") / f for f in ("spe_update.c", "mt19937.c"))
_DEFINES = ("GROUP", "PAIRS", "BIAS", "MAG_BITS", "MAG_MAX", "EXP_NAN", "ADD_FRAC_BITS",
            "FMA_FRAC_BITS", "LANES", "DOT_GUARD_BITS", "DOT_X_NAN")
_CFLAGS = ("-O3", "-march=native", "-std=c11", "-shared", "-fPIC", "-fno-strict-aliasing")

_lock = threading.Lock()
_state: dict = {}  # "lib": the loaded CDLL or None (unavailable), once tried


def _enabled() -> bool:
    val = os.environ.get(ENV, "1")
    if val not in ("0", "1"):
        raise ValueError(f"environment variable {ENV} must be 0 or 1, not {val!r}")
    return val == "1"


def _cache_dir() -> Path:
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():
        return root / "build" / "native"
    return Path.home() / ".cache" / "pimba-pim"


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    import platform
    return platform.machine() + platform.processor()


def library_path() -> tuple[Path, list[str]] | None:
    """Where the library for this source, compiler and CPU lives, and the command that builds
    it (None without a C compiler)."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return None
    defines = [f"-D{name}={int(getattr(C, name))}" for name in _DEFINES]
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    h = hashlib.sha256()
    flags = " ".join((cc,) + _CFLAGS + tuple(defines)).encode()
    for part in (*(src.read_bytes() for src in _SRCS), flags, version.encode(),
                 _cpu_flags().encode()):
        h.update(part)
        h.update(b"\0")
    path = _cache_dir() / f"quant_native-{h.hexdigest()[:16]}.so"
    return path, [cc, *_CFLAGS, *defines, *(str(src) for src in _SRCS), "-o"]


def _build(path: Path, cmd: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        res = subprocess.run(cmd + [str(tmp)], capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[:2000]}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load() -> ctypes.CDLL | None:
    found = library_path()
    if found is None:
        warnings.warn("quant.native: no C compiler ($CC or cc); the state update runs its "
                      "eager PyTorch form", RuntimeWarning, stacklevel=3)
        return None
    path, cmd = found
    try:
        if not path.is_file():
            _build(path, cmd)
        dll = ctypes.CDLL(str(path))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        warnings.warn(f"quant.native: the kernel could not be built or loaded ({exc}); the "
                      f"state update runs its eager PyTorch form", RuntimeWarning, stacklevel=3)
        return None
    i64, i32, ptr = ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p
    common = [i64, i64, i64, i32] + [ptr] * 20
    dll.spe_update_unfused.argtypes = common + [i32] + [ptr] * 10
    dll.spe_update_unfused.restype = None
    dll.spe_update_fused.argtypes = common + [ptr] * 8
    dll.spe_update_fused.restype = None
    dll.mt19937_draw.argtypes = [ptr, ptr, i64, ctypes.c_uint32]
    dll.mt19937_draw.restype = None
    return dll


def lib() -> ctypes.CDLL | None:
    """The loaded kernel, or None when ``QUANT_NATIVE=0`` or it cannot be built."""
    if not _enabled():
        return None
    with _lock:
        if "lib" not in _state:
            _state["lib"] = _load()
        return _state["lib"]


#: Size of ``torch.Generator().get_state()`` on CPU, the layout mt19937.c reads.
_MT_STATE_BYTES = 5056


def _mt_layout_ok(dll) -> bool:
    """Whether the compiled MT19937 reproduces torch's CPU generator (state layout, stream,
    the state handed back), over several twists and partial blocks."""
    import torch
    ref, mine = torch.Generator().manual_seed(20260), torch.Generator().manual_seed(20260)
    if mine.get_state().numel() != _MT_STATE_BYTES:
        return False
    for n in (5, 619, 1, 1248, 3000, 624):
        want = torch.empty(n, dtype=torch.int32).random_(generator=ref)
        got = torch.empty(n, dtype=torch.int32)
        state = mine.get_state()
        dll.mt19937_draw(state.data_ptr(), got.data_ptr(), n, 0xFFFFFFFF)
        mine.set_state(state)
        if not torch.equal(got & 0x7FFFFFFF, want & 0x7FFFFFFF):
            return False
    return torch.equal(mine.get_state(), ref.get_state())


def mt19937_draw(gen, out, r: int) -> bool:
    """Fill ``out`` (contiguous int32) with the low ``r`` bits of the next ``out.numel()``
    outputs of the CPU ``torch.Generator`` ``gen``, advancing it: what ``out.random_(
    generator=gen).bitwise_and_(2**r - 1)`` does, about 4x faster. False (nothing drawn)
    where the kernel is unavailable or torch's generator state is not the layout it knows."""
    dll = lib()
    if dll is None:
        return False
    with _lock:
        if "mt_ok" not in _state:
            _state["mt_ok"] = _mt_layout_ok(dll)
    if not _state["mt_ok"]:
        return False
    state = gen.get_state()
    dll.mt19937_draw(state.data_ptr(), out.data_ptr(), out.numel(), (1 << r) - 1)
    gen.set_state(state)
    return True
