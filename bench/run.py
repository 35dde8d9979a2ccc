"""``python -m bench``: measure every target of the brief that exists today and write the table.

Order of work (about 5–10 minutes on 2 cores once the simulators are built; building them the first
time adds a few minutes):

1. the array and GEMM-instruction efficiency testbenches on every distinct board array (2×4, 4×4,
   8×8; cocotb, Verilator): a K sweep, and the GEMMs of the digits training step one by one;
2. the virtual board with the default device (4×4): a training step at minibatch 1, 8 and 32, each
   profiled instruction by instruction, link bytes of training and inference, then one whole
   ``systolic train`` run (seed 0) for the epoch time, the simulation speed and the identity check;
3. the virtual board with a deeper 4×4 device for minibatch 128, and each board's own device (its
   array, vector lanes and multipliers) at minibatch 32, for the boards the digits MLP fits;
4. the golden model (``--target model``, bit-identical): the same run for the epoch-time ratio, and
   three seeds against the float32 reference for accuracy;
5. the bitstream manifest, if the boards have been built.

The table goes to standard output and, with its plots, to ``docs/benchmarks.md`` and ``docs/bench/``; the
raw figures to ``bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench import gemms, measure
from bench.table import MISSING, Row, markdown, text, verdict
from host.compiler import Network, compile_network
from host.data import digits
from host.driver import Driver
from host.train import Trainer
from hw.config import DeviceConfig

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
DOCS, PLOTS = ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "bench"
RESULTS = ROOT / "bench" / "results.json"
LOG = ROOT / "build" / "bench.log"
BATCHES = (1, 8, 32, 128)
DEEP = DeviceConfig(depth=8192)
"""The default device with buffers deep enough for minibatch 128 (the default holds up to 32)."""
BOARD_BATCH = 32
JITTER = 0.001
"""How far a training step's cycles may stray from its profile (a share of them)."""
CMD = "python -m bench"


@dataclass(frozen=True)
class BoardModel:
    """Modelled training throughput on one board (see :func:`_board_models`)."""

    name: str
    rows: int
    cols: int
    clk_hz: int
    baud: int
    fits: str
    link_s: float = math.nan
    compute_s: float = math.nan

    @property
    def samples_per_s(self) -> float:
        return BOARD_BATCH / (self.link_s + self.compute_s)

    @property
    def line_use(self) -> float:
        return self.link_s / (self.link_s + self.compute_s)


def _boards() -> list[tuple[str, DeviceConfig]]:
    """The boards of ``hw.boards`` (iCEBreaker at 12 MHz, ULX3S from its 25 MHz oscillator)."""
    from hw.boards import BOARDS

    return [(name, b.config) for name, b in BOARDS.items()]


def _board_arrays() -> str:
    """Each distinct array of ``hw.boards`` and its boards, e.g. ``2×4 (icebreaker)``."""
    arrays: dict[tuple[int, int], list[str]] = {}
    for name, config in _boards():
        arrays.setdefault((config.rows, config.cols), []).append(name)
    return ", ".join(f"{r}×{c} ({', '.join(names)})" for (r, c), names in arrays.items())


def _device(name: str, config: DeviceConfig) -> str:
    """How the step tables name a device: ``4×4``, or a board and how its units are built."""
    parts = [f"{config.rows}×{config.cols}"]
    if config.vector_lanes not in (None, config.cols):
        parts.append(f"{config.vector_lanes} vector lane{'s' * (config.vector_lanes != 1)}")
    if config.serial_multipliers:
        parts.append("serial multipliers")
    described = ", ".join(parts)
    return f"{name}: {described}" if name else described


def _fitting_boards() -> dict[str, DeviceConfig | str]:
    """Each board's device, or why the digits MLP at minibatch :data:`BOARD_BATCH` does not fit it."""
    out: dict[str, DeviceConfig | str] = {}
    for name, config in _boards():
        try:
            compile_network(Network(measure.DIGITS, batch=BOARD_BATCH), config)
        except ValueError as error:
            out[name] = f"the digits MLP at minibatch {BOARD_BATCH} does not fit: {str(error).split(':')[0]}"
        else:
            out[name] = config
    return out


