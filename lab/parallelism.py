"""Parallelism: cycles of a digits training step as the array and the minibatch grow.

The digits MLP (64-32-10, ReLU, softmax) is compiled for square arrays of 1×1 to 8×8 cells, each
device with buffers deep enough for the largest minibatch, and one training step is run and
profiled on the virtual board at every minibatch of :data:`BATCHES`: ``RunReply.cycles`` of the
``train`` entry, split by instruction with :func:`bench.measure.profile_step`, and checked against
real training steps on digits minibatches (cycle counts do not depend on the data). The driver's
byte counters give the link traffic of those steps.
"""

from __future__ import annotations

import math
import textwrap
import time
from dataclasses import asdict
from pathlib import Path

from bench.measure import DIGITS, UART_BITS, gemm_kind, profile_step, train_steps, virtual
from host.compiler import Network, compile_network
from host.data import Dataset, digits
from host.driver import Driver
from host.train import Trainer
from hw.config import DeviceConfig
from lab.plots import figure, save

__all__ = ["TITLE", "ARRAYS", "BATCHES", "BATCH", "device", "measure", "render", "index", "per_sample",
           "speedups", "tile_fill", "drain_cap", "share", "perfect_gemms", "settled", "link_table"]

TITLE = "Parallelism: what a bigger array and a bigger minibatch buy"
ARRAYS = ((1, 1), (2, 2), (4, 4), (8, 8))
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
BATCH = 32
"""The minibatch of the array sweep (that of ``systolic train``)."""
STEPS = 2
"""Real training steps per (array, minibatch), to check the profiled cycles and count link bytes."""
CMD = "python -m lab --only parallelism"
WIDTH = 100
"""Column at which the prose is wrapped."""
FORWARD, BACKWARD, UPDATE = gemm_kind(False, False), gemm_kind(True, False), gemm_kind(False, True)
VECTOR_KINDS = ("VEC", "SOFTMAX", "ARGMAX", "LOSS")
"""The instructions of the vector and softmax units."""

Step = dict
"""One profiled step: :class:`bench.measure.StepProfile` fields plus ``bytes_in``, ``bytes_out``
(link bytes per sample each way)."""


# -- measuring --------------------------------------------------------------------------------------


def device(rows: int, cols: int, batch: int = max(BATCHES)) -> DeviceConfig:
    """An ``rows × cols`` device with the shallowest power-of-two buffers the digits MLP at ``batch`` fits.

    Raises
    ------
    ValueError
        The compiler's error, if no depth up to 2¹⁶ words per bank fits.
    """
    for shift in range(10, 17):
        config = DeviceConfig(rows=rows, cols=cols, depth=1 << shift)
        try:
            compile_network(Network(DIGITS, batch=batch), config)
        except ValueError as error:
            last = error
            continue
        return config
    raise last


def _step(driver: Driver, batch: int, train: Dataset) -> Step:
    """Profile of the training step at minibatch ``batch``, checked against :data:`STEPS` real ones."""
    trainer = Trainer(driver, Network(DIGITS, batch=batch), seed=0)
    trainer.load(trainer.initial_weights())
    sent, received, cycles = train_steps(driver, trainer, train, STEPS)
    profile = profile_step(driver, trainer.program)
    if set(cycles) != {profile.cycles}:
        raise RuntimeError(f"{profile.rows}×{profile.cols}, minibatch {batch}: training steps took {cycles} "
                           f"cycles, the profiled step {profile.cycles}: cycle counts depend on the data")
    return {**asdict(profile), "bytes_in": sent, "bytes_out": received}


