"""The simulator runner's own logic (no simulator needed)."""

import pytest

from sim.runner import ports


def test_ports_of_plain_and_escaped_modules():
    sources = {"cells.v": "module other(a);\nendmodule\n",
               "top.v": "module \\virtual (clk, rst,\n  i__valid, \\port$1 );\nendmodule\n"}
    assert ports(sources, "virtual") == ["clk", "rst", "i__valid", "port$1"]
    assert ports(sources, "other") == ["a"]
    with pytest.raises(ValueError, match="no module top in cells.v, top.v"):
        ports(sources, "top")
