"""``make robust``: the training robustness grid, each run on the device beside float32.

Every run trains the digits MLP for :data:`EPOCHS` epochs on the golden model (``--target model``,
bit-identical to the gateware; a deeper buffer than the default device so that minibatch 128 fits,
which changes no result) and the float32 reference (:class:`host.reference.Reference`) from the same
initial weights in the same data order, and measures the test accuracy of both every
:data:`EVERY` epochs. The grid:

- minibatch 1, 8, 32 and 128 × learning rate 0.03, 0.1 and 0.3 (64-32-10, ReLU);
- every hidden activation × 2, 3 and 4 weight layers (minibatch 32, learning rate 0.1);
- a sigmoid output with binary cross-entropy (digit ≥ 5 against the rest);
- seeds 0, 1 and 2 for the minibatch and learning-rate grid and the sigmoid output, seeds 0 and 1 for
  the activations and depths, seed 0 alone at minibatch 1 (the slowest): about 45 minutes on 2 cores.

Per run: the final gap (float32 − device, in points), the worst gap over the second half of training,
and *collapse*: the device came within 2 points of float32 at some check and later trailed it by more
than 5 at two checks in a row. A single check that far behind is a *dip*, listed apart: per-sample
SGD at a high rate swings by that much in its first epochs, float32 as well. A run where float32
itself does not train (its best check stays below halfway from chance to 100 %) cannot collapse: it is
listed apart and left out of the worst gap. Runs go in parallel over the cores. Output:
``bench/robust.json`` (the records), ``docs/robustness.md`` and ``docs/robust/gaps.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from host.checkpoint import network_from_dict, network_to_dict
from host.compiler import Network, Output
from host.data import Dataset, digits
from host.driver import Driver
from host.reference import Reference
from host.train import Trainer
from hw.config import DeviceConfig
from hw.numerics import Act

__all__ = ["Case", "Run", "grid", "train", "render", "main", "EPOCHS", "EVERY"]

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 100
EVERY = 2
CONFIG = DeviceConfig(depth=8192)
SEEDS = (0, 1, 2)
ACTIVATIONS = {"identity": {"hidden": Act.IDENTITY}, "relu": {"hidden": Act.RELU},
               "leaky_relu": {"hidden": Act.LEAKY_RELU},
               "prelu": {"hidden": Act.LEAKY_RELU, "learn_slope": True, "slope": 0.25},
               "sigmoid": {"hidden": Act.SIGMOID}, "tanh": {"hidden": Act.TANH},
               "swish": {"hidden": Act.SWISH}}
DEPTHS = {2: (64, 32, 10), 3: (64, 32, 16, 10), 4: (64, 32, 32, 16, 10)}
COLLAPSE_NEAR, COLLAPSE_FAR = 2.0, 5.0


@dataclass(frozen=True)
class Case:
    """One configuration of the grid (a network and a seed)."""

    label: str
    network: dict     # host.checkpoint.network_to_dict
    seed: int
    binary: bool = False   # sigmoid output: digit >= 5 against the rest

    @property
    def chance(self) -> float:
        """The accuracy of guessing: one class in 10, or one in 2 for the binary task."""
        return 0.5 if self.binary else 0.1


@dataclass
class Run:
    """A finished run: test accuracies (fractions) of the device and float32 at :attr:`epochs`."""

    case: Case
    epochs: list[int]
    device: list[float]
    float32: list[float]
    seconds: float
    gaps: list[float] = field(init=False)

    def __post_init__(self):
        self.gaps = [100 * (f - d) for d, f in zip(self.device, self.float32, strict=True)]

    @property
    def float32_trains(self) -> bool:
        """Float32 gets at least halfway from chance to 100 % at some check."""
        return max(self.float32) >= (1 + self.case.chance) / 2

    @property
    def final_gap(self) -> float:
        return self.gaps[-1]

    @property
    def worst_gap(self) -> float:
        """The largest gap over the second half of training."""
        half = self.epochs[-1] / 2
        return max(g for e, g in zip(self.epochs, self.gaps, strict=True) if e > half)

    def _behind(self) -> list[bool]:
        """Per check: more than 5 points behind float32, after the run was once within 2 points."""
        near, out = False, []
        for gap in self.gaps:
            out.append(near and gap > COLLAPSE_FAR)
            near = near or gap <= COLLAPSE_NEAR
        return out

    @property
    def collapsed(self) -> bool:
        if not self.float32_trains:
            return False
        behind = self._behind()
        return any(a and b for a, b in zip(behind, behind[1:], strict=False))

    @property
    def dips(self) -> list[int]:
        """Epochs of single checks more than 5 points behind, between checks that are not (not a
        collapse). None where float32 does not train."""
        if not self.float32_trains:
            return []
        behind = [False, *self._behind(), False]
        return [e for k, e in enumerate(self.epochs, 1)
                if behind[k] and not behind[k - 1] and not behind[k + 1]]

    def gap_at(self, epoch: int) -> float:
        return self.gaps[self.epochs.index(epoch)]


def _case(label: str, seed: int, binary: bool = False, **options) -> Case:
    return Case(label, network_to_dict(Network(**options)), seed, binary)


def grid(seeds=SEEDS) -> list[Case]:
    """Every case, the slowest first (so the pool ends together)."""
    cases = []
    for batch in (1, 8, 32, 128):
        for lr in (0.03, 0.1, 0.3):
            for seed in seeds if batch > 1 else seeds[:1]:
                cases.append(_case(f"batch {batch}, lr {lr}", seed, sizes=DEPTHS[2], batch=batch,
                                   learning_rate=lr))
    for name, options in ACTIVATIONS.items():
        for layers, sizes in DEPTHS.items():
            if name == "relu" and layers == 2:
                continue   # the batch 32, lr 0.1 case above
            for seed in seeds[:2]:
                cases.append(_case(f"{name}, {layers} layers", seed, sizes=sizes, **options))
    for seed in seeds:
        cases.append(_case("sigmoid output (BCE)", seed, binary=True, sizes=(64, 32, 1),
                           output=Output.SIGMOID))
    return cases


def _binary(data: Dataset) -> Dataset:
    return Dataset(data.x, (data.y >= 5).astype(np.int64), 2, f"{data.name} (>= 5)")


def train(case: Case, epochs: int = EPOCHS, every: int = EVERY) -> Run:
    """One run of the grid: the device (golden model) and float32, side by side."""
    began = time.monotonic()
    network = network_from_dict(case.network)
    train_set, test = digits(seed=case.seed)
    if case.binary:
        train_set, test = _binary(train_set), _binary(test)
    checked, device, float32 = [], [], []
    with Driver.open("model", config=CONFIG) as driver:
        trainer = Trainer(driver, network, case.seed, x=train_set.x)
        initial = trainer.initial_weights()
        trainer.load(initial)
        reference = Reference.from_raw(trainer.program, initial)
        rng, ref_rng = np.random.default_rng(case.seed), np.random.default_rng(case.seed)
        for epoch in range(1, epochs + 1):
            trainer.train_epoch(train_set, rng, epoch)
            reference.train_epoch(train_set, ref_rng)
            if epoch % every == 0 or epoch == epochs:
                checked.append(epoch)
                device.append(float(np.mean(trainer.predict(test.x) == test.y)))
                float32.append(float(np.mean(reference.predict(test.x) == test.y)))
    return Run(case, checked, device, float32, time.monotonic() - began)


def _train(job: tuple[Case, int, int]) -> Run:
    return train(*job)


def run_all(cases: list[Case], epochs: int = EPOCHS, every: int = EVERY, workers: int | None = None,
            progress=None) -> list[Run]:
    """:func:`train` of every case in parallel over ``workers`` processes (default: every core)."""
    runs = []
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for run in pool.map(_train, [(case, epochs, every) for case in cases]):
            runs.append(run)
            if progress:
                progress(run)
    return runs


# -- the page ------------------------------------------------------------------------------------------

def _groups(runs: list[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for run in runs:
        out.setdefault(run.case.label, []).append(run)
    return out


def _mean(values) -> float:
    return float(np.mean(list(values)))


def summary(runs: list[Run]) -> dict:
    """The figures the brief asks for: worst gap, collapses, the default's 3-seed gaps."""
    default = _groups(runs).get("batch 32, lr 0.1", [])
    epochs = runs[0].epochs
    judged = [r for r in runs if r.float32_trains] or runs
    at20 = 20 if 20 in epochs else epochs[0]
    return {
        "runs": len(runs),
        "collapses": [f"{r.case.label} (seed {r.case.seed})" for r in runs if r.collapsed],
        "dips": [f"{r.case.label} (seed {r.case.seed}) at epoch {', '.join(map(str, r.dips))}"
                 for r in runs if r.dips],
        "untrained": [f"{r.case.label} (seed {r.case.seed}, float32 best {100 * max(r.float32):.1f} %)"
                      for r in runs if not r.float32_trains],
        "worst_gap": max(r.worst_gap for r in judged),
        "worst_run": max(judged, key=lambda r: r.worst_gap).case.label,
        "mean_final_gap": _mean(r.final_gap for r in runs),
        "default_seeds": len(default),
        "default_gap_20": _mean(r.gap_at(at20) for r in default) if default else None,
        "default_gap_final": _mean(r.final_gap for r in default) if default else None,
        "epochs": epochs[-1],
    }


