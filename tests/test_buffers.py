"""Buffers: the golden model against the layout; the gateware against the model (``sim/tb_buffers.py``)."""

import numpy as np
import pytest

from hw.buffers import Buffer, ReadRequest, ReadResponse, WriteRequest
from hw.isa import Mode
from hw.layout import Layout
from sim.buffers import BufferModel
from sim.runner import run

DEPTH = 256


def fields(layout) -> dict:
    return {name: [field.offset, field.width] for name, field in layout}


def test_model_reads_rows_and_columns_of_a_stored_matrix():
    rng = np.random.default_rng(3)
    for banks in (1, 2, 4, 8):
        model = BufferModel(banks, 64)
        layout = Layout(banks)
        matrix = rng.integers(-2**15, 2**15, (5, 11))
        base, pitch = 7, layout.pitch(11)
        layout.store(matrix, base, model.image)
        for p in range(5):
            for q in range(11):
                row = model.read(Mode.ROW, base, pitch, p, q)
                column = model.read(Mode.COLUMN, base, pitch, p, q)
                assert np.array_equal(row[:11 - q], matrix[p, q:q + banks])
                assert np.array_equal(column[:5 - p], matrix[p:p + banks, q])


def test_model_writes_masked_lanes_and_host_words():
    model = BufferModel(4, 16)
    model.write(Mode.ROW, 2, 3, 1, 2, [1, 2, 3, 4], [1, 0, 1, 1])
    assert list(model.read(Mode.ROW, 2, 3, 1, 2)) == [1, 0, 3, 4]
    model.write(Mode.COLUMN, 2, 3, 0, 3, [5, 6, 7, 8], [0, 1, 0, 0])
    assert model.read(Mode.ROW, 2, 3, 1, 3)[0] == 6
    model.write(Mode.ROW, 0, 5, 0, 9, [-1, -2, -3, -4], [1, 0, 0, 0])   # host word 9
    assert list(model.read(Mode.ROW, 0, 5, 0, 8)) == [0, -1, 0, 0]
    assert model.image[1, 2] == -1                          # word 9: bank 1, address 2


def test_model_wraps_addresses_like_the_hardware_and_refuses_undefined_ones():
    model = BufferModel(4, 16)
    model.write(Mode.ROW, 0, 0, 0, 63, [9, 0, 0, 0], [1, 0, 0, 0])
    assert list(model.read(Mode.ROW, 0, 0, 0, 62)) == [0, 9, 0, 0]   # words 64, 65 wrap to 0, 1
    with pytest.raises(IndexError, match="depth 12"):
        BufferModel(4, 12).read(Mode.COLUMN, 0, 4, 0, 0)


def test_rejects_bad_parameters():
    for kwargs, message in (({"banks": 3}, "banks must be a positive power of two, not 3"),
                            ({"banks": 0}, "not 0"),
                            ({"depth": 0}, "depth must be a positive integer, not 0"),
                            ({"width": "16"}, "width must be a positive integer, not '16'"),
                            ({"tag_width": 0}, "tag_width"),
                            ({"copy": 1}, "copy must be True or False, not 1")):
        with pytest.raises(ValueError, match=message):
            Buffer(**{"banks": 4, "depth": 16, **kwargs})


def test_request_layouts():
    assert fields(ReadRequest(4, 256, 2)) == {"mode": [0, 1], "row": [1, 8], "skew": [9, 2],
                                              "q": [11, 10], "pitch": [21, 8], "tag": [29, 2]}
    assert fields(WriteRequest(4, 256, 16))["data"] == [29, 64]
    assert fields(ReadResponse(4, 16, 2)) == {"data": [0, 64], "tag": [64, 2]}
    assert [m.value for m in Mode] == [0, 1] and Mode.as_shape().width == 1


@pytest.mark.sim
@pytest.mark.parametrize(("banks", "copy"), [(1, False), (4, False), (8, True)])
def test_buffer(banks, copy):
    dut = Buffer(banks, DEPTH, copy=copy)
    run(dut, f"buffer_{banks}x{DEPTH}{'_copy' if copy else ''}", "sim.tb_buffers",
        {"banks": banks, "depth": DEPTH, "width": dut.width, "tag_width": dut.tag_width,
         "latency": dut.latency, "rd": fields(ReadRequest(banks, DEPTH, dut.tag_width)),
         "wr": fields(WriteRequest(banks, DEPTH, dut.width)),
         "rd_data": fields(ReadResponse(banks, dut.width, dut.tag_width))})
