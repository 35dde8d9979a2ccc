"""How the reports of :mod:`bench` and :mod:`lab` write figures: number formats, Markdown tables,
Jinja2 templates, and records (dataclasses) to and from JSON.

A report measures into records, judges them into further records, and renders a page from a
template (``bench/templates``, ``lab/templates``) with the filters below; the page's sentences live in
its template, the arithmetic in the records.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import jinja2

__all__ = ["percent", "points", "minutes", "ms", "us", "mhz", "mbaud", "series", "para", "bullet", "table",
           "render", "to_dict", "from_dict", "write_json", "read_json"]

WIDTH = 100
"""Column at which :func:`para` wraps prose."""
T = TypeVar("T")


# -- numbers and words -------------------------------------------------------------------------------


def percent(x: float, digits: int = 1) -> str:
    """A fraction as a percentage: ``percent(0.5) == "50.0 %"``."""
    return f"{100 * x:.{digits}f} %"


def points(x: float, digits: int = 2) -> str:
    """A difference of two fractions in signed percentage points: ``points(-0.01) == "-1.00"``."""
    return f"{100 * x:+.{digits}f}"


def minutes(seconds: float, digits: int = 1) -> str:
    """Seconds in minutes: ``minutes(90) == "1.5 min"``."""
    return f"{seconds / 60:.{digits}f} min"


def ms(seconds: float, digits: int = 2) -> str:
    """Seconds in milliseconds: ``ms(0.0012) == "1.20 ms"``."""
    return f"{1e3 * seconds:.{digits}f} ms"


def us(seconds: float, digits: int = 0) -> str:
    """Seconds in microseconds, with thousands separated: ``us(0.0012) == "1,200 µs"``."""
    return f"{1e6 * seconds:,.{digits}f} µs"


def mhz(hz: float) -> str:
    return f"{hz / 1e6:g} MHz"


def mbaud(baud: float, unit: str = "Mbaud") -> str:
    return f"{baud / 1e6:g} {unit}"


def series(items: list[str]) -> str:
    """``a, b and c``."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def para(text: str, first: str = "", rest: str = "") -> str:
    """``text`` refilled at :data:`WIDTH` columns, never between a number and its ``%``."""
    text = " ".join(text.split()).replace(" %", "\u00a0%")
    return textwrap.fill(text, WIDTH, initial_indent=first, subsequent_indent=rest)


def bullet(text: str) -> str:
    """``text`` as a Markdown bullet, refilled like :func:`para`."""
    return para(text, "- ", "  ")


def table(head: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A Markdown table, the first ``left`` columns left-aligned and the others right-aligned."""
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * left + " ---: |" * (len(head) - left)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


# -- templates ---------------------------------------------------------------------------------------


@cache
def _environment(folder: Path) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                             autoescape=False)
    env.filters.update(pct=percent, points=points, minutes=minutes, ms=ms, us=us, mhz=mhz, mbaud=mbaud,
                       series=series, para=para, bullet=bullet, fmt=format)
    return env


def render(folder: Path, name: str, **context: Any) -> str:
    """Template ``name`` of ``folder`` filled with ``context``; a name it lacks is an error."""
    return _environment(folder).get_template(name).render(**context)


# -- records -----------------------------------------------------------------------------------------


def to_dict(record: Any) -> Any:
    """A record as JSON-able data: each dataclass as a dict of its fields, then of the properties it
    names in ``DERIVED`` (written for readers, never read back)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        names = [f.name for f in dataclasses.fields(record)] + list(getattr(record, "DERIVED", ()))
        return {name: to_dict(getattr(record, name)) for name in names}
    if isinstance(record, dict):
        return {str(key): to_dict(value) for key, value in record.items()}
    if isinstance(record, list | tuple):
        return [to_dict(value) for value in record]
    return record


def from_dict(kind: Any, data: Any) -> Any:
    """The record of type ``kind`` that :func:`to_dict` wrote as ``data``.

    Raises
    ------
    ValueError
        If ``data`` has a key that is neither a field nor ``DERIVED`` of its dataclass.
    """
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        fields = {f.name: f for f in dataclasses.fields(kind)}
        unknown = set(data) - set(fields) - set(getattr(kind, "DERIVED", ()))
        if unknown:
            raise ValueError(f"{kind.__name__} has no field {', '.join(sorted(unknown))}: "
                             f"the record was written by another version of the code")
        return kind(**{name: from_dict(hints[name], value) for name, value in data.items()
                       if name in fields and fields[name].init})
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return None if data is None else from_dict(next(a for a in args if a is not type(None)), data)
    if origin is list:
        return [from_dict(args[0], value) for value in data]
    if origin is tuple:
        return tuple(from_dict(args[0], value) for value in data)
    if origin is dict:
        return {args[0](key): from_dict(args[1], value) for key, value in data.items()}
    return data


def write_json(path: Path, record: Any) -> None:
    """Write ``record`` to ``path`` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_dict(record), indent=1, ensure_ascii=True) + "\n")


def read_json(path: Path, kind: type[T]) -> T:
    """The record of type ``kind`` in ``path`` (written by :func:`write_json`)."""
    return from_dict(kind, json.loads(path.read_text()))
