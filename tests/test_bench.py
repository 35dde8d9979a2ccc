"""The benchmark table's formatting (``make bench`` itself is not part of ``make test``)."""

from bench.table import Row, markdown, text, verdict


def test_verdicts():
    assert (verdict(True), verdict(False), verdict(None)) == ("pass", "SHORT", "—")


def test_tables_hold_every_row_and_escape_pipes():
    rows = [Row("a | b", "≥ 90 %", "95.0 %", verdict(True), "python -m bench"),
            Row("c", "", "n/a", verdict(None), "")]
    md = markdown(rows).splitlines()
    assert len(md) == 4 and md[2] == "| a \\| b | ≥ 90 % | 95.0 % | pass | `python -m bench` |"
    assert md[3].endswith("| — |  |")
    plain = text(rows).splitlines()
    assert len(plain) == 4
    assert plain[2].index("≥ 90 %") == plain[0].index("target")
