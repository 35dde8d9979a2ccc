"""The benchmark table: each target of the brief against the measured :class:`~bench.records.Results`.

One :class:`~bench.table.Row` per target, in the order of the brief's "Numbers we aim at"; the last
two judge the bitstreams of ``bitstreams/manifest.json``.
"""

from __future__ import annotations

from bench import measure
from bench.records import BOARD_BATCH, Bitstream, BoardModel, GemmRun, Results
from bench.report import mbaud, mhz, percent, points
from bench.table import MISSING, Row, verdict

__all__ = ["CMD", "rows", "efficiency_row", "gemm_target", "bitstream_rows"]

CMD = "python -m bench"
DATA_BYTES = 2 * (measure.DIGITS[0] + measure.DIGITS[-1])
"""Bytes of a sample's inputs and label (16-bit words)."""
STEP_CMD = f"{CMD} (virtual board, RunReply.cycles)"
LINK_CMD = f"{CMD} (Driver byte counters)"
MAKE_TEST = Row("make test from a fresh clone", "≤ 8 min on 2 cores, builds included", "measured by CI",
                MISSING, "")


def rows(r: Results, bitstreams: dict[str, Bitstream]) -> list[Row]:
    """The table, in the order of the brief's "Numbers we aim at"."""
    return [efficiency_row(r.efficiency), *_step_rows(r), *_traffic_rows(r), *map(_board_row, r.boards),
            *_resident_rows(r), *_training_rows(r), MAKE_TEST, *bitstream_rows(bitstreams)]


def _shape(e: GemmRun) -> str:
    return f"{e.m}×{e.k}×{e.n} on {e.rows}×{e.cols}"


def efficiency_row(eff: list[GemmRun]) -> Row:
    """The array efficiency target over the shapes it applies to: the worst of each array and level on
    filled tiles, and every shape whose part-empty tiles leave it short."""
    scope = [e for e in eff if e.applies]
    full = [e for e in scope if e.filled]
    parts = []
    for size in sorted({e.size for e in full}, key=lambda s: (s[0] * s[1], s)):
        mine = [e for e in full if e.size == size]
        worst = [f"{percent(min(e.efficiency for e in mine if e.level == level))} ({level})"
                 for level in ("array", "instruction") if any(e.level == level for e in mine)]
        parts.append(f"{size[0]}×{size[1]} ≥ " + ", ≥ ".join(worst))
    measured = "tiles filled (R | M, C | N): " + "; ".join(parts)
    short = [e for e in scope if not e.filled and not e.passes]
    if short:
        measured += "; part-empty tiles below target: " + ", ".join(
            f"{_shape(e)} {percent(e.efficiency)} ({percent(e.occupancy)} of cells busy)" for e in short)
    ok = all(e.passes for e in scope)
    held = all(e.passes for e in full)
    return Row("array efficiency, GEMMs with K ≥ 4·max(R,C), N ≥ 4·C", "≥ 90 % of R·C MACs/cycle", measured,
               verdict(ok) if ok or not held else "SHORT (filled tiles pass)",
               f"{CMD} (sim.tb_array efficiency, sim.tb_controller gemm_efficiency)")


def gemm_target(e: GemmRun) -> str:
    """A digits GEMM against the target, or why the target does not apply to its shape."""
    k_min = 4 * max(e.rows, e.cols)
    return verdict(e.passes) if e.applies else f"(K < {k_min})" if e.k < k_min else f"(N < {4 * e.cols})"


def _step_rows(r: Results) -> list[Row]:
    return [Row(f"training step, minibatch {p.batch} ({p.device})", "(array busy; no target)",
                f"{p.cycles} cycles, {p.per_sample:.0f}/sample, array busy {percent(p.busy)}", verdict(None),
                STEP_CMD) for p in r.steps]


def _traffic_rows(r: Results) -> list[Row]:
    link = r.link[BOARD_BATCH]
    ratio = (link.train_in + link.train_out) / DATA_BYTES
    inputs = 2 * measure.DIGITS[0]
    return [Row(f"training traffic per sample, minibatch {BOARD_BATCH}", "≤ 1.1 × input + label bytes",
                f"{link.train_in:.1f} in + {link.train_out:.1f} out = {ratio:.3f} × {DATA_BYTES} B",
                verdict(ratio <= 1.1), LINK_CMD),
            Row(f"inference traffic per sample, minibatch {BOARD_BATCH}", "(no target)",
                f"{link.infer_in:.1f} in + {link.infer_out:.1f} out vs {inputs} B of inputs", verdict(None),
                LINK_CMD)]


def _board_row(b: BoardModel) -> Row:
    what = f"link use while training, {b.name} ({b.rows}×{b.cols}, {mhz(b.clk_hz)}, {mbaud(b.baud)})"
    target = "≥ 90 % of line rate, link-bound"
    if b.fits:
        return Row(what, target, f"not modelled: {b.fits}", MISSING, "hw.boards + host.compiler")
    bound = "link-bound" if b.link_bound else "compute-bound"
    return Row(what, target, f"{percent(b.line_use)}, {bound}, {b.samples_per_s:,.0f} samples/s modelled",
               verdict(b.line_use >= 0.9), f"{CMD} (bytes × 10 / baud vs cycles / clock)")