def _board_models(fitting: dict[str, DeviceConfig | str], profiles: dict[str, measure.StepProfile],
                  bytes_per_step: float) -> list[BoardModel]:
    """Samples/s of a training step on each board from its clock, baud and the measured cycles
    (``fitting`` from :func:`_fitting_boards`, ``profiles`` of the boards that fit).

    The link protocol is request–reply: the ``WRITE`` frames, the ``RUN`` and every reply follow one
    another, and the array computes only between the ``RUN`` frame and its reply. So a step takes
    ``bytes · 10 / baud`` on the line plus ``cycles / f_clk`` on the array (USB latency excluded), and
    the line is in use for the first share of it.
    """
    out = []
    for name, config in _boards():
        if name not in profiles:
            out.append(BoardModel(name, config.rows, config.cols, config.clk_hz, config.baud, fitting[name]))
            continue
        profile = profiles[name]
        line_s = bytes_per_step * measure.UART_BITS / config.baud
        out.append(BoardModel(name, config.rows, config.cols, config.clk_hz, config.baud, "", line_s,
                              profile.cycles / config.clk_hz))
    return out


def _steps(driver: Driver, batches: tuple[int, ...], train, test) -> tuple[
        dict[int, measure.StepProfile], dict]:
    """Profile and link bytes of the training step at each minibatch size on one device.

    A step's cycles do not depend on the data, which the profile (:func:`measure.profile_step`)
    relies on; with serial multipliers they vary by a few cycles with where the multipliers' cycle
    counter stands when an instruction starts, which :data:`JITTER` bounds.
    """
    profiles, links = {}, {}
    for m in batches:
        trainer = Trainer(driver, Network(measure.DIGITS, batch=m), seed=0)
        trainer.load(trainer.initial_weights())
        links[m], cycles = measure.link_bytes(driver, trainer, train, test, steps=4)
        profile = measure.profile_step(driver, trainer.program)
        if max(abs(c - profile.cycles) for c in cycles) > JITTER * profile.cycles:
            raise RuntimeError(f"minibatch {m}: training steps took {cycles} cycles, the profiled step "
                               f"{profile.cycles}: cycle counts depend on the data")
        profiles[m] = profile
    return profiles, links


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _size(e: dict) -> tuple[int, int]:
    return e["rows"], e["cols"]


def _shape(e: dict) -> str:
    return f"{e['m']}×{e['k']}×{e['n']} on {e['rows']}×{e['cols']}"


def _efficiency_row(eff: list[dict]) -> Row:
    """The array efficiency target over the shapes it applies to: the worst of each array and level on
    filled tiles, and every shape whose part-empty tiles leave it short."""
    scope = [e for e in eff if gemms.applies(e)]
    full = [e for e in scope if gemms.filled(e)]
    parts = []
    for size in sorted({_size(e) for e in full}, key=lambda s: (s[0] * s[1], s)):
        worst = [f"{_pct(min(e['efficiency'] for e in full if _size(e) == size and e['level'] == level))} "
                 f"({level})" for level in ("array", "instruction")
                 if any(_size(e) == size and e["level"] == level for e in full)]
        parts.append(f"{size[0]}×{size[1]} ≥ " + ", ≥ ".join(worst))
    measured = "tiles filled (R | M, C | N): " + "; ".join(parts)
    short = [e for e in scope if not gemms.filled(e) and e["efficiency"] < gemms.TARGET]
    if short:
        measured += ("; part-empty tiles below target: " + ", ".join(
            f"{_shape(e)} {_pct(e['efficiency'])} ({_pct(_occupancy(e))} of cells busy)" for e in short))
    ok = all(e["efficiency"] >= gemms.TARGET for e in scope)
    held = all(e["efficiency"] >= gemms.TARGET for e in full)
    return Row("array efficiency, GEMMs with K ≥ 4·max(R,C), N ≥ 4·C", "≥ 90 % of R·C MACs/cycle", measured,
               verdict(ok) if ok or not held else "SHORT (filled tiles pass)",
               f"{CMD} (sim.tb_array efficiency, sim.tb_controller gemm_efficiency)")


def _occupancy(e: dict) -> float:
    return gemms.occupancy(e["m"], e["n"], e["rows"], e["cols"])


