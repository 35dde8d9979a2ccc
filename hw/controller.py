"""The controller: runs programs of the instruction set (``docs/isa.md``) on the compute core.

It is five parts, wired here:

- :class:`hw.sequencer.Sequencer`: the instruction memory, the tensor registers, fetch, decode and
  the operand checks; it loads the running instruction into a :class:`hw.job.Job`;
- :class:`hw.operand_walk.OperandWalk`: the X, Y and Z read requests of the instruction (and the
  host's reads while idle);
- :class:`hw.buffer_set.BufferSet`: the three buffers, reached by buffer number;
- :class:`hw.datapath.Datapath`: the systolic array and the vector, softmax and reduce units;
- :class:`hw.writer.Writer`: the results back into the output buffer (and the host's writes), and
  the saturation counters;
- with a data memory (``data_depth > 0``), :class:`hw.data_memory.DataMemory` and the
  :class:`hw.gather.Gather` unit, which runs ``GATHER`` from it into the buffers.

An instruction streams its operands out of the buffers through one unit and writes the results back;
the host reaches the buffers, the data memory and the instruction memory through its port while no
program runs.
"""


from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from .buffer_set import BufferSet
from .config import DeviceConfig
from .data_memory import DataMemory
from .datapath import Datapath
from .gather import Gather
from .host_port import HostPort
from .isa import Buf, Opcode
from .operand_walk import OperandWalk
from .sequencer import Sequencer
from .writer import Writer

__all__ = ["Controller"]


