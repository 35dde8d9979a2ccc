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


def test_objcache_compiles_a_runtime_file_once(tmp_path, monkeypatch):
    """A runtime compile runs once and is copied after; a model compile always runs."""
    from sim.objcache import compile_cached, key

    compiler = tmp_path / "cc"
    runs = tmp_path / "runs"
    compiler.write_text('#!/bin/sh\necho x >> "$RUNS"\nout=$3\necho object > "$out"\n'
                        'echo dep > "${out%.o}.d"\n')
    compiler.chmod(0o755)
    monkeypatch.setenv("RUNS", str(runs))
    source = tmp_path / "verilated.cpp"
    source.write_text("int x;\n")
    cache = tmp_path / "cache"
    for build in ("a", "b"):
        folder = tmp_path / build
        folder.mkdir()
        monkeypatch.chdir(folder)
        assert compile_cached(cache, [str(compiler), "-c", "-o", "verilated.o", str(source)]) == 0
        assert (folder / "verilated.o").read_text() == "object\n"
        assert (folder / "verilated.d").read_text() == "dep\n"
    assert runs.read_text() == "x\n"
    assert key([str(compiler), "-c", "-o", "Vtop__ALL.o", "Vtop__ALL.cpp"]) is None
    source.write_text("int y;\n")                       # a changed runtime is compiled again
    assert compile_cached(cache, [str(compiler), "-c", "-o", "verilated.o", str(source)]) == 0
    assert runs.read_text() == "x\nx\n"