def _rows(r: dict, boards: list[BoardModel]) -> list[Row]:
    """The table, in the order of the brief's "Numbers we aim at"."""
    rows = [_efficiency_row(r["efficiency"])]
    for p in r["steps"]:
        rows.append(Row(f"training step, minibatch {p['batch']} ({p['device']})",
                        "(array busy; no target)",
                        f"{p['cycles']} cycles, {p['cycles'] / p['batch']:.0f}/sample, "
                        f"array busy {_pct(p['gemm_ideal'] / p['cycles'])}", verdict(None),
                        f"{CMD} (virtual board, RunReply.cycles)"))
    link = r["link"][str(BOARD_BATCH)]
    data_bytes = 2 * (measure.DIGITS[0] + measure.DIGITS[-1])
    ratio = (link["train_in"] + link["train_out"]) / data_bytes
    rows.append(Row(f"training traffic per sample, minibatch {BOARD_BATCH}", "≤ 1.1 × input + label bytes",
                    f"{link['train_in']:.1f} in + {link['train_out']:.1f} out = {ratio:.3f} × {data_bytes} B",
                    verdict(ratio <= 1.1), f"{CMD} (Driver byte counters)"))
    rows.append(Row(f"inference traffic per sample, minibatch {BOARD_BATCH}", "(no target)",
                    f"{link['infer_in']:.1f} in + {link['infer_out']:.1f} out vs "
                    f"{2 * measure.DIGITS[0]} B of inputs", verdict(None), f"{CMD} (Driver byte counters)"))
    for b in boards:
        head = f"link use while training, {b.name} ({b.rows}×{b.cols}, {b.clk_hz / 1e6:g} MHz, " \
               f"{b.baud / 1e6:g} Mbaud)"
        if b.fits:
            rows.append(Row(head, "≥ 90 % of line rate, link-bound", f"not modelled: {b.fits}",
                            MISSING, "hw.boards + host.compiler"))
            continue
        bound = "link-bound" if b.link_s >= b.compute_s else "compute-bound"
        rows.append(Row(head, "≥ 90 % of line rate, link-bound",
                        f"{_pct(b.line_use)}, {bound}, {b.samples_per_s:,.0f} samples/s modelled",
                        verdict(b.line_use >= 0.9),
                        f"{CMD} (bytes × 10 / baud vs cycles / clock)"))
    acc = r["accuracy"]
    first = acc["runs"][0]
    rows.append(Row("digits MLP on the device (seed 0)", "≥ 95 %, within 1.5 points of float32",
                    f"{_pct(first['device'])} vs float32 {_pct(first['float32'])}",
                    verdict(first["device"] >= 0.95 and first["float32"] - first["device"] <= 0.015),
                    f"systolic train --target model --seed 0 (epochs {acc['epochs']})"))
    same = r["identity"]
    rows.append(Row("RTL ≡ golden model over a whole training run", "bit-exact",
                    f"{'identical' if same['weights'] else 'DIFFERENT'} weights after {acc['epochs']} "
                    f"epochs; test accuracy {_pct(same['virtual'])} (virtual board) vs "
                    f"{_pct(same['model'])} (model)",
                    verdict(same["weights"] and same["virtual"] == same["model"]),
                    f"{CMD} (seed 0 on both targets); every step: cocotb scoreboards in make test"))
    vb, mt = r["epoch"]["virtual"], r["epoch"]["model"]
    rows.append(Row("one digits epoch on the virtual board (incl. test inference)", "≤ 15 s on 2 cores",
                    f"{vb:.2f} s; model target {mt:.2f} s ({vb / mt:.1f}× faster)",
                    verdict(vb <= 15), f"{CMD} (median epoch of the seed-0 run)"))
    rows.append(Row("virtual board simulation speed (whole SoC)", "≥ 100 k cycles/s on 2 cores",
                    f"{r['virtual']['cycles_per_second'] / 1e3:.0f} k cycles/s",
                    verdict(r["virtual"]["cycles_per_second"] >= 100e3), f"{CMD} (VirtualBoard.stats)"))
    gap = acc["mean_float32"] - acc["mean_device"]
    rows.append(Row(f"digits MLP on device vs float32, mean of {len(acc['runs'])} seeds",
                    "within 0.5 points (floor 1.5)",
                    f"{_pct(acc['mean_device'])} vs {_pct(acc['mean_float32'])}: {100 * gap:+.2f} points",
                    verdict(True) if gap <= 0.005 else "SHORT (floor met)" if gap <= 0.015
                    else "SHORT (floor missed)",
                    f"{CMD} (--target model, seeds {', '.join(str(x['seed']) for x in acc['runs'])})"))
    rows.append(Row("make test from a fresh clone", "≤ 20 min on 2 cores", "measured by CI", MISSING, ""))
    rows += _board_rows(r["manifest"])
    return rows


