"""Golden model of the link (:class:`hw.link.Link`) at its byte streams, built on :mod:`hw.frame`."""

from __future__ import annotations

from dataclasses import dataclass

from hw.frame import MAX_PAYLOAD, ErrorCode, Frame, FrameError, decode_frame, encode_error, encode_frame

__all__ = ["ErrorReply", "LinkModel"]


@dataclass(frozen=True)
class ErrorReply:
    """An ERROR reply the link sends by itself, with its wire bytes (delimiter included)."""

    code: ErrorCode
    seq: int | None
    wire: bytes


class LinkModel:
    """The link as the controller and the host see it: wire bytes in, frames and error replies out.

    Feed it any bytes, in pieces of any size. Every 0x00 ends a frame: a good one comes out as a
    :class:`hw.frame.Frame` (what the RTL offers on ``rx_hdr``/``rx_data``), a bad one as an
    :class:`ErrorReply` carrying the exact bytes the RTL sends on ``o``. Empty frames are ignored.
    Replies of the controller are encoded by :meth:`reply`, bit for bit as the RTL's transmitter.

    Parameters
    ----------
    max_payload : int
        Payload bytes of the receiver's frame buffer.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.max_payload = max_payload
        self._frame = bytearray()

    def feed(self, wire: bytes) -> list[Frame | ErrorReply]:
        """Consume wire bytes; returns the events of every frame they complete, in order."""
        events: list[Frame | ErrorReply] = []
        for byte in bytes(wire):
            if byte:
                self._frame.append(byte)
                continue
            if not self._frame:
                continue
            try:
                events.append(decode_frame(bytes(self._frame), self.max_payload))
            except FrameError as error:
                events.append(ErrorReply(error.code, error.seq, encode_error(error.code, error.seq)))
            self._frame.clear()
        return events

    @staticmethod
    def reply(type: int, seq: int, payload: bytes) -> bytes:
        """The wire bytes the link sends for a controller reply."""
        return encode_frame(type, seq, payload)