def _resident_rows(r: Results) -> list[Row]:
    """Bytes per sample of resident training on the default device, and each board's modelled rate
    (the 85F's against the brief's target)."""
    default, boards = r.resident[0], r.resident[1:]
    rows = [Row("training traffic with resident data", "≤ 4 bytes per sample",
                f"{default.bytes_per_sample:.2f} bytes per sample ({default.device}, an epoch of "
                f"{default.samples} samples)", verdict(default.bytes_per_sample <= 4), LINK_CMD)]
    for e in boards:
        target = "≥ 50 k samples/s" if e.device == "ulx3s-85f" else "(no target)"
        what = f"digits training throughput, resident, {e.device} ({e.rows}×{e.cols}, {mhz(e.clk_hz)})"
        if e.fits:
            rows.append(Row(what, target, f"not resident: {e.fits}", MISSING if "85f" in e.device
                            else verdict(None), "hw.boards + host.train"))
            continue
        ok = e.samples_per_s >= 50e3 if e.device == "ulx3s-85f" else None
        measured = (f"{e.samples_per_s:,.0f} samples/s modelled, line {percent(e.line_share)} of the time, "
                    f"array efficiency {percent(e.efficiency)}")
        rows.append(Row(what, target, measured, verdict(ok), f"{CMD} (bytes × 10 / baud + cycles / clock)"))
    return rows


def _training_rows(r: Results) -> list[Row]:
    """Accuracy, RTL identity, epoch time, simulation speed and the mean gap to float32."""
    acc, same, epoch, speed = r.accuracy, r.identity, r.epoch, r.virtual.cycles_per_second
    first, gap = acc.runs[0], acc.gap
    seeds = ", ".join(str(x.seed) for x in acc.runs)
    return [
        Row("digits MLP on the device (seed 0)", "≥ 95 %, within 1.5 points of float32",
            f"{percent(first.device)} vs float32 {percent(first.float32)}",
            verdict(first.device >= 0.95 and first.float32 - first.device <= 0.015),
            f"systolic train --target model --seed 0 (epochs {acc.epochs})"),
        Row("RTL ≡ golden model over a whole training run", "bit-exact",
            f"{'identical' if same.weights else 'DIFFERENT'} weights after {acc.epochs} epochs; "
            f"test accuracy {percent(same.virtual)} (virtual board) vs {percent(same.model)} (model)",
            verdict(same.weights and same.virtual == same.model),
            f"{CMD} (seed 0 on both targets); every step: cocotb scoreboards in make test"),
        Row("one digits epoch on the virtual board (incl. test inference)", "≤ 15 s on 2 cores",
            f"{epoch.virtual:.2f} s; model target {epoch.model:.2f} s "
            f"({epoch.virtual / epoch.model:.1f}× faster)",
            verdict(epoch.virtual <= 15), f"{CMD} (median epoch of the seed-0 run)"),
        Row("virtual board simulation speed (whole SoC)", "≥ 100 k cycles/s on 2 cores",
            f"{speed / 1e3:.0f} k cycles/s", verdict(speed >= 100e3),
            f"{CMD} (VirtualBoard.stats)"),
        Row(f"digits MLP on device vs float32, mean of {len(acc.runs)} seeds",
            "within 0.5 points (floor 1.5)",
            f"{percent(acc.mean_device)} vs {percent(acc.mean_float32)}: {points(gap)} points",
            verdict(True) if gap <= 0.005 else "SHORT (floor met)" if gap <= 0.015
            else "SHORT (floor missed)",
            f"{CMD} (--target model, seeds {seeds})"),
    ]


def _ice40_ok(b: Bitstream) -> bool:
    return b.rows * b.cols == 8 and b.used["DSP"].used == 8 and b.slowest >= b.clk_hz / 1e6


def _ecp5_85f_ok(b: Bitstream) -> bool:
    return b.rows * b.cols >= 64 and b.slowest >= 100


def _bitstream_summary(b: Bitstream) -> str:
    cells = ", ".join(f"{r.used:,}/{r.available:,} {name}" for name, r in b.used.items())
    return (f"{b.rows}×{b.cols} array ({b.rows * b.cols} MAC cells), {cells}; "
            f"fmax {b.slowest:.1f} MHz, clocked at {mhz(b.clk_hz)}")


def bitstream_rows(bitstreams: dict[str, Bitstream]) -> list[Row]:
    """The brief's two board targets, judged on the bitstreams recorded in ``bitstreams/``."""
    targets = [("iCE40 UP5K", "icebreaker", "all 8 DSPs in the array, timing met", _ice40_ok),
               ("ECP5-85F", "ulx3s-85f", "≥ 64 MAC cells in DSPs, ≥ 100 MHz", _ecp5_85f_ok)]
    out = []
    for what, name, target, ok in targets:
        b = bitstreams.get(name)
        out.append(Row(what, target, "no bitstream recorded (see docs/boards.md)", MISSING,
                       f"make bitstream BOARD={name}") if b is None else
                   Row(what, target, _bitstream_summary(b), verdict(ok(b)),
                       f"make bitstream BOARD={name} (bitstreams/manifest.json)"))
    return out