class Controller(wiring.Component):
    """Runs a program from ``entry`` to ``END`` (or a fault), one instruction at a time.

    Cycle contract:

    - ``host.start`` (a one-cycle pulse while not ``busy``) begins a run at ``entry``; ``busy`` is
      high from the next cycle until the run ends; then ``status``, ``pc`` and ``cycles`` describe it.
    - ``host.imem``, ``host.write`` and ``host.read`` are ready only while not ``busy``. ``write`` and
      ``imem`` complete in one cycle; ``read`` returns one ``read_data`` word per request, in order (a
      read of another buffer waits for the earlier responses to be taken). A host read sees every host
      write transferred before it (a write of its word on the same cycle leaves it undefined).
    - Within an instruction the operands stream at one beat per cycle: a GEMM issues one array step
      per cycle whenever the array accepts it, so its efficiency is the array's.
    - The buffers leave a read undefined where a write of the same word lands on the same cycle. An
      instruction uses no such read: it reads each element of its operands before it writes that
      element of ``out`` (``docs/isa.md`` allows no other overlap), and lanes read past a matrix
      reach only results that are dropped or not written.

    Parameters
    ----------
    config : DeviceConfig

    Attributes
    ----------
    host : In(HostPort())
        The command handler's port.
    """

    host: In(HostPort())

    def __init__(self, config: DeviceConfig):
        self.config = config
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.sequencer = seq = Sequencer(self.config)
        m.submodules.walk = walk = OperandWalk(self.config)
        m.submodules.buffers = buffers = BufferSet(self.config)
        m.submodules.datapath = datapath = Datapath(self.config)
        m.submodules.writer = writer = Writer(self.config)
        host, job = self.host, seq.job

        m.d.comb += [seq.start.eq(host.start), seq.entry.eq(host.entry), host.busy.eq(seq.busy),
                     host.status.eq(seq.status), host.pc.eq(seq.pc), host.cycles.eq(seq.cycles)]
        wiring.connect(m, wiring.flipped(host.imem), seq.imem)
        gathers = job.op == Opcode.GATHER          # the gather unit runs it; the streams stay idle
        for part in (walk, datapath, writer):
            m.d.comb += [part.job.eq(job), part.tiles.eq(seq.tiles), part.go.eq(seq.go & ~gathers),
                         part.running.eq(seq.running & ~gathers)]
        m.d.comb += [walk.busy.eq(seq.busy), buffers.busy.eq(seq.busy), writer.busy.eq(seq.busy)]
        m.d.comb += [datapath.slope.eq(seq.slope), datapath.scale.eq(seq.scale), datapath.seed.eq(seq.seed),
                     datapath.seed_load.eq(seq.seed_load)]

        # Requests: the walk's to the buffers it names, the writer's (or the gather unit's) to its
        # output buffer.
        wiring.connect(m, walk.steps, buffers.steps)
        wiring.connect(m, walk.z, buffers.z)
        m.d.comb += [buffers.buffers.x.eq(walk.x_buf), buffers.buffers.y.eq(job.y.buf),
                     buffers.buffers.z.eq(job.z.buf), buffers.use_z.eq(job.use_z),
                     walk.x_pending.eq(buffers.x_pending)]

        # Responses: into the datapath, or X's lane 0 to the host while idle.
        wiring.connect(m, buffers.y_data, datapath.y_data)
        wiring.connect(m, buffers.z_data, datapath.z_data)
        m.d.comb += [
            datapath.x_data.valid.eq(buffers.x_data.valid),
            datapath.x_data.payload.eq(buffers.x_data.payload),
            buffers.x_data.ready.eq(Mux(seq.busy, datapath.x_data.ready, host.read_data.ready)),
        ]
        wiring.connect(m, datapath.result, writer.result)
        streamed = writer.done & (~job.gemm | datapath.drained)
        if self.config.data_depth:
            self._data(m, seq, writer, walk, buffers, gathers, streamed)
        else:
            wiring.connect(m, wiring.flipped(host.read), walk.host)
            wiring.connect(m, wiring.flipped(host.write), writer.host)
            wiring.connect(m, writer.write, buffers.write)
            m.d.comb += [buffers.buffers.out.eq(writer.out_buf), seq.done.eq(streamed),
                         host.read_data.valid.eq(~seq.busy & buffers.x_data.valid),
                         host.read_data.payload.eq(buffers.x_data.payload[0])]
        return m

    def _data(self, m, seq, writer, walk, buffers, gathers, streamed):
        """The data memory and the gather unit: the host's words of ``D`` go to the memory, the rest
        as without one; a running ``GATHER`` writes to the buffers in the writer's place."""
        host, job = self.host, seq.job
        m.submodules.data = memory = DataMemory(self.config)
        m.submodules.gather = gather = Gather(self.config)
        m.d.comb += [gather.job.eq(job), gather.tiles.eq(seq.tiles), gather.go.eq(seq.go & gathers),
                     gather.running.eq(seq.running & gathers), gather.gather.eq(seq.gather),
                     memory.busy.eq(seq.busy), memory.gather_addr.eq(gather.read_addr),
                     memory.gather_en.eq(gather.read_en), gather.read_data.eq(memory.gather_data),
                     seq.done.eq(Mux(gathers, gather.done, streamed)), seq.fault.eq(gathers & gather.fault)]
        to_d = host.write.payload.buf == Buf.D
        from_d = host.read.payload.buf == Buf.D
        m.d.comb += [
            memory.write.payload.eq(host.write.payload), writer.host.payload.eq(host.write.payload),
            memory.write.valid.eq(host.write.valid & to_d), writer.host.valid.eq(host.write.valid & ~to_d),
            host.write.ready.eq(Mux(to_d, memory.write.ready, writer.host.ready)),
            memory.read.payload.eq(host.read.payload), walk.host.payload.eq(host.read.payload),
            memory.read.valid.eq(host.read.valid & from_d), walk.host.valid.eq(host.read.valid & ~from_d),
            host.read.ready.eq(Mux(from_d, memory.read.ready, walk.host.ready)),
            memory.read_data.ready.eq(host.read_data.ready),
            host.read_data.valid.eq(~seq.busy & (buffers.x_data.valid | memory.read_data.valid)),
            host.read_data.payload.eq(Mux(memory.read_data.valid, memory.read_data.payload,
                                          buffers.x_data.payload[0])),
        ]
        # Both registered: a GATHER's first write comes cycles after it starts, and the buffers'
        # write addressing starts at flip-flops rather than behind this choice. A write then lands a
        # cycle after its unit has let it go (``done``); the next read comes cycles later.
        on = Signal()
        m.d.sync += on.eq(seq.busy & gathers)
        m.d.sync += [buffers.write.valid.eq(Mux(on, gather.write.valid, writer.write.valid)),
                     buffers.write.payload.eq(Mux(on, gather.write.payload, writer.write.payload)),
                     buffers.buffers.out.eq(Mux(on, job.out.buf, writer.out_buf))]
