"""On-chip buffers: banked memories that read or write a row or a column segment of a matrix per cycle."""

from amaranth import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .isa import Mode
from .layout import Layout

__all__ = ["ReadRequest", "WriteRequest", "ReadResponse", "Buffer", "times", "flat_word"]


def _address_fields(banks: int, depth: int) -> dict:
    word = unsigned(max(1, ceil_log2(banks * depth)))
    address = unsigned(max(1, ceil_log2(depth)))
    skew = unsigned(max(1, ceil_log2(banks)))
    return {"mode": Mode, "row": address, "skew": skew, "q": word, "pitch": address}


class ReadRequest(data.StructLayout):
    """A read: ``mode``, where row ``p`` of the matrix starts (``row``, ``skew``), column ``q``, ``pitch``.

    ``row`` is the address of element ``(p, 0)`` (``base + p·pitch``) and ``skew`` is ``p mod B``, its
    bank; ``pitch`` (addresses from one row to the next) is used by ``COLUMN`` accesses only.
    ``row`` and ``pitch`` have ``ceil_log2(depth)`` bits, ``skew`` ``log2 B`` (at least one) and
    ``q`` ``ceil_log2(banks·depth)`` (a host word number fits); ``tag`` is returned with the data.
    """

    def __init__(self, banks: int, depth: int, tag_width: int):
        super().__init__({**_address_fields(banks, depth), "tag": unsigned(tag_width)})


class WriteRequest(data.StructLayout):
    """A write: the fields of :class:`ReadRequest` (no ``tag``), ``data`` per lane, ``mask`` bit per lane."""

    def __init__(self, banks: int, depth: int, width: int):
        super().__init__({**_address_fields(banks, depth),
                          "data": data.ArrayLayout(signed(width), banks), "mask": unsigned(banks)})


class ReadResponse(data.StructLayout):
    """The lanes of a read, lane ``l`` being element ``l`` of the access, and the request's ``tag``."""

    def __init__(self, banks: int, width: int, tag_width: int):
        super().__init__({"data": data.ArrayLayout(signed(width), banks), "tag": unsigned(tag_width)})