def _board_rows(manifest: dict | None) -> list[Row]:
    """The brief's two board targets, judged on the bitstreams recorded in ``bitstreams/``."""
    targets = [("iCE40 UP5K", "icebreaker", "all 8 DSPs in the array, timing met", _ice40_ok),
               ("ECP5-85F", "ulx3s-85f", "≥ 64 MAC cells in DSPs, ≥ 100 MHz", _ecp5_85f_ok)]
    rows = []
    for what, name, target, judge in targets:
        entry = (manifest or {}).get(name)
        if entry is None:
            rows.append(Row(what, target, "no bitstream recorded (see docs/boards.md)", MISSING,
                            f"make bitstream BOARD={name}"))
            continue
        rows.append(Row(what, target, _board_summary(entry), verdict(judge(entry)),
                        f"make bitstream BOARD={name} (bitstreams/manifest.json)"))
    return rows


def _resources(entry: dict) -> dict[str, dict]:
    return {r["name"]: r for r in entry["resources"]}


def _fmax(entry: dict) -> float:
    return min(clock["achieved"] for clock in entry["fmax"].values())


def _board_summary(entry: dict) -> str:
    used = _resources(entry)
    cells = ", ".join(f"{r['used']:,}/{r['available']:,} {name}" for name, r in used.items() if name != "IO")
    return (f"{entry['rows']}×{entry['cols']} array ({entry['rows'] * entry['cols']} MAC cells), {cells}; "
            f"fmax {_fmax(entry):.1f} MHz, clocked at {entry['clk_hz'] / 1e6:g} MHz")


def _ice40_ok(entry: dict) -> bool:
    cells = entry["rows"] * entry["cols"]
    return cells == 8 and _resources(entry)["DSP"]["used"] == 8 and _fmax(entry) >= entry["clk_hz"] / 1e6


def _ecp5_85f_ok(entry: dict) -> bool:
    return entry["rows"] * entry["cols"] >= 64 and _fmax(entry) >= 100


def _manifest_table(manifest: dict | None) -> str:
    """Markdown table of every recorded bitstream."""
    if not manifest:
        return "No bitstream is recorded in `bitstreams/manifest.json` yet."
    names = list(dict.fromkeys(n for e in manifest.values() for n in _resources(e) if n != "IO"))
    lines = ["| board | array | clock | baud | " + " | ".join(names) + " | fmax | build | commit |",
             "| --- | --- | --- | --- |" + " ---: |" * len(names) + " ---: | ---: | --- |"]
    for name, e in manifest.items():
        used = _resources(e)
        cells = " | ".join(f"{used[n]['used']:,} / {used[n]['available']:,}" if n in used else "—"
                           for n in names)
        lines.append(f"| {name} | {e['rows']}×{e['cols']} | {e['clk_hz'] / 1e6:g} MHz | "
                     f"{e['baud'] / 1e6:g} Mbaud | {cells} | {_fmax(e):.1f} MHz | "
                     f"{e['build_seconds'] / 60:.0f} min | `{e['commit'][:10]}` |")
    return "\n".join(lines)