def measure() -> dict:
    """Every (array, minibatch) step, each array's device and timings, and the boards' clocks.

    ``arrays`` holds per array its buffer ``depth``, ``start_seconds`` (starting the virtual board,
    its Verilator build included unless cached), ``wall_seconds`` and the ``simulator`` statistics.
    """
    from hw.boards import BOARDS

    train, _ = digits(seed=0)
    steps, arrays = [], []
    for rows, cols in ARRAYS:
        config = device(rows, cols)
        began = time.monotonic()
        stats: list = []
        with virtual(config, stats) as driver:
            started = time.monotonic() - began
            steps += [_step(driver, m, train) for m in BATCHES]
        arrays.append({"rows": rows, "cols": cols, "depth": config.depth, "start_seconds": started,
                       "wall_seconds": time.monotonic() - began, "simulator": asdict(stats[0])})
    boards = [{"name": name, "rows": b.config.rows, "cols": b.config.cols, "clk_hz": b.config.clk_hz,
               "baud": b.config.baud} for name, b in BOARDS.items()]
    return {"steps": steps, "arrays": arrays, "boards": boards}


# -- arithmetic on the figures ----------------------------------------------------------------------


def _key(step: Step) -> tuple[int, int, int]:
    return step["rows"], step["cols"], step["batch"]


def index(steps: list[Step]) -> dict[tuple[int, int, int], Step]:
    """The steps by ``(rows, cols, batch)``."""
    return {_key(s): s for s in steps}


def per_sample(step: Step) -> float:
    """Cycles per sample of a step."""
    return step["cycles"] / step["batch"]


def speedups(steps: list[Step]) -> dict[tuple[int, int, int], float]:
    """Speed-up per sample of each step against the 1×1 array at the same minibatch (where measured)."""
    at = index(steps)
    return {key: at[1, 1, key[2]]["cycles"] / s["cycles"] for key, s in at.items() if (1, 1, key[2]) in at}


def tile_fill(gemm: dict, rows: int, cols: int) -> float:
    """Share of the cells the GEMM's output tiles use: ``M`` rows over ``R``, ``N`` columns over ``C``."""
    return gemm["m"] / (math.ceil(gemm["m"] / rows) * rows) * gemm["n"] / (math.ceil(gemm["n"] / cols) * cols)


def drain_cap(gemm: dict, rows: int, cols: int) -> float:
    """Highest efficiency a tile of ``K`` steps reaches when the array drains one tile per ``2R + C + 1``
    cycles (``docs/architecture.md``)."""
    return min(1.0, gemm["k"] / (2 * rows + cols + 1))


def share(step: Step, kinds: tuple[str, ...]) -> float:
    """Fraction of the step's cycles spent in instructions of ``kinds``."""
    return sum(step["kinds"].get(k, 0) for k in kinds) / step["cycles"]


def perfect_gemms(step: Step) -> float:
    """Cycles of the step if every GEMM ran at ``R·C`` MACs per cycle and the rest took its measured
    cycles."""
    gemms = sum(g["cycles"] for g in step["gemms"])
    return step["cycles"] - gemms + step["gemm_ideal"]


def settled(steps: list[Step], rows: int, cols: int, within: float = 0.1) -> int:
    """The smallest minibatch from which the array's cycles per sample stay within ``within`` of
    those at its largest minibatch."""
    mine = sorted((s for s in steps if (s["rows"], s["cols"]) == (rows, cols)), key=lambda s: s["batch"])
    first = mine[-1]["batch"]
    for s in reversed(mine):
        if per_sample(s) > (1 + within) * per_sample(mine[-1]):
            break
        first = s["batch"]
    return first


def link_table(r: dict, batch: int = BATCH) -> list[dict]:
    """Per measured array and board clock: array and line time per sample at ``batch``.

    The protocol is request–reply, so a step takes ``bytes · 10 / baud`` on the line plus
    ``cycles / f_clk`` in the array. Each row has ``rows``, ``cols``, ``clk_hz``, ``baud``,
    ``boards`` (the boards with that clock and baud), ``array_s`` and ``line_s`` (seconds per sample).
    """
    clocks: dict[tuple[int, int], list[str]] = {}
    for b in r["boards"]:
        clocks.setdefault((b["clk_hz"], b["baud"]), []).append(b["name"])
    out = []
    for s in (s for s in r["steps"] if s["batch"] == batch):
        for (clk, baud), names in sorted(clocks.items()):
            out.append({"rows": s["rows"], "cols": s["cols"], "clk_hz": clk, "baud": baud, "boards": names,
                        "array_s": per_sample(s) / clk,
                        "line_s": (s["bytes_in"] + s["bytes_out"]) * UART_BITS / baud})
    return out


