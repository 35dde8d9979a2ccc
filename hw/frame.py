"""The link's frame format: the one definition shared by the gateware, the golden model and the host.

A frame before encoding is ``type:u8, seq:u8, length:u16 LE, payload[length], crc:u16 LE``, where the
CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR) over
``type`` up to the end of ``payload``. On the wire the frame is COBS-encoded and followed by one
0x00 delimiter, so a receiver resynchronises at the next 0x00 whatever came before it. See
``docs/link.md`` for diagrams and the error rules.
"""

from __future__ import annotations

import binascii
import enum
from dataclasses import dataclass

__all__ = [
    "HEADER_FIELDS", "HEADER_BYTES", "CRC_BYTES", "CRC_POLY", "CRC_INIT", "MAX_PAYLOAD", "COBS_RUN",
    "ERROR_FIELDS", "ERROR_PAYLOAD_BYTES", "SEQ_KNOWN",
    "FrameType", "ErrorCode", "FrameError", "Frame",
    "crc16", "cobs_encode", "cobs_decode", "encode_frame", "decode_frame",
    "error_payload", "parse_error_payload", "encode_error",
]

HEADER_FIELDS = (("type", 8), ("seq", 8), ("length", 16))
"""Header fields in wire order, ``(name, bits)``; multi-byte fields are little-endian."""
HEADER_BYTES = 4
CRC_BYTES = 2
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
MAX_PAYLOAD = 1024
"""Default frame buffer size of the receiver, in payload bytes."""
COBS_RUN = 254
"""Longest run of non-zero bytes one COBS code byte (0xFF) covers."""
ERROR_FIELDS = (("code", 8), ("flags", 8), ("seq", 8))
"""Fields of an ERROR reply's payload, in wire order."""
ERROR_PAYLOAD_BYTES = 3
SEQ_KNOWN = 0x01
"""Bit of the error payload's ``flags`` byte: ``seq`` holds the offending frame's sequence number."""


class FrameType(enum.IntEnum):
    """Frame types the link itself uses; 0x00..0xFE belong to the controller's instruction set."""

    ERROR = 0xFF


class ErrorCode(enum.IntEnum):
    """The ``code`` byte of an ERROR reply."""

    BAD_CRC = 0x01
    """The CRC does not match the bytes received."""
    TRUNCATED = 0x02
    """Malformed COBS (the frame ended inside a block), or fewer than header + CRC bytes."""
    LENGTH_MISMATCH = 0x03
    """The CRC is good but the length field differs from the payload bytes received."""
    OVERSIZED = 0x04
    """The length field, or the bytes received, exceed the receiver's buffer."""
    UNKNOWN_TYPE = 0x05
    """A type the controller does not implement (sent by the controller, not the link)."""
    BAD_ARGUMENT = 0x06
    """A command whose arguments the controller rejects: an address past a buffer, a wrong payload
    size (sent by the controller, not the link)."""


class FrameError(ValueError):
    """A frame the receiver rejects: ``code`` is an :class:`ErrorCode`, ``seq`` its sequence number.

    ``seq`` is ``None`` when fewer than two decoded bytes arrived. For ``BAD_CRC`` the sequence
    number is the one received, unverified.
    """

    def __init__(self, code: ErrorCode, seq: int | None):
        self.code, self.seq = ErrorCode(code), seq
        super().__init__(f"{self.code.name} (seq {seq})")


@dataclass(frozen=True)
class Frame:
    """A verified frame."""

    type: int
    seq: int
    payload: bytes


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value 0x29B1 for ``b"123456789"``): the standard
    library's ``crc_hqx`` started at :data:`CRC_INIT`; the gateware's is :func:`hw.link.crc16_step`."""
    return binascii.crc_hqx(bytes(data), CRC_INIT)


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data`` (without the 0x00 delimiter).

    A run of 254 non-zero bytes takes code 0xFF; when the data ends right after such a run no
    empty block follows (``b"\\x01" * 254`` encodes to 255 bytes).
    """
    out, block, final = bytearray(), bytearray(), True
    for byte in bytes(data):
        final = True
        if byte == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
        else:
            block.append(byte)
            if len(block) == COBS_RUN:
                out += b"\xff" + block
                block.clear()
                final = False
    if final:
        out += bytes([len(block) + 1]) + block
    return bytes(out)


