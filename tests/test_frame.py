"""The frame format of ``hw/frame.py``: CRC, COBS and frame checks, in plain Python."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hw.frame import (
    COBS_RUN,
    ErrorCode,
    Frame,
    FrameError,
    FrameType,
    cobs_decode,
    cobs_encode,
    crc16,
    decode_frame,
    encode_error,
    encode_frame,
    error_payload,
    parse_error_payload,
)

# Byte strings rich in the cases COBS cares about: zeros, and runs around 254 non-zero bytes.
chunks = st.one_of(
    st.binary(max_size=20),
    st.integers(1, 600).map(lambda n: b"\x00" * n),
    st.sampled_from([252, 253, 254, 255, 256, 508, 509]).map(lambda n: bytes(1 + k % 255 for k in range(n))),
)
messages = st.lists(chunks, max_size=5).map(b"".join)


def body(type_, seq, length, payload):
    return bytes([type_, seq]) + length.to_bytes(2, "little") + payload


def wire(data: bytes) -> bytes:
    """Frame bytes (before COBS) with a good CRC appended, encoded, without the delimiter."""
    return cobs_encode(data + crc16(data).to_bytes(2, "little"))


def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


@given(messages)
def test_cobs_round_trip(data):
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + 1 + len(data) // COBS_RUN
    assert cobs_decode(encoded) == data


def test_cobs_known_encodings():
    assert cobs_encode(b"") == b"\x01"
    assert cobs_encode(b"\x00") == b"\x01\x01"
    assert cobs_encode(b"\x11\x00\x22") == b"\x02\x11\x02\x22"
    run = bytes(range(1, 255))
    assert cobs_encode(run) == b"\xff" + run
    assert cobs_encode(run + b"\x00") == b"\xff" + run + b"\x01\x01"
    assert cobs_encode(run + b"\x55") == b"\xff" + run + b"\x02\x55"


@pytest.mark.parametrize("data,match", [(b"", "empty"), (b"\x02\x00\x01", "0x00 at offset 1"),
                                        (b"\x03\x11", "ends inside a block"),
                                        (b"\xff" + b"\x01" * 10, "ends inside a block")])
def test_cobs_malformed(data, match):
    with pytest.raises(ValueError, match=match):
        cobs_decode(data)


@given(st.integers(0, 255), st.integers(0, 255), messages.filter(lambda m: len(m) <= 1024))
def test_frame_round_trip(type_, seq, payload):
    encoded = encode_frame(type_, seq, payload)
    assert encoded[-1] == 0 and 0 not in encoded[:-1]
    assert decode_frame(encoded[:-1]) == Frame(type_, seq, payload)


def test_encode_rejects_bad_fields():
    with pytest.raises(ValueError, match="type 256"):
        encode_frame(256, 0, b"")
    with pytest.raises(ValueError, match="sequence number -1"):
        encode_frame(0, -1, b"")
    with pytest.raises(ValueError, match="65536 bytes"):
        encode_frame(0, 0, bytes(65536))


@pytest.mark.parametrize("encoded,code,seq", [
    (b"", ErrorCode.TRUNCATED, None),
    (b"\x01", ErrorCode.TRUNCATED, None),
    (cobs_encode(b"\x07"), ErrorCode.TRUNCATED, None),
    (cobs_encode(b"\x07\x09\x00\x00\x00"), ErrorCode.TRUNCATED, 9),
    (wire(body(1, 9, 3, b"abc"))[:-1], ErrorCode.TRUNCATED, 9),
    (cobs_encode(body(1, 9, 3, b"abc") + b"\x00\x00"), ErrorCode.BAD_CRC, 9),
    (wire(body(1, 9, 4, b"abc")), ErrorCode.LENGTH_MISMATCH, 9),
    (wire(body(1, 9, 2, b"abc")), ErrorCode.LENGTH_MISMATCH, 9),
    (wire(body(1, 9, 17, b"abc")), ErrorCode.OVERSIZED, 9),
    (wire(body(1, 9, 16, bytes(17))), ErrorCode.OVERSIZED, 9),
    (cobs_encode(body(1, 9, 17, b"")), ErrorCode.OVERSIZED, 9),
])
def test_decode_errors(encoded, code, seq):
    with pytest.raises(FrameError) as info:
        decode_frame(encoded, max_payload=16)
    assert (info.value.code, info.value.seq) == (code, seq)


def test_max_payload_is_accepted():
    assert decode_frame(wire(body(1, 2, 16, bytes(16))), max_payload=16).payload == bytes(16)


@pytest.mark.parametrize("seq", [None, 0, 200])
def test_error_reply(seq):
    assert parse_error_payload(error_payload(ErrorCode.BAD_CRC, seq)) == (ErrorCode.BAD_CRC, seq)
    reply = decode_frame(encode_error(ErrorCode.OVERSIZED, seq)[:-1])
    assert (reply.type, reply.seq) == (FrameType.ERROR, seq or 0)
    assert parse_error_payload(reply.payload) == (ErrorCode.OVERSIZED, seq)
    with pytest.raises(ValueError, match="2 bytes"):
        parse_error_payload(b"\x01\x00")
