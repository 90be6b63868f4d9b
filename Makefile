# Pimba-style PIM state-update accelerator: one Makefile drives set-up, tests and the main job.
#   make demo   - the main job (sim + synth + sweeps + study + report)
#   make test   - the test suite (bootstraps `make setup` on a fresh machine)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PY ?= python3
VENV := .venv
VPY := $(abspath $(VENV))/bin/python
STAMP := $(VENV)/.setup-stamp
BUILD := build
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup tools test test-long bench bench-cosim bench-dse sim sim-long synth synth-fresh sweep study dse \
	demo report clean help

help:
	@echo "make demo       main job: co-simulation, synthesis, system sweeps, accuracy study, report"
	@echo "make test       test suite (sets everything up first when needed)"
	@echo "make test-long  long regressions (slow tests)"
	@echo "make bench      benchmarks -> build/bench/*.json"
	@echo "make sim | sim-long | synth | sweep | study   individual steps"
	@echo "make synth-fresh [RECORD=1]   every unit synthesized from scratch (about an hour)"
	@echo "make dse        design-space sweep of the SPE/SPU (dse/grids/small.yaml) -> build/dse"
	@echo "make bench-dse  that grid on the local pool and on a local Ray instance -> build/bench"

setup: $(STAMP)

# Python packages (CPU torch wheel first, so the range in pyproject.toml adds nothing),
# then the simulators/EDA tools that do not come from PyPI.
$(STAMP): pyproject.toml scripts/setup_tools.sh
	@echo "== setup: virtual environment in $(VENV)"
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[eda,study,ray]'
	bash scripts/setup_tools.sh
	touch $@

tools:
	bash scripts/setup_tools.sh

test: setup
	$(VPY) -m pytest -q -m "not slow" -p no:cacheprovider

# long regressions, and the Quark interoperability check (its optional extra installed here)
test-long: setup
	$(VPY) -m pip install -q -e '.[eda,study,ray,interop]'
	$(VPY) -m pytest -q -m slow -p no:cacheprovider

bench: setup
	$(VPY) -m quant.bench --out $(BUILD)/bench/quant.json
	$(VPY) -m sysmodel.bench --out $(BUILD)/bench/sysmodel.json

# bulk-mode co-simulation timings: fresh Verilator build + 1 M vectors per MX unit; and what
# one simulated cycle costs a cocotb bench on Verilator (await, port writes and reads)
bench-cosim: setup
	$(VPY) -m cosim.bulk --out $(BUILD)/bench/cosim_bulk.json
	$(VPY) -m cosim.probe --out $(BUILD)/bench/cosim_probe.json

# every cocotb testbench on both simulators, mutants must fail, in parallel (--jobs: the core
# count); -> build/sim/summary.json and the run's figures in build/bench/cosim.json
sim: setup
	$(VPY) -m cosim --sim icarus --sim verilator --mutants

sim-long: setup
	$(VPY) -m cosim --sim verilator --long

# Yosys synthesis of every unit -> build/synth/area.{csv,md,png}; a unit whose Verilog and
# tools match its committed measurement (synth/measured/) takes it, the others are synthesized
synth: setup
	$(VPY) -m synth --out $(BUILD)/synth

# every unit synthesized from scratch (about an hour on 2 cores); RECORD=1 also rewrites
# synth/measured/ with the results and their provenance
synth-fresh: setup
	$(VPY) -m synth --out $(BUILD)/synth-fresh --measured ignore $(if $(RECORD),--record,)

# every evaluation figure of the system model -> build/sweep/figN.{csv,png}
sweep: setup
	$(VPY) -m sysmodel sweep --figure all --out $(BUILD)/sweep

# design-space sweep (GRID=dse/grids/full.yaml for the whole space; EXECUTOR=ray) -> build/dse/
GRID ?= dse/grids/small.yaml
EXECUTOR ?= local
dse: setup
	$(VPY) -m dse --grid $(GRID) --out $(BUILD)/dse --executor $(EXECUTOR)

# the grid on the local pool and on a local Ray instance: wall times, byte-for-byte equality
bench-dse: setup
	$(VPY) -m dse.bench --grid $(GRID) --out $(BUILD)/bench/dse.json

# accuracy study of the state formats -> build/study/
study: setup
	$(VPY) -m quant.study all --out $(BUILD)/study
	$(VPY) -m quant.study fused --out $(BUILD)/study/fused
	$(VPY) -m quant.study perplexity-all --out $(BUILD)/study/perplexity

# the main job: sim, synth, sweeps, study, benchmarks, then build/report/index.html
# (incremental: steps whose inputs did not change are skipped; FORCE=1 re-runs all)
demo: setup
	$(VPY) -m report.demo $(if $(FORCE),--force,)

report: setup
	$(VPY) -m report.build

clean:
	rm -rf $(BUILD) sim_build* .pytest_cache .hypothesis