def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _groups(runs)
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(15, max(5, 0.28 * len(groups))),
                                       gridspec_kw={"width_ratios": [1, 1.3]})
    labels = list(groups)
    y = np.arange(len(labels))
    bars.barh(y - 0.2, [_mean(r.final_gap for r in groups[k]) for k in labels], 0.4, label="final gap")
    bars.barh(y + 0.2, [max(r.worst_gap for r in groups[k]) for k in labels], 0.4,
              label="worst gap, second half")
    bars.axvline(1.5, color="red", lw=0.8, ls="--", label="1.5 points")
    bars.set(yticks=y, yticklabels=labels, xlabel="float32 − device (points of test accuracy)")
    bars.invert_yaxis()
    bars.legend(fontsize=8)
    for label in ("batch 1, lr 0.03", "batch 8, lr 0.1", "batch 32, lr 0.1", "batch 128, lr 0.3",
                  "relu, 4 layers", "sigmoid, 3 layers"):
        if label in groups:
            run = groups[label][0]
            line, = curves.plot(run.epochs, [100 * a for a in run.device], label=f"{label}: device")
            curves.plot(run.epochs, [100 * a for a in run.float32], ls=":", color=line.get_color())
    curves.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(80, 100),
               title="device (solid) and float32 (dotted), seed 0")
    if curves.lines:
        curves.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


