# Systolic: every entry point starts by making .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SIM    ?= verilator
BOARD  ?= icebreaker
WAVES  ?= 0
export SIM WAVES

.PHONY: setup train test sim unit lint bench lab robust bitstream area flash clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,models,cluster]'
	touch $@

# The main job: train the digits MLP (64-32-10, ReLU, softmax) on the virtual board, with the
# float32 reference for comparison, plots in build/plots and a checkpoint in build/digits.npz.
train: setup
	$(BIN)/systolic train --plot build/plots --checkpoint build/digits.npz

# Everything: numerics and model unit tests, then the cocotb suite, on every core (JOBS=1: in turn).
JOBS ?= auto
test: setup
	$(BIN)/python -m pytest -q -n $(JOBS) --dist worksteal --durations=15

# The cocotb suite only (SIM=icarus for the second simulator, WAVES=1 for waveforms),
# then the efficiency table of the GEMMs it ran.
sim: setup
	@if [ "$(SIM)" = icarus ] && ! command -v iverilog >/dev/null; then \
	  echo "SIM=icarus needs Icarus Verilog (iverilog) on PATH: install it, or use SIM=verilator"; \
	  exit 1; fi
	$(BIN)/python -m pytest -q -n $(JOBS) --dist worksteal -m sim
	$(BIN)/python -m sim.efficiency

unit: setup
	$(BIN)/python -m pytest -q -m "not sim"

# Every target of the brief measured side by side: table on stdout, docs/benchmarks.md,
# docs/bench/*.png, bench/results.json (about 3 min once the simulators are built).
bench: setup
	$(BIN)/python -m bench

# The robustness grid: minibatch, learning rate, activation and depth, each run on the golden model
# beside float32 for 100 epochs (about 45 min on 2 cores): docs/robustness.md, bench/robust.json.
robust: setup
	$(BIN)/python -m bench.robust

# The lab: how a neural net is parallelised on a chip, measured on the virtual board and the golden
# model: docs/lab.md, docs/lab/*.png, lab/results.json, simulator output in build/lab/.
lab: setup
	$(BIN)/python -m lab

$(VENV)/.boards: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[boards]'
	touch $@

# A bitstream for BOARD (icebreaker, ulx3s-12f/-25f/-45f/-85f) with the YoWASP tools from PyPI;
# prints LUT/DSP/BRAM/SPRAM use and fmax, and fails when the design does not fit or misses timing.
bitstream: $(VENV)/.boards
	$(BIN)/python -m hw.boards.build $(BOARD)

# What each block of BOARD's device takes (logic cells, DSPs, block RAMs), without placing it.
area: $(VENV)/.boards
	$(BIN)/python -m hw.boards.area $(BOARD)

# Load build/boards/BOARD's bitstream with openFPGALoader (FLASH=1 writes the SPI flash instead).
flash: $(VENV)/.boards
	$(BIN)/python -m hw.boards.flash $(BOARD) $(if $(filter 1,$(FLASH)),--flash)

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf build .pytest_cache
