"""``python -m bench`` (``make bench``): every target of the brief that can be measured today, side by side.

:mod:`bench.measure` runs the gateware (cocotb testbenches and the virtual board) and the golden
model; :mod:`bench.run` gathers the figures into :class:`bench.records.Results` (kept in
``bench/results.json``); :mod:`bench.judge` sets them against the targets in one table;
:mod:`bench.page` writes ``docs/benchmarks.md`` from ``bench/templates/benchmarks.md.j2``, with the plots
of :mod:`bench.plots` under ``docs/bench/``. :mod:`bench.report` holds what every report shares (number
formats, tables, templates, records to and from JSON); :mod:`bench.robust` is the robustness grid.
"""