PAGE = """# Robustness: training on the device against float32

Generated by `make robust` (`python -m bench.robust{options}`: {runs} runs in {minutes:.0f} min on
{cores} cores, the runs' own wall times summing to {core_minutes:.0f} min).
Each run trains sklearn's digits for {epochs} epochs on the golden model (bit-identical to the
gateware) and in float32 from the same initial weights in the same data order; test accuracy every
{every} epochs. *Gap* is float32 − device in points of test accuracy; *worst* is the largest gap over
the second half of training; a run *collapses* when it came within {near:g} points of float32 and later
trailed it by more than {far:g} at two checks in a row; a single check that far behind is a *dip*
(per-sample SGD at a high rate swings that much in its first epochs, float32 as well). A run where
float32 itself does not train (its best check stays below halfway from chance to 100 %) has nothing to
collapse from: it is listed apart and left out of the worst gap.

- **Collapses: {collapses}.** Dips: {dips}.
- Float32 does not train: {untrained}.
- Worst gap over the grid where float32 trains: **{worst_gap:.2f} points** ({worst_run}); target ≤ 1.5.
- Digits default (64-32-10, ReLU, minibatch 32, lr 0.1), mean of {default_seeds} seeds: gap
  {default_gap_20:.2f} points at epoch 20, {default_gap_final:.2f} at epoch {epochs} (target ≤ 0.5).
- Mean final gap over every run: {mean_final_gap:.2f} points.

![gaps and curves](robust/gaps.png)

| case | seeds | device (final) | float32 (final) | final gap | worst gap | collapse |
| --- | ---: | ---: | ---: | ---: | ---: | --- |
{table}
"""