class Buffer(wiring.Component):
    """A buffer of ``banks`` memory banks holding matrices in the skewed layout of :mod:`hw.layout`.

    Element ``(p, q)`` of a matrix at ``base`` with rows ``pitch`` addresses apart is in bank
    ``(p + q) mod B``, address ``base + p·pitch + (q >> log2 B)``. A request names row ``p`` by its
    start, ``row = base + p·pitch``, and ``skew = p mod B``, so the requester (which walks rows one at
    a time or by a fixed stride) keeps ``row`` by additions and the buffer multiplies nothing. An
    access of :class:`Mode` ``ROW`` or ``COLUMN`` from ``(p, q)`` touches every bank once: bank ``b``
    serves lane ``l = (b − skew − q) mod B`` at ``row + (q >> log2 B)`` plus its own step (row: a
    carry once ``q mod B + l`` reaches ``B``; column: ``l·pitch``, a constant multiple made by shifts
    and adds). Each bank is one memory with one read and one write port, which synthesis maps to
    block RAM. Addresses wrap at ``ceil_log2(depth)`` bits; an access reaching past ``depth`` is
    undefined.

    Cycle contract:

    - ``rd``: a request transfers on a cycle with ``rd.valid & rd.ready``; the banks are read at the
      end of the next cycle. The responses wait in a queue of ``queue`` registers (four, five with
      ``copy``): ``rd.ready`` is high while fewer responses are queued and in flight, so it comes
      from registers, and with ``rd_data`` always ready one read is accepted every cycle.
    - ``rd_data``: the response of each read, in request order, from ``latency`` cycles after
      its transfer; ``valid`` and the payload (registers) hold until ``ready``. ``pending`` is high
      while a response is queued or in flight.
    - ``wr``: always ready; a write transfers on every cycle with ``wr.valid`` and changes the banks
      at the end of that cycle. Lane ``l`` is written if ``mask[l]`` is set.
    - Ordering: a read sees every write transferred on the cycle of its transfer or earlier. A lane
      whose word is written on the cycle after the read's transfer (the cycle the banks are read)
      is undefined (block RAM leaves it so, and emulating old data would cost logic in every
      bank); the other lanes are not affected. A queued response keeps the data read, whatever is
      written meanwhile.

    A read request's arithmetic is registered halfway (the lanes' steps, then their rotation and
    one addition); a write request's (two additions deep) is combinational from the ``wr`` payload
    to the banks: drive it from registers.

    Parameters
    ----------
    banks : int
        Number of banks ``B``, a power of two; also the lanes of an access.
    depth : int
        Words per bank.
    width : int
        Bits of each signed word (default 16).
    tag_width : int
        Bits of ``tag`` carried from ``rd`` to ``rd_data`` (default 2).

    Attributes
    ----------
    rd : In(stream.Signature(ReadRequest))
        Read requests.
    rd_data : Out(stream.Signature(ReadResponse))
        Read responses: ``data[l]`` is lane ``l``.
    pending : Out(1)
        A response is queued or in flight.
    wr : In(stream.Signature(WriteRequest))
        Write requests.
    layout : Layout
        The mapping of matrices to banks.
    copy : bool
        Copy each bank's word into a register of its own before the rotation (default ``False``):
        a cycle more of latency and one more response queued, for parts whose block RAMs lie far
        from the logic they feed.
    latency : int
        Cycles from a read's transfer to its response: 3, or 4 with ``copy``.

    Raises
    ------
    ValueError
        If a parameter is out of range.
    """

    def __init__(self, banks: int, depth: int, width: int = 16, tag_width: int = 2, copy: bool = False):
        if not isinstance(banks, int) or banks < 1 or banks & (banks - 1):
            raise ValueError(f"banks must be a positive power of two, not {banks!r}")
        for name, value in (("depth", depth), ("width", width), ("tag_width", tag_width)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(copy, bool):
            raise ValueError(f"copy must be True or False, not {copy!r}")
        self.banks, self.depth, self.width, self.tag_width = banks, depth, width, tag_width
        self.copy, self.latency, self.queue = copy, 3 + copy, 4 + copy
        self.layout = Layout(banks)
        super().__init__({
            "rd": In(stream.Signature(ReadRequest(banks, depth, tag_width))),
            "rd_data": Out(stream.Signature(ReadResponse(banks, width, tag_width))), "pending": Out(1),
            "wr": In(stream.Signature(WriteRequest(banks, depth, width))),
        })

    def elaborate(self, platform):
        m = Module()
        banks = []
        for b in range(self.banks):
            # ``no_rw_check``: a read colliding with a write returns anything. Yosys applies it to
            # the register it merges into the block RAM's read port, hence the asynchronous port and
            # a register without reset.
            memory = Memory(shape=signed(self.width), depth=self.depth, init=[], attrs={"no_rw_check": 1})
            m.submodules[f"bank_{b}"] = memory
            banks.append((memory.read_port(domain="comb"), memory.write_port()))

        # Reads: a request's start, lane steps and rotation are registered as it transfers, and its
        # banks read the cycle after; each bank's word is registered every cycle (the block RAM's own
        # register), with ``copy`` copied the cycle after (the block RAM's slow output then runs to
        # no logic), and a request's words, rotated into access order, enter the queue the cycle
        # after that. The queue is a ring: a response is written at ``tail`` and offered from
        # ``head``, so taking one moves a pointer and no data.
        rd, out = self.rd, self.rd_data
        addresses, rotation, _ = self._addresses(m, rd.payload, "rd", registered=True)
        words = [Signal(signed(self.width), name=f"rd_word_{b}", reset_less=True) for b in range(self.banks)]
        for (read, _), address, word in zip(banks, addresses, words, strict=True):
            m.d.comb += read.addr.eq(address)
            m.d.sync += word.eq(read.data)
        if self.copy:
            words = [_registered(m, word, f"rd_copy_{b}") for b, word in enumerate(words)]
        stages = self.latency - 1        # cycles from a request's transfer to its words' rotation
        tag, held_rotation = rd.payload.tag, rotation
        for n in range(stages):
            tag = _registered(m, tag, f"rd_tag_{n}")
        for n in range(stages - 1):
            held_rotation = _registered(m, held_rotation, f"rd_held_rotation_{n}")
        response = ReadResponse(self.banks, self.width, self.tag_width)
        arriving = Signal(response)
        m.d.comb += [arriving.data[lane].eq(value)
                     for lane, value in enumerate(_rotate(m, words, held_rotation, "rd_lane"))]
        m.d.comb += arriving.tag.eq(tag)
        entries = [Signal(response, name=f"rd_entry_{e}", reset_less=True) for e in range(self.queue)]
        flight = Signal(stages)                         # flight[n]: a request n + 1 cycles on
        count = Signal(range(self.queue + 1))
        room = Signal(range(self.queue + 1), init=self.queue)    # queue − count − requests in flight
        head, tail = Signal(range(self.queue)), Signal(range(self.queue))
        taken = out.valid & out.ready
        m.d.comb += [rd.ready.eq(room != 0), out.valid.eq(count != 0),
                     self.pending.eq(flight.any() | (count != 0))]
        m.d.sync += room.eq(room - (rd.valid & rd.ready) + taken)
        with m.Switch(head):
            for e, entry in enumerate(entries):
                with m.Case(e):
                    m.d.comb += out.payload.eq(entry)
        m.d.sync += [flight.eq(Cat(rd.valid & rd.ready, flight[:-1])), count.eq(count + flight[-1] - taken)]
        with m.If(flight[-1]):
            with m.Switch(tail):
                for e, entry in enumerate(entries):
                    with m.Case(e):
                        m.d.sync += entry.eq(arriving)
            m.d.sync += tail.eq(_next(tail, self.queue))
        with m.If(taken):
            m.d.sync += head.eq(_next(head, self.queue))

        # Writes: lanes and their enables rotated into bank order.
        wr = self.wr
        addresses, _, back = self._addresses(m, wr.payload, "wr")
        enables = [wr.valid & wr.payload.mask[lane] for lane in range(self.banks)]
        m.d.comb += wr.ready.eq(1)
        data_in = _rotate(m, list(wr.payload.data), back, "wr_data")
        enable_in = _rotate(m, enables, back, "wr_en")
        for (_, write), address, value, enable in zip(banks, addresses, data_in, enable_in, strict=True):
            m.d.comb += [write.addr.eq(address), write.data.eq(value), write.en.eq(enable)]
        return m

    def _addresses(self, m: Module, request, name: str, registered: bool = False):
        """Per-bank addresses of ``request`` and its rotation ``r`` (bank ``b`` serves lane
        ``(b − r) mod B``) and ``−r mod B``; with ``registered``, those of the request of the cycle
        before: the start, the lanes' steps and the rotations are registered on the way."""
        count, shift = self.banks, self.layout.shift
        bits = max(1, ceil_log2(self.depth))
        terms = m.d.sync if registered else m.d.comb
        column = request.mode == Mode.COLUMN
        low = request.q[:shift]                          # q mod B of lane 0
        rotation_bits = max(1, shift)                    # avoids zero-width signals when B = 1
        start = Signal(bits, name=f"{name}_start", reset_less=True)    # address of lane 0
        rotation = Signal(rotation_bits, name=f"{name}_rotation", reset_less=True)
        back = Signal(rotation_bits, name=f"{name}_back", reset_less=True)
        turn = request.skew + request.q
        terms += [start.eq(request.row + (request.q >> shift)), rotation.eq(turn[:shift]),
                  back.eq((-turn)[:shift])]
        # Lane l's step from the start: column, l rows down; row, a carry once q mod B + l wraps a
        # pitch. Rotated into bank order: bank b serves lane (b − r) mod B.
        steps = [Signal(bits, name=f"{name}_lane_step_{lane}", reset_less=True) for lane in range(count)]
        terms += [step.eq(Mux(column, times(request.pitch, lane, bits), low >= count - lane))
                  for lane, step in enumerate(steps)]
        addresses = []
        for bank, step in enumerate(_rotate(m, steps, back, f"{name}_bank_step")):
            address = Signal(bits, name=f"{name}_address_{bank}")
            m.d.comb += address.eq(start + step)
            addresses.append(address)
        return addresses, rotation, back


def flat_word(request, addr) -> list:
    """Make ``request`` the access of the host's flat word ``addr``: ROW, row 0 at address 0, ``q = addr``."""
    return [request.mode.eq(Mode.ROW), request.row.eq(0), request.skew.eq(0), request.q.eq(addr)]


def times(value, factor: int, bits: int):
    """``value · factor`` modulo ``2**bits`` for a constant ``factor ≥ 0``, by shifts and adds."""
    total = 0
    for i in range(factor.bit_length()):
        if factor >> i & 1:
            total = (total + (value << i))[:bits]
    return total


def _registered(m: Module, value, name: str):
    """``value`` one cycle later, in a register without reset."""
    register = Signal.like(value, name=name, reset_less=True)
    m.d.sync += register.eq(value)
    return register


def _next(pointer, size: int):
    """``pointer + 1`` modulo ``size``."""
    return Mux(pointer == size - 1, 0, pointer + 1)


def _rotate(m: Module, values: list, amount, name: str) -> list:
    """``out[l] = values[(amount + l) mod n]`` for ``n = len(values)``, by ``log2 n`` stages of 2:1 muxes."""
    shape = Value.cast(values[0]).shape()
    for stage in range((len(values) - 1).bit_length()):
        turned = [Signal(shape, name=f"{name}_{stage}_{lane}") for lane in range(len(values))]
        m.d.comb += [out.eq(Mux(amount[stage], values[(lane + (1 << stage)) % len(values)], values[lane]))
                     for lane, out in enumerate(turned)]
        values = turned
    return values
