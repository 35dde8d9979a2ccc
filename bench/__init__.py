"""``python -m bench`` (``make bench``): every target of the brief that can be measured today, side by side.

:mod:`bench.measure` runs the gateware (cocotb testbenches and the virtual board) and the golden
model, :mod:`bench.report` turns the figures into one table of target, measured value, verdict and
the command that measured it, and :mod:`bench.run` prints the table and writes ``docs/benchmarks.md``, its
plots under ``docs/bench/`` and the raw figures in ``bench/results.json``.
"""
