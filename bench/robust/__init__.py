"""``make robust`` (``python -m bench.robust``): the training robustness grid, each run on the device
beside float32.

Every run trains the digits MLP for :data:`~bench.robust.grid.EPOCHS` epochs on the golden model
(``--target model``,
bit-identical to the gateware; a deeper buffer than the default device so that minibatch 128 fits,
which changes no result) and the float32 reference (:class:`host.reference.Reference`) from the same
initial weights in the same data order, and measures the test accuracy of both every
:data:`~bench.robust.grid.EVERY` epochs. The grid:

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

The package measures (:mod:`~bench.robust.grid`), judges (:mod:`~bench.robust.records`), plots
(:mod:`~bench.robust.plot`) and writes the page (:mod:`~bench.robust.page`,
``bench/templates/robustness.md.j2``) apart; :mod:`bench.robust.__main__` is the command.
"""

from bench.robust.grid import EPOCHS, EVERY, SEEDS, grid, run_all, train
from bench.robust.records import Case, Grid, Run, Summary

__all__ = ["EPOCHS", "EVERY", "SEEDS", "Case", "Run", "Grid", "Summary", "grid", "train", "run_all"]