def render(runs: list[Run], seconds: float, cores: int) -> str:
    s = summary(runs)
    rows = []
    for label, group in _groups(runs).items():
        rows.append(f"| {label} | {len(group)} | {100 * _mean(r.device[-1] for r in group):.2f} % | "
                    f"{100 * _mean(r.float32[-1] for r in group):.2f} % | "
                    f"{_mean(r.final_gap for r in group):.2f} | {max(r.worst_gap for r in group):.2f} | "
                    f"{_collapse(group)} |")
    nan = float("nan")
    return PAGE.format(**{**s, "collapses": ", ".join(s["collapses"]) or "none",
                          "dips": "; ".join(s["dips"]) or "none",
                          "untrained": "; ".join(s["untrained"]) or "none",
                          "default_gap_20": s["default_gap_20"] if s["default_gap_20"] is not None else nan,
                          "default_gap_final": s["default_gap_final"] if s["default_gap_final"] is not None
                          else nan},
                       minutes=seconds / 60, cores=cores, every=EVERY, options=_options(runs),
                       core_minutes=sum(r.seconds for r in runs) / 60, near=COLLAPSE_NEAR,
                       far=COLLAPSE_FAR, table="\n".join(rows))


def _collapse(group: list[Run]) -> str:
    if any(r.collapsed for r in group):
        return "**yes**"
    untrained = sum(not r.float32_trains for r in group)
    return f"no; float32 does not train ({untrained} of {len(group)})" if untrained else "no"


def _options(runs: list[Run]) -> str:
    """The command-line options that give these runs' seeds (none for the full grid)."""
    seeds = max(len(group) for group in _groups(runs).values())
    return "" if seeds == len(SEEDS) else f" --seeds {seeds}"


def _record(run: Run) -> dict:
    return {**asdict(run), "final_gap": run.final_gap, "worst_gap": run.worst_gap, "collapsed": run.collapsed,
            "dips": run.dips, "float32_trains": run.float32_trains}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.robust", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds per case (1 … 3)")
    parser.add_argument("--only", help="run only the cases whose label contains this text")
    parser.add_argument("--out", default=str(ROOT), help="folder for bench/robust.json and docs/")
    parser.add_argument("--render", action="store_true",
                        help="only write the page and the plot again from bench/robust.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.render:
        saved = json.loads((out / "bench" / "robust.json").read_text())
        runs = [_run(record) for record in saved["runs"]]
        return _write_page(runs, saved["seconds"], saved["cores"], out)
    cases = grid(SEEDS[:args.seeds])
    if args.only:
        cases = [c for c in cases if args.only in c.label]
    cores = os.cpu_count() or 1
    began = time.monotonic()

    def progress(run: Run) -> None:
        print(f"{run.case.label:28} seed {run.case.seed}: device {100 * run.device[-1]:6.2f} %, float32 "
              f"{100 * run.float32[-1]:6.2f} %, worst gap {run.worst_gap:5.2f}"
              f"{', COLLAPSED' if run.collapsed else ''} ({run.seconds:.0f} s)", flush=True)

    runs = run_all(cases, args.epochs, progress=progress)
    seconds = time.monotonic() - began
    (out / "bench").mkdir(parents=True, exist_ok=True)
    (out / "bench" / "robust.json").write_text(json.dumps(
        {"seconds": seconds, "cores": cores, "summary": summary(runs), "runs": [_record(r) for r in runs]},
        indent=1) + "\n")
    return _write_page(runs, seconds, cores, out)


def _run(record: dict) -> Run:
    """A :class:`Run` from its record in ``bench/robust.json``."""
    return Run(Case(**record["case"]), record["epochs"], record["device"], record["float32"],
               record["seconds"])


def _write_page(runs: list[Run], seconds: float, cores: int, out: Path) -> int:
    plot(runs, out / "docs" / "robust" / "gaps.png")
    page = render(runs, seconds, cores)
    (out / "docs" / "robustness.md").write_text(page)
    print(page.split("![")[0])
    return 1 if summary(runs)["collapses"] else 0


if __name__ == "__main__":
    sys.exit(main())