def _plots(r: dict) -> list[str]:
    """Efficiency against K, and where the training step's cycles go; returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    _efficiency_plot(plt, r["efficiency"])

    steps = r["steps"]
    kinds = list(dict.fromkeys(k for p in steps for k in p["kinds"]))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bottom = np.zeros(len(steps))
    labels = [f"m={p['batch']}\n{p['device'].split(':')[0]}" for p in steps]  # a board's name
    for kind in kinds:
        share = np.array([100 * p["kinds"].get(kind, 0) / p["cycles"] for p in steps])
        ax.bar(labels, share, bottom=bottom, label=kind)
        bottom += share
    ax.plot(labels, [100 * p["gemm_ideal"] / p["cycles"] for p in steps], "kD", label="array busy")
    ax.set(ylabel="share of the training step's cycles (%)", ylim=(0, 100))
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    fig.savefig(PLOTS / "step.png", dpi=120)
    plt.close(fig)
    return ["efficiency.png", "step.png"]


def _efficiency_plot(plt, eff: list[dict]) -> None:
    """Efficiency against K, one panel per array: the array alone and the instruction sweep (columns
    filled), and the digits GEMMs as instructions."""
    sizes = sorted({_size(e) for e in eff}, key=lambda s: (s[0] * s[1], s))
    fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 4), sharey=True, squeeze=False)
    markers = dict(zip(dict.fromkeys(e["kind"] for e in eff if e.get("family") == "digits"), "^vD",
                       strict=False))
    for ax, (r, c) in zip(axes[0], sizes, strict=True):
        mine = [e for e in eff if _size(e) == (r, c)]
        array = [e for e in mine if e["level"] == "array"]
        array = [e for e in array if e["n"] == max(x["n"] for x in array)]
        ax.plot([e["k"] for e in array], [100 * e["efficiency"] for e in array], "o-",
                label=f"array alone, M = 2·R, N = {array[0]['n']}")
        sweep = [e for e in mine if e.get("family") == "sweep"]
        ax.plot([e["k"] for e in sweep], [100 * e["efficiency"] for e in sweep], "s--",
                label="instruction, M = 4·R, N = 8·C")
        for kind, marker in markers.items():
            pts = [e for e in mine if e.get("kind") == kind and e.get("family") == "digits"]
            ax.plot([e["k"] for e in pts], [100 * e["efficiency"] for e in pts], marker, linestyle="",
                    label=f"digits {kind.removeprefix('GEMM ')}")
        ax.axhline(100 * gemms.TARGET, color="grey", linestyle=":", label="target 90 %")
        ax.axvline(4 * max(r, c), color="grey", linestyle="-.", label="K = 4·max(R, C)")
        ax.set(title=f"{r}×{c} array", xlabel="K (steps per tile)", ylim=(0, 105))
        ax.set_xscale("log", base=2)
    axes[0][0].set_ylabel("efficiency (% of R·C MACs/cycle)")
    fig.legend(*axes[0][-1].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    fig.savefig(PLOTS / "efficiency.png", dpi=120)
    plt.close(fig)


def _tile_floor(eff: list[dict]) -> str:
    """Cycles per output tile of the ``K = 1`` sweep GEMM on each array: the cost of a tile at any
    shorter ``K`` than this."""
    ones = [e for e in eff if e.get("family") == "sweep" and e["k"] == 1]
    return ", ".join(f"{e['rows']}×{e['cols']}: {e['cycles'] / gemms.tiles(e['m'], e['n'], *_size(e)):.1f}"
                     for e in sorted(ones, key=lambda e: e["rows"] * e["cols"]))


def _digits_table(eff: list[dict]) -> str:
    """Markdown table of the digits GEMMs run one by one as instructions, each against the target."""
    lines = ["| array | GEMM | M × K × N | cycles | ideal | efficiency | cells busy | in busy cells "
             "| target |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for e in sorted((e for e in eff if e.get("family") == "digits"), key=lambda e: e["rows"] * e["cols"]):
        k_min = 4 * max(e["rows"], e["cols"])
        target = (verdict(e["efficiency"] >= gemms.TARGET) if gemms.applies(e)
                  else f"(K < {k_min})" if e["k"] < k_min else f"(N < {4 * e['cols']})")
        lines.append(f"| {e['rows']}×{e['cols']} | {e['kind']} | {e['m']} × {e['k']} × {e['n']} | "
                     f"{e['cycles']} | {e['ideal']:.0f} | {_pct(e['efficiency'])} | {_pct(_occupancy(e))} | "
                     f"{_pct(e['efficiency'] / _occupancy(e))} | {target} |")
    return "\n".join(lines)


def _breakdown(steps: list[dict]) -> str:
    """Markdown table of cycles per instruction kind for each profiled step."""
    kinds = list(dict.fromkeys(k for p in steps for k in p["kinds"]))
    head = [f"m = {p['batch']} ({p['device']})" for p in steps]
    lines = ["| cycles | " + " | ".join(head) + " |", "| --- |" + " ---: |" * len(steps)]
    for kind in kinds:
        cells = (f"{p['kinds'].get(kind, 0)} ({_pct(p['kinds'].get(kind, 0) / p['cycles'])})" for p in steps)
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines.append("| **step** | " + " | ".join(f"**{p['cycles']}**" for p in steps) + " |")
    lines.append("| GEMM MACs / (R·C) | " + " | ".join(f"{p['gemm_ideal']:.0f}" for p in steps) + " |")
    return "\n".join(lines)


def _gemms(steps: list[dict]) -> str:
    lines = ["| device | m | GEMM | M × K × N | cycles | ideal | efficiency |",
             "| --- | ---: | --- | --- | ---: | ---: | ---: |"]
    for p in steps:
        for g in p["gemms"]:
            lines.append(f"| {p['device']} | {p['batch']} | {g['kind']} | "
                         f"{g['m']} × {g['k']} × {g['n']} | {g['cycles']} | {g['ideal']:.0f} | "
                         f"{_pct(g['ideal'] / g['cycles'])} |")
    return "\n".join(lines)


def _doc(rows: list[Row], r: dict, plots: list[str]) -> str:
    boards = "\n".join(
        f"| {b['name']} | {b['rows']}×{b['cols']} | {b['clk_hz'] / 1e6:g} MHz | {b['baud'] / 1e6:g} Mbaud | "
        + (f"{1e3 * b['link_s']:.2f} ms | {1e3 * b['compute_s']:.3f} ms | {b['samples_per_s']:,.0f} |"
           if not b["fits"] else f"— | — | {b['fits']} |")
        for b in r["boards"])
    return f"""# Benchmarks