# -- tables --------------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _name(item: dict) -> str:
    """``R×C`` of a step or a :func:`link_table` row."""
    return f"{item['rows']}×{item['cols']}"


def _arrays(steps: list[Step]) -> list[tuple[int, int]]:
    return sorted({(s["rows"], s["cols"]) for s in steps}, key=lambda a: a[0] * a[1])


def _batches(steps: list[Step]) -> list[int]:
    return sorted({s["batch"] for s in steps})


def _at(steps: list[Step], batch: int) -> list[Step]:
    """The steps of one minibatch, smallest array first."""
    return sorted((s for s in steps if s["batch"] == batch), key=lambda s: s["rows"] * s["cols"])


def _gemm(step: Step, kind: str, m: int | None = None, k: int | None = None) -> dict:
    """The step's first GEMM of ``kind`` with ``M = m`` and ``K = k`` (either may be left open)."""
    return next(g for g in step["gemms"] if g["kind"] == kind and m in (None, g["m"]) and k in (None, g["k"]))


def _eff(gemm: dict) -> str:
    return _pct(gemm["ideal"] / gemm["cycles"])


def _table(head: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A Markdown table, the first ``left`` columns left-aligned and the others right-aligned."""
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * left + " ---: |" * (len(head) - left)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _array_table(steps: list[Step], batch: int) -> str:
    """Cycles, speed-up and array busy of every array at one minibatch."""
    up = speedups(steps)
    rows = []
    for s in _at(steps, batch):
        cells, gain = s["rows"] * s["cols"], up.get(_key(s), math.nan)
        rows.append([_name(s), str(cells), f"{s['cycles']:,}", f"{per_sample(s):,.0f}", f"{gain:.2f}×",
                     _pct(gain / cells), _pct(s["gemm_ideal"] / s["cycles"])])
    return _table(["array", "cells R·C", "cycles per step", "cycles per sample", "speed-up vs 1×1",
                   "of R·C", "array busy"], rows)


def _grid(steps: list[Step], cell) -> str:
    """A minibatch × array table of ``cell(step)`` (a dash where not measured)."""
    at, arrays = index(steps), _arrays(steps)
    rows = [[str(m), *(cell(at[r, c, m]) if (r, c, m) in at else "—" for r, c in arrays)]
            for m in _batches(steps)]
    return _table(["minibatch", *(f"{r}×{c}" for r, c in arrays)], rows)


def _kinds_table(steps: list[Step], batch: int) -> str:
    """Cycles per sample by instruction kind, and their share, for every array at one minibatch."""
    chosen = _at(steps, batch)
    kinds = list(dict.fromkeys(k for s in chosen for k in s["kinds"]))
    rows = [[kind, *(f"{s['kinds'].get(kind, 0) / batch:,.1f} ({_pct(s['kinds'].get(kind, 0) / s['cycles'])})"
                     for s in chosen)] for kind in kinds]
    rows.append(["**step**", *(f"**{per_sample(s):,.1f}**" for s in chosen)])
    return _table(["cycles per sample", *map(_name, chosen)], rows)


def _gemm_table(steps: list[Step], batch: int) -> str:
    """Every GEMM of the step at one minibatch on every array, against its tile fill and drain cap."""
    rows = [[_name(s), g["kind"], f"{g['m']} × {g['k']} × {g['n']}", f"{g['cycles']:,}", _eff(g),
             _pct(tile_fill(g, s["rows"], s["cols"])), _pct(drain_cap(g, s["rows"], s["cols"]))]
            for s in _at(steps, batch) for g in s["gemms"]]
    return _table(["array", "GEMM", "M × K × N", "cycles", "efficiency", "tile fill",
                   "drain cap K / (2R+C+1)"], rows, left=3)


def _link_md(r: dict) -> str:
    """Array and line time per sample at :data:`BATCH` for each measured array at each board clock."""
    own = {b["name"]: (b["rows"], b["cols"]) for b in r["boards"]}
    rows = []
    for x in link_table(r):
        step = x["line_s"] + x["array_s"]
        names = (f"**{n}**" if own[n] == (x["rows"], x["cols"]) else n for n in x["boards"])
        clock = f"{x['clk_hz'] / 1e6:g} MHz ({', '.join(names)})"
        rows.append([_name(x), clock, f"{x['baud'] / 1e6:g} M", f"{1e6 * x['array_s']:,.2f} µs",
                     f"{1e6 * x['line_s']:,.1f} µs", _pct(x["line_s"] / step), f"{1 / step:,.0f}",
                     "link" if x["line_s"] >= x["array_s"] else "array"])
    return _table(["array", "clock (boards)", "baud", "array per sample", "line per sample", "line's share",
                   "samples/s", "bound"], rows, left=2)


# -- plots ---------------------------------------------------------------------------------------------


def _plot_speedup(steps: list[Step], plots: Path) -> str:
    """Speed-up per sample against the number of cells, one line per minibatch, with the ideal R·C."""
    up, arrays = speedups(steps), _arrays(steps)
    cells = [r * c for r, c in arrays]
    fig, ax = figure()
    ax.plot(cells, cells, "k:", label="ideal: R·C")
    for m in (m for m in _batches(steps) if m in (1, 8, BATCH, max(BATCHES))):
        pts = [(r * c, up[r, c, m]) for r, c in arrays if (r, c, m) in up]
        ax.plot(*zip(*pts, strict=True), "o-", label=f"minibatch {m}")
    ax.set(xscale="log", yscale="log", xlabel="cells R·C (1×1, 2×2, 4×4, 8×8)",
           ylabel="speed-up per sample vs 1×1")
    ax.set_xticks(cells, [f"{r}×{c}" for r, c in arrays])
    ax.set_yticks(cells, [str(n) for n in cells])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return save(fig, plots / "speedup.png", CMD)


def _plot_per_sample(steps: list[Step], plots: Path) -> str:
    """Cycles per sample against the minibatch, one line per array."""
    at = index(steps)
    fig, ax = figure()
    for r, c in _arrays(steps):
        pts = [(m, per_sample(at[r, c, m])) for m in _batches(steps) if (r, c, m) in at]
        ax.plot(*zip(*pts, strict=True), "o-", label=f"{r}×{c} array")
    ax.set(xscale="log", yscale="log", xlabel="minibatch m", ylabel="cycles per sample")
    ax.set_xticks(_batches(steps), [str(m) for m in _batches(steps)])
    ax.legend(fontsize=8)
    return save(fig, plots / "per_sample.png", CMD)


def _plot_breakdown(steps: list[Step], plots: Path) -> str:
    """Share of the step's cycles by instruction kind, per array at the smallest, usual and largest
    minibatch, with the array-busy fraction."""
    at = index(steps)
    chosen = [at[r, c, m] for r, c in _arrays(steps) for m in sorted({1, BATCH, max(BATCHES)})
              if (r, c, m) in at]
    kinds = list(dict.fromkeys(k for s in chosen for k in s["kinds"]))
    labels = [f"{_name(s)}\nm={s['batch']}" for s in chosen]
    fig, ax = figure(width=9, height=4.5)
    bottom = [0.0] * len(chosen)
    for kind in kinds:
        part = [100 * s["kinds"].get(kind, 0) / s["cycles"] for s in chosen]
        ax.bar(labels, part, bottom=bottom, label=kind)
        bottom = [b + p for b, p in zip(bottom, part, strict=True)]
    ax.plot(labels, [100 * s["gemm_ideal"] / s["cycles"] for s in chosen], "kD", label="array busy")
    ax.set(ylabel="share of the training step's cycles (%)", ylim=(0, 100))
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    return save(fig, plots / "breakdown.png", CMD)


# -- prose -------------------------------------------------------------------------------------------


def _para(text: str, first: str = "", rest: str = "") -> str:
    """``text`` wrapped at :data:`WIDTH`, never between a number and its unit."""
    return textwrap.fill(text.replace(" %", "\u00a0%"), WIDTH, initial_indent=first, subsequent_indent=rest)


def _bullet(text: str) -> str:
    return _para(text, "- ", "  ")


def _series(items: list[str]) -> str:
    """``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _answer(r: dict) -> str:
    """The section's answer in four bullets, each quoting the tables below."""
    steps = r["steps"]
    chosen, at, up = _at(steps, BATCH), index(steps), speedups(steps)
    big = chosen[-1]
    gains = _series([f"{up[_key(s)]:.1f}× ({_name(s)})" for s in chosen[1:]])
    fills = _series([_pct(up[_key(s)] / (s["rows"] * s["cols"])) for s in chosen[1:]])
    lone = at[big["rows"], big["cols"], 1]
    rows = link_table(r)
    return "\n".join([
        _bullet(f"**Within a layer**, the `R × C` cells compute `R × C` outputs of a GEMM at once. At "
                f"minibatch {BATCH} a step runs {gains} faster per sample than on one cell: {fills} "
                f"of their numbers of cells."),
        _bullet(f"**Across the minibatch**, the samples are the columns the array streams: on "
                f"{_name(big)} a step of one sample takes {lone['cycles']:,} cycles, a step of {BATCH} "
                f"takes {per_sample(big):,.0f} per sample."),
        _bullet(f"**It stops scaling** where the network is smaller than the array: the output layer's "
                f"{DIGITS[-1]} rows and {DIGITS[-1]}-deep backward GEMM, minibatches narrower than the "
                f"array, and the vector and softmax units, which grow with `C` only "
                f"({_pct(share(big, VECTOR_KINDS))} of the {_name(big)} step)."),
        _bullet(f"**On a board the link sets the pace**: at 3 Mbaud a sample spends "
                f"{1e6 * min(x['line_s'] for x in rows):,.0f} µs on the line and at most "
                f"{1e6 * max(x['array_s'] for x in rows):,.0f} µs in the array of any measured size "
                f"and board clock."),
    ])


def _scaling(steps: list[Step]) -> str:
    """Why the speed-up falls short of ``R·C``, figure by figure (minibatch :data:`BATCH` unless stated)."""
    at, chosen = index(steps), _at(steps, BATCH)
    one, big = chosen[0], chosen[-1]
    classes = DIGITS[-1]
    names = _series([_name(s) for s in chosen])
    fills = _series([_pct(tile_fill(_gemm(s, FORWARD, m=classes), s["rows"], s["cols"])) for s in chosen])
    forward = _series([_eff(_gemm(s, FORWARD, m=classes)) for s in chosen])
    drains = _series([str(2 * s["rows"] + s["cols"] + 1) for s in chosen])
    backward = _series([_eff(_gemm(s, BACKWARD, k=classes)) for s in chosen])
    lone = _at(steps, 1)
    update = _series([_pct(share(s, (UPDATE,))) for s in lone])
    flat = [at[big["rows"], big["cols"], m]["cycles"] for m in _batches(steps)
            if m <= big["cols"] and (big["rows"], big["cols"], m) in at]
    settle = ", ".join(f"{r}×{c} from m = {settled(steps, r, c)}" for r, c in _arrays(steps))
    vec = [sum(s["kinds"].get(k, 0) for k in VECTOR_KINDS) for s in (one, big)]
    cells = big["rows"] * big["cols"] // (one["rows"] * one["cols"])
    bounds = ", ".join(f"{_name(s)} {one['cycles'] / perfect_gemms(s):.1f}× (of {s['rows'] * s['cols']})"
                       for s in chosen[1:])
    return "\n".join([
        _bullet(f"**Narrow layers leave rows idle.** Each cell owns one output of an `R × C` tile, and "
                f"the output layer has {classes} rows: the tiles of its forward GEMM fill {fills} of the "
                f"cells of {names} (tile fill: the share of the cells a GEMM's `M × N` outputs occupy "
                f"once rounded up to whole tiles), and the GEMM runs at {forward} efficiency."),
        _bullet(f"**Short GEMMs are drain-bound.** A tile of `K` steps costs `K` cycles plus a drain that "
                f"the next tile hides only if `K ≥ 2R + C + 1`. The output layer's backward GEMM `Wᵀ·dZ` "
                f"has `K = {classes}` (the classes), while hiding the drain takes `K ≥` {drains} on {names}: "
                f"the GEMM runs at {backward} efficiency. The update GEMM `dZ·Aᵀ` has `K = m`: at "
                f"minibatch 1 it is nearly all drain and takes {update} of the step on "
                f"{_series([_name(s) for s in lone])}."),
        _bullet(f"**Samples fill the columns.** The minibatch is the `N` of the forward GEMMs, spread "
                f"over the `C` columns, so a minibatch narrower than `C` leaves columns idle: the "
                f"{_name(big)} step costs {min(flat):,}–{max(flat):,} cycles for every m ≤ {big['cols']}. "
                f"Cycles per sample come within 10 % of those at minibatch {max(_batches(steps))} for "
                f"{settle}: a bigger array needs a bigger minibatch."),
        _bullet(f"**The vector and softmax units have `C` lanes, the array `R·C` cells.** VEC, SOFTMAX, "
                f"ARGMAX and LOSS take {vec[0]:,} cycles on {_name(one)} and {vec[1]:,} on {_name(big)}, "
                f"{vec[0] / vec[1]:.1f}× fewer for {cells}× the cells: {_pct(share(one, VECTOR_KINDS))} of "
                f"the step on {_name(one)}, {_pct(share(big, VECTOR_KINDS))} on {_name(big)}. With the "
                f"fixed cost of a step ({big['kinds'].get('RUN + END', 0)} cycles for `RUN` and `END`, "
                f"{big['kinds'].get('TENSOR', 0)} for loading tensor registers) this caps the speed-up even "
                f"if every GEMM ran at `R·C` MACs per cycle: {bounds}."),
    ])


def _link(r: dict) -> str:
    """Why a board is link-bound, from :func:`link_table`."""
    rows = link_table(r)
    slow = max(rows, key=lambda x: x["array_s"])
    fast = min(rows, key=lambda x: x["array_s"])
    line = min(x["line_s"] for x in rows)
    even = sorted((x for x in rows if _name(x) == _name(slow)), key=lambda x: x["clk_hz"])
    same = sorted((x for x in rows if x["clk_hz"] == slow["clk_hz"]), key=lambda x: x["array_s"])
    rate = [1 / (x["line_s"] + x["array_s"]) for x in (same[-1], same[0])]
    verdict = "every measured array is link-bound at every board clock" \
        if all(x["line_s"] >= x["array_s"] for x in rows) else "not every array is link-bound (table)"
    return _para(
        f"Training sends only minibatches and labels and gets losses and predictions back, yet at "
        f"minibatch {BATCH} that is {line * slow['baud'] / UART_BITS:.0f} bytes per sample, "
        f"{1e6 * line:,.0f} µs on the line at {slow['baud'] / 1e6:g} Mbaud. The array needs "
        f"{1e6 * slow['array_s']:,.1f} µs per sample on {_name(slow)} at {slow['clk_hz'] / 1e6:g} MHz and "
        f"{1e6 * fast['array_s']:,.2f} µs on {_name(fast)} at {fast['clk_hz'] / 1e6:g} MHz, so {verdict}: "
        f"the array takes longer than the line only above {even[0]['clk_hz'] * even[0]['line_s']:,.0f} "
        f"cycles per sample at {even[0]['clk_hz'] / 1e6:g} MHz ("
        + ", ".join(f"{x['clk_hz'] * x['line_s']:,.0f} at {x['clk_hz'] / 1e6:g} MHz" for x in even[1:])
        + f"), and the {_name(slow)} array needs {slow['array_s'] * slow['clk_hz']:,.0f}. The request–reply "
        f"protocol adds the two times, so a bigger array still shortens the step, but only by its own "
        f"share: at {slow['clk_hz'] / 1e6:g} MHz, going from {_name(same[-1])} to {_name(same[0])} takes "
        f"training from {rate[0]:,.0f} to {rate[1]:,.0f} samples per second ({rate[1] / rate[0]:.1f}×, "
        f"for {same[-1]['array_s'] / same[0]['array_s']:.0f}× fewer array cycles). USB latency is not "
        f"modelled.")


# -- the section -------------------------------------------------------------------------------------


def render(r: dict, plots: Path) -> str:
    """The section's Markdown from :func:`measure`'s figures (plus ``seconds``); plots go to ``plots``."""
    plots.mkdir(parents=True, exist_ok=True)
    steps, up = r["steps"], speedups(r["steps"])
    speed, sample, where = (_plot_speedup(steps, plots), _plot_per_sample(steps, plots),
                            _plot_breakdown(steps, plots))
    devices = ", ".join(f"{a['rows']}×{a['cols']} ({a['depth']:,} words per bank)" for a in r["arrays"])
    start = sum(a["start_seconds"] for a in r["arrays"])
    intro = _para(
        f"How much faster does a training step get with more multiply-accumulate cells, and with more "
        f"samples per step? `{CMD}` ran training steps of the digits MLP "
        f"({'-'.join(map(str, DIGITS))}, ReLU, softmax) on virtual boards with the square arrays {devices}, "
        f"at minibatches {', '.join(map(str, _batches(steps)))}, and measured the RTL cycles of one step "
        f"(`RunReply.cycles` of the `train` entry: forward pass, loss gradient, backward pass and SGD "
        f"update, all on the device) at each of the {len(steps)} pairs, in {r['seconds'] / 60:.1f} min "
        f"({start:.0f} s of it starting the virtual boards, Verilator builds included unless cached "
        f"under `build/sim`). Each step is profiled instruction by instruction as in "
        f"`docs/benchmarks.md` (every prefix of the entry is run; an instruction costs the difference) "
        f"and checked against {STEPS} real training steps on digits minibatches, which take the same "
        f"cycles. The array is *busy* for `GEMM MACs / (R·C)` cycles of the step.")
    return f"""{intro}

{_answer(r)}

### A bigger array

{_para(f"Minibatch {BATCH}. Speed-up is per sample against the 1×1 array (one MAC cell) at the same "
       f"minibatch; *of R·C* is that speed-up over the number of cells (`{CMD}`).")}

{_array_table(steps, BATCH)}

![speed-up against array size](lab/{speed})

### A bigger minibatch

Cycles per sample (`{CMD}`):

{_grid(steps, lambda s: f"{per_sample(s):,.0f}")}

Speed-up per sample against the 1×1 array at the same minibatch (`{CMD}`):

{_grid(steps, lambda s: f"{up.get(_key(s), math.nan):.2f}×")}

![cycles per sample against minibatch](lab/{sample})

### Where the cycles go

{_para(f"Cycles per sample by instruction kind at minibatch {BATCH}, and their share of the step "
       f"(`{CMD}`); the plot adds minibatches 1 and {max(_batches(steps))}, and marks the array-busy share.")}

{_kinds_table(steps, BATCH)}

![where the cycles go](lab/{where})

### Where it stops scaling, and why

{_scaling(steps)}

{_para(f"Every GEMM of the minibatch-{BATCH} step: its efficiency (`M·K·N / (R·C)` over its cycles), "
       f"its tile fill, and the cap the drain puts on tiles of `K` steps (`{CMD}`).")}

{_gemm_table(steps, BATCH)}

### The link

{_para(f"Array time per sample is the measured step cycles over minibatch {BATCH} at each board's "
       f"clock (`hw/boards`; a board is in bold next to its own array); line time is the bytes per "
       f"sample the driver counted in those steps (frames, delimiters and replies, both ways) times "
       f"{UART_BITS} bits (8N1) over the baud rate (`{CMD}`).")}

{_link_md(r)}

{_link(r)}

{_para(f"Link bytes per sample (`{CMD}`). Small minibatches pay twice: each step's frames and reply "
       f"are shared by fewer samples, and a minibatch narrower than the buffers' banks is still written "
       f"as whole rows of the skewed layout, one word per bank.")}

{_grid(steps, lambda s: f"{s['bytes_in'] + s['bytes_out']:,.1f}")}
"""
