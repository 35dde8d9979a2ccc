"""The virtual board's top: :class:`hw.soc.SoC` behind word-wide FIFOs, for ``sim/virtual.py`` only.

The SoC's ``i`` and ``o`` byte streams move one byte per cycle; the testbench moves up to ``width``
bytes per access here, so Python touches the simulator once per word rather than once per byte and
can let the clock run between accesses.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import ResetInserter
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hw.config import DeviceConfig
from hw.soc import SoC, frame_wire_bytes

__all__ = ["VirtualTop"]


class VirtualTop(wiring.Component):
    """:class:`hw.soc.SoC` with its wire byte streams packed into words of ``width`` bytes.

    A word holds its bytes first-in-lowest with a count of valid bytes. Every port the testbench reads
    depends only on register state, so it may be sampled on the falling clock edge and driven for the
    next rising one. Each FIFO holds two of the longest frames.

    Parameters
    ----------
    config : DeviceConfig
        The device.
    width : int
        Bytes per word, at least 2.

    Attributes
    ----------
    w_data : In(8 * width)
        Bytes for the SoC's ``i``.
    w_count : In(range(width + 1))
        Bytes of ``w_data`` to queue at this clock edge (0: none); only while ``w_rdy``.
    w_rdy : Out(1)
        The input FIFO has room for a word.
    w_low : Out(1)
        The input FIFO is at most half full.
    drop : In(1)
        Empty the input FIFO; a frame the SoC is inside ends with a 0x00 delimiter.
    r_data : Out(8 * width)
        Bytes from the SoC's ``o``; a word ends at ``width`` bytes or at a 0x00 delimiter.
    r_count : Out(range(width + 1))
        Bytes of ``r_data`` that are valid; 0 when there is no word.
    r_rdy : Out(1)
        ``r_count`` is not 0.
    r_ack : In(1)
        Take the word on ``r_data`` at this clock edge.
    busy : Out(1)
        Bytes wait in the wrapper, or a non-empty frame the SoC took is not yet answered in full.
    """

    def __init__(self, config: DeviceConfig, width: int = 8):
        if not isinstance(width, int) or width < 2:
            raise ValueError(f"VirtualTop width {width!r} must be an integer of at least 2")
        self.config, self.width = config, width
        self.depth = 2 * -(-frame_wire_bytes(config.max_payload) // width)
        super().__init__({
            "w_data": In(8 * width), "w_count": In(range(width + 1)), "w_rdy": Out(1), "w_low": Out(1),
            "drop": In(1),
            "r_data": Out(8 * width), "r_count": Out(range(width + 1)), "r_rdy": Out(1), "r_ack": In(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bits, count_bits = 8 * self.width, len(self.w_count)
        m.submodules.soc = soc = SoC(self.config)
        m.submodules.rx = rx = ResetInserter(self.drop)(
            SyncFIFOBuffered(width=bits + count_bits, depth=self.depth))
        m.submodules.tx = tx = SyncFIFOBuffered(width=bits + count_bits, depth=self.depth)

        # Input: queue words, then feed their bytes to the SoC one per cycle.
        m.d.comb += [rx.w_en.eq(self.w_count != 0), rx.w_data.eq(Cat(self.w_data, self.w_count)),
                     self.w_rdy.eq(rx.w_rdy), self.w_low.eq(rx.w_level <= self.depth // 2)]
        word, left = Signal(bits), Signal(range(self.width + 1))
        in_frame, open_frames = Signal(), Signal(16)
        take = soc.i.valid & soc.i.ready
        frame_after = Mux(take, soc.i.payload != 0, in_frame)
        refill = (left == 0) | ((left == 1) & take)
        m.d.comb += [soc.i.valid.eq(left != 0), soc.i.payload.eq(word[:8]),
                     rx.r_en.eq(refill & ~self.drop)]
        m.d.sync += in_frame.eq(frame_after)
        with m.If(self.drop):
            m.d.sync += [word.eq(0), left.eq(frame_after)]
        with m.Elif(refill & rx.r_rdy):
            m.d.sync += [word.eq(rx.r_data[:bits]), left.eq(rx.r_data[bits:])]
        with m.Elif(take):
            m.d.sync += [word.eq(word >> 8), left.eq(left - 1)]

        # Output: gather the SoC's bytes into words, closing one when full or at a delimiter.
        acc, held = Signal(bits), Signal(range(self.width))
        count = Signal(count_bits)
        got = soc.o.valid & soc.o.ready
        merged = (acc | (soc.o.payload << (held * 8)))[:bits]
        close = (held == self.width - 1) | (soc.o.payload == 0)
        m.d.comb += [soc.o.ready.eq(tx.w_rdy), count.eq(held + 1),
                     tx.w_data.eq(Cat(merged, count)), tx.w_en.eq(got & close)]
        with m.If(got):
            m.d.sync += [acc.eq(Mux(close, 0, merged)), held.eq(Mux(close, 0, held + 1))]
        m.d.comb += [self.r_data.eq(tx.r_data[:bits]), self.r_count.eq(Mux(tx.r_rdy, tx.r_data[bits:], 0)),
                     self.r_rdy.eq(tx.r_rdy), tx.r_en.eq(self.r_ack)]

        # One reply per non-empty frame: count frames delimited on ``i`` against delimiters on ``o``.
        ended = take & (soc.i.payload == 0) & in_frame
        replied = got & (soc.o.payload == 0)
        m.d.sync += open_frames.eq(open_frames + ended - replied)
        m.d.comb += self.busy.eq((open_frames != 0) | (rx.w_level != 0) | (left != 0) | (held != 0)
                                    | (tx.w_level != 0))
        return m
