"""The pipeline registers between streams (Amaranth's simulator)."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import stream
from amaranth.sim import Simulator

from hw.pipeline import registered, skid


@pytest.mark.parametrize("stage", [registered, skid])
@pytest.mark.parametrize("seed", [1, 2])
def test_stage_passes_every_beat_in_order(stage, seed):
    """Random valid and ready on both sides: every beat arrives once, in order, and a stage that is
    always ready passes a beat a cycle."""
    m = Module()
    source = stream.Signature(8).create(path=("source",))
    sink = stage(m, source, "stage")
    rng = np.random.default_rng(seed)
    beats = rng.integers(0, 256, 200).tolist()
    offered = rng.random(2000) < 0.7
    taking = rng.random(2000) < 0.6
    got = []

    async def bench(ctx):
        sent = 0
        for cycle in range(2000):
            ctx.set(source.valid, sent < len(beats) and bool(offered[cycle]))
            ctx.set(source.payload, beats[sent] if sent < len(beats) else 0)
            ctx.set(sink.ready, bool(taking[cycle]))
            if ctx.get(sink.valid) and ctx.get(sink.ready):
                got.append(ctx.get(sink.payload))
            if ctx.get(source.valid) and ctx.get(source.ready):
                sent += 1
            await ctx.tick()
        assert got == beats
        ctx.set(sink.ready, 1)
        ctx.set(source.valid, 1)
        for _ in range(4):                                   # drain what waits, then stream
            await ctx.tick()
        for value in range(10):
            ctx.set(source.payload, value)
            assert ctx.get(source.ready) and ctx.get(sink.valid)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_skid_ready_does_not_follow_the_sink_within_a_cycle():
    """``source.ready`` is a register's: flipping the sink's ``ready`` leaves it as it was."""
    m = Module()
    source = stream.Signature(8).create(path=("source",))
    sink = skid(m, source, "stage")

    async def bench(ctx):
        ctx.set(source.valid, 1)
        for cycle in range(20):
            ready = ctx.get(source.ready)
            for flip in (0, 1, 0):
                ctx.set(sink.ready, flip)
                assert ctx.get(source.ready) == ready, cycle
            ctx.set(sink.ready, cycle % 3 == 0)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