Written by `make bench` (`python -m bench`, {r['seconds'] / 60:.1f} min on this machine); the raw figures
are in `bench/results.json`. Each row is one target of the brief's "Numbers we aim at"; the last column
is the command that measured it.

{markdown(rows)}

## Array efficiency

Every distinct array of `hw/boards` is measured: {_board_arrays()}.
The array testbench streams each GEMM shape with no stalls (`M = 2·R`, `N` in 1, 7, 64). The
controller testbench runs GEMM instructions one at a time on a controller of the board's array with
buffers just deep enough and a vector unit of every lane (`bench/gemms.py`; a board's own vector lanes
show in its training step below): operands read from the buffers, results written back,
fetch and decode included, cycles less those of the same program with the GEMM replaced by a `NOP`,
every buffer then compared word for word with the golden model. Two families: a sweep of `K` with
`M = 4·R`, `N = 8·C`, and the GEMMs of the digits training step (64-32-10, minibatch {gemms.BATCH})
taken from the compiled program with their transposed reads, epilogues and buffer layout (each
buffer's regions moved down to address 0).

The target applies to `K ≥ 4·max(R, C)` and `N ≥ 4·C`, as in `sim/efficiency.py`: an output tile
costs `K` cycles only once `K` is past the cycles its fill and drain take. Cycles per tile of the
sweep at `K = 1`: {_tile_floor(r['efficiency'])}; a tile of any shorter `K` than that costs as
much. Within that scope an output tile that is part empty (`M` not a multiple of `R`, or `N` of `C`)
leaves cells idle that the `R·C` bound counts: "cells busy" is the share of the array the tiles fill,
and "in busy cells" the efficiency over those cells alone.

![efficiency vs K](bench/{plots[0]})

{_digits_table(r['efficiency'])}

## The training step

RTL cycles of the `train` entry of the digits MLP (64-32-10, ReLU, softmax) on the virtual board.
Where the cycles go is measured by running every prefix of the entry: an `END` replaces instruction
`i`, the entry runs, and instruction `i` costs the difference between consecutive prefixes (its own
cycles plus whatever it does not overlap with its predecessor); `RUN + END` is the fixed cost of an
empty run. Cycle counts do not depend on the data (checked: every training step of a size takes the
same count). The array is busy for `GEMM MACs / (R·C)` of the step; the rest is GEMM tiles not
filling the array (`M` or `N` not a multiple of the array edge, short `K` with a fixed drain per
tile), the vector and softmax units, and control. Link time is not in these cycles: see below.

{_breakdown(r['steps'])}

![step](bench/{plots[1]})

{_gemms(r['steps'])}

## Link and boards

Bytes per sample are counted by the driver at minibatch {BOARD_BATCH} (frames, delimiters, replies). The
protocol is request–reply, so a training step on a board takes `bytes · 10 / baud` on the line plus
`cycles / f_clk` on the array; link use is the line's share of that. USB latency of the FTDI bridge
(about 1 ms per turnaround by default) is not modelled. Clocks and bauds are those of `hw/boards`.

| board | array | clock | baud | line per step | array per step | samples/s |
| --- | --- | --- | --- | ---: | ---: | ---: |
{boards}

The bitstreams of `bitstreams/` (`make bitstream BOARD=…`, recorded by `python -m hw.boards.manifest
record BOARD`; fmax is nextpnr's after routing):

{_manifest_table(r['manifest'])}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=CMD, description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs of each training run (default 20)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the mean accuracy (default 3)")
    args = parser.parse_args(argv)
    began = time.monotonic()
    try:
        with measure.quiet(LOG):
            r, boards = _measure(args)
    except Exception:
        print(f"make bench failed; the simulators' output is in {LOG.relative_to(ROOT)}", file=sys.stderr)
        raise
    r["seconds"] = time.monotonic() - began
    rows = _rows(r, boards)
    print(text(rows))
    r["table"] = [row.as_dict() for row in rows]
    RESULTS.write_text(json.dumps(r, indent=1, default=float) + "\n")
    DOCS.write_text(_doc(rows, r, _plots(r)))
    print(f"\n{DOCS.relative_to(ROOT)}, {PLOTS.relative_to(ROOT)}/, {RESULTS.relative_to(ROOT)} written "
          f"in {r['seconds'] / 60:.1f} min; simulator output in {LOG.relative_to(ROOT)}")
    return 0


def _measure(args) -> tuple[dict, list[BoardModel]]:
    """Every measurement, in the order of the module docstring."""
    train, test = digits(seed=0)
    r: dict = {"efficiency": measure.array_efficiency()}

    stats: dict = {}
    default = _device("", DeviceConfig())
    with measure.virtual(DeviceConfig(), stats) as driver:
        profiles, links = _steps(driver, tuple(m for m in BATCHES if m <= 32), train, test)
        virtual_run = measure.train_run(driver, Network(measure.DIGITS), train, test, 0, args.epochs)
    r["virtual"] = stats
    with measure.virtual(DEEP, {}) as driver:
        more, _ = _steps(driver, tuple(m for m in BATCHES if m > 32), train, test)
    steps = [{**asdict(p), "device": default} for p in (*profiles.values(), *more.values())]
    board_profiles: dict[str, measure.StepProfile] = {}
    fitting = _fitting_boards()
    for name, config in fitting.items():
        if isinstance(config, DeviceConfig):
            with measure.virtual(config, {}) as driver:
                board_profiles[name] = _steps(driver, (BOARD_BATCH,), train, test)[0][BOARD_BATCH]
            steps.append({**asdict(board_profiles[name]), "device": _device(name, config)})
    r["steps"] = steps
    r["link"] = {str(m): asdict(v) for m, v in links.items()}
    link = links[BOARD_BATCH]
    boards = _board_models(fitting, board_profiles, (link.train_in + link.train_out) * BOARD_BATCH)
    r["boards"] = [{**asdict(b), "samples_per_s": b.samples_per_s, "line_use": b.line_use} for b in boards]

    runs = []
    for seed in range(args.seeds):
        train_s, test_s = digits(seed=seed)
        with Driver.open("model", config=DeviceConfig()) as driver:
            run = measure.train_run(driver, Network(measure.DIGITS), train_s, test_s, seed, args.epochs)
        float32 = measure.reference_accuracy(Network(measure.DIGITS), run.start, train_s, test_s, seed,
                                             args.epochs)
        runs.append((run, float32))
    model_run = runs[0][0]
    r["accuracy"] = {"epochs": args.epochs,
                     "runs": [{"seed": run.seed, "device": run.accuracy, "float32": f} for run, f in runs],
                     "mean_device": float(np.mean([run.accuracy for run, _ in runs])),
                     "mean_float32": float(np.mean([f for _, f in runs]))}
    r["identity"] = {"weights": all(np.array_equal(a, b) for a, b in
                                    zip(virtual_run.weights, model_run.weights, strict=True)),
                     "virtual": virtual_run.accuracy, "model": model_run.accuracy}
    r["epoch"] = {"virtual": float(np.median(virtual_run.epoch_seconds)),
                  "model": float(np.median(model_run.epoch_seconds))}
    manifest = ROOT / "bitstreams" / "manifest.json"
    r["manifest"] = json.loads(manifest.read_text()) if manifest.exists() else None
    return r, boards