def _cobs_decode(data: bytes) -> tuple[bytes, bool]:
    """Decode as far as possible: the bytes decoded and whether ``data`` was well formed."""
    out, remaining, zero_pending = bytearray(), 0, False
    for byte in data:
        if byte == 0:
            return bytes(out), False
        if remaining == 0:
            if zero_pending:
                out.append(0)
            remaining, zero_pending = byte - 1, byte != 0xFF
        else:
            out.append(byte)
            remaining -= 1
    return bytes(out), remaining == 0 and len(data) > 0


def cobs_decode(data: bytes) -> bytes:
    """Decode COBS ``data`` (without the delimiter).

    Raises
    ------
    ValueError
        If ``data`` is empty, contains 0x00, or ends inside a block.
    """
    data = bytes(data)
    if not data:
        raise ValueError("COBS data is empty: even an empty message encodes to b'\\x01'")
    if 0 in data:
        raise ValueError(f"COBS data contains 0x00 at offset {data.index(0)}")
    out, ok = _cobs_decode(data)
    if not ok:
        raise ValueError(f"COBS data of {len(data)} bytes ends inside a block "
                         f"(truncated after {len(out)} decoded bytes)")
    return out


def encode_frame(type: int, seq: int, payload: bytes) -> bytes:
    """The wire bytes of a frame, delimiter included.

    Raises
    ------
    ValueError
        If ``type`` or ``seq`` is not a byte or the payload is longer than 65535 bytes.
    """
    payload = bytes(payload)
    if not 0 <= type <= 0xFF:
        raise ValueError(f"frame type {type} is not a byte")
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"sequence number {seq} is not a byte")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit the 16-bit length field")
    body = bytes([type, seq]) + len(payload).to_bytes(2, "little") + payload
    return cobs_encode(body + crc16(body).to_bytes(2, "little")) + b"\x00"


def decode_frame(wire: bytes, max_payload: int = MAX_PAYLOAD) -> Frame:
    """Check and decode one frame's wire bytes (without the delimiter) as the receiver does.

    The checks, first failing one wins: OVERSIZED (length field or decoded bytes beyond
    ``max_payload``), TRUNCATED (malformed COBS, or fewer than 6 decoded bytes), BAD_CRC,
    LENGTH_MISMATCH.

    Raises
    ------
    FrameError
        With the code of the failed check and the sequence number when at least two bytes decoded.
    """
    body, ok = _cobs_decode(bytes(wire))
    seq = body[1] if len(body) >= 2 else None
    overhead = HEADER_BYTES + CRC_BYTES
    length = int.from_bytes(body[2:4], "little") if len(body) >= HEADER_BYTES else None
    if (length is not None and length > max_payload) or len(body) > max_payload + overhead:
        raise FrameError(ErrorCode.OVERSIZED, seq)
    if not ok or len(body) < overhead:
        raise FrameError(ErrorCode.TRUNCATED, seq)
    if crc16(body[:-CRC_BYTES]) != int.from_bytes(body[-CRC_BYTES:], "little"):
        raise FrameError(ErrorCode.BAD_CRC, seq)
    if length != len(body) - overhead:
        raise FrameError(ErrorCode.LENGTH_MISMATCH, seq)
    return Frame(body[0], seq, body[HEADER_BYTES:-CRC_BYTES])


def error_payload(code: ErrorCode, seq: int | None) -> bytes:
    """Payload of an ERROR reply: ``code:u8, flags:u8, seq:u8`` (``flags`` bit 0: ``seq`` known)."""
    return bytes([int(code), 0, 0]) if seq is None else bytes([int(code), SEQ_KNOWN, seq])


def parse_error_payload(payload: bytes) -> tuple[ErrorCode, int | None]:
    """Inverse of :func:`error_payload`.

    Raises
    ------
    ValueError
        If the payload is not 3 bytes or the code is unknown.
    """
    if len(payload) != ERROR_PAYLOAD_BYTES:
        raise ValueError(f"error payload of {len(payload)} bytes, expected {ERROR_PAYLOAD_BYTES}")
    return ErrorCode(payload[0]), payload[2] if payload[1] & SEQ_KNOWN else None


def encode_error(code: ErrorCode, seq: int | None) -> bytes:
    """Wire bytes of an ERROR reply; its header ``seq`` is the offending frame's, or 0 if unknown."""
    return encode_frame(FrameType.ERROR, 0 if seq is None else seq, error_payload(code, seq))
