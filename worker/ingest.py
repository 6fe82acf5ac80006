"""Subscriptions from a file: CSV or JSON Lines, parsed and validated row by row. No Redis.

Every row names one subscription by the same fields as ``billing subscriptions create``:

* required: ``id``, ``customer``, ``amount`` (a plain decimal, ``"9.99"``), ``currency``,
  and the card reference of the row's gateway: ``stored_id`` (TXPG) or ``parent_order``
  (Bizon);
* optional: ``gateway`` (``txpg``, the default, or ``bizon``), the other gateway's card
  reference (used by a configured fallback gateway), ``description``, ``language``;
* the schedule, named as in the cadence mapping (see :mod:`worker.periods`): ``cadence``,
  ``interval``, ``anchor_day``, ``anchor``, ``weekday``, ``expr``, ``charge_time``,
  ``timezone``, ``start``, ``trial_end``, ``end``. No schedule at all means the subscription
  is charged only when asked (``billing charge``); ``start`` is never defaulted here, so
  importing the same file again on another day changes nothing;
* ``metadata``: in JSON Lines an object of text values; in CSV one column per key, named
  ``metadata.KEY``.

A row is valid when :meth:`Subscription.create` accepts it and, when it has a schedule,
:func:`~worker.periods.parse_cadence` does too. The rules of the two formats:

* **CSV** (``.csv``, UTF-8, an optional BOM): a header row names the columns. An unknown,
  repeated or missing required column refuses the whole file (:class:`FileRefused`), since
  it would make every row wrong. An empty cell is a field left out (CSV cannot tell the two
  apart). A row with more or fewer cells than the header is invalid; a quoting error refuses
  the file, as where the next row starts is then unknown.
* **JSON Lines** (``.jsonl``): one JSON object per line; blank lines are ignored. Values are
  text; ``stored_id``, ``parent_order``, ``interval`` and ``anchor_day`` may also be whole
  numbers. Amounts must be text: a JSON number such as ``9.99`` is a float, and money is
  never a float. Unknown or repeated keys make the row invalid.

Line numbers are the file's own, from 1 (a CSV header is line 1), and point at the first line
of the row. Two rows with the same id are fine when they say the same thing (the later one is
a duplicate); otherwise the later row is invalid.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.errors import InvalidInput
from worker.periods import CadenceKind, parse_cadence
from worker.subscriptions import Subscription

REQUIRED = ("id", "customer", "amount", "currency")
#: The card references: a row needs its gateway's (``stored_id`` on TXPG, the default;
#: ``parent_order`` on Bizon) and may hold the other's.
CARDS = ("stored_id", "parent_order")
OPTIONAL = ("gateway", "description", "language")
SCHEDULE = (
    "cadence",
    "interval",
    "anchor_day",
    "anchor",
    "weekday",
    "expr",
    "charge_time",
    "timezone",
    "start",
    "trial_end",
    "end",
)
METADATA = "metadata"
METADATA_PREFIX = "metadata."
#: Every field a row may have (CSV adds ``metadata.KEY`` columns, JSON Lines a ``metadata``).
FIELDS = frozenset(REQUIRED + CARDS + OPTIONAL + SCHEDULE)
#: Fields that JSON Lines may give as whole numbers; they are stored as their decimal text.
_WHOLE_NUMBERS = frozenset({"stored_id", "parent_order", "interval", "anchor_day"})
#: The file formats, by extension.
FORMATS = (".csv", ".jsonl")


class FileRefused(InvalidInput):
    """The file as a whole cannot be read (format, encoding, header): no row is looked at."""


@dataclass(frozen=True, slots=True)
class Row:
    """A valid row: the subscription it describes, and where it was."""

    line: int
    subscription: Subscription


@dataclass(frozen=True, slots=True)
class BadRow:
    """An invalid row: where, why, and its id when it had a readable one."""

    line: int
    reason: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    """A file, read. ``rows`` has one entry per subscription id, in file order."""

    rows: tuple[Row, ...]
    duplicates: tuple[Row, ...]  #: later rows equal to an earlier row with their id
    invalid: tuple[BadRow, ...]

    @property
    def total(self) -> int:
        """How many rows the file had."""
        return len(self.rows) + len(self.duplicates) + len(self.invalid)


def read_file(path: Path) -> Parsed:
    """Read a ``.csv`` or ``.jsonl`` file (by its extension); :class:`FileRefused` if unreadable."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise FileRefused(
            f"{path.name}: unknown file type {suffix or '(none)'!r}: use .csv or .jsonl"
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise FileRefused(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise FileRefused(f"{path.name} is not UTF-8 (byte {exc.start})") from None
    lines = io.StringIO(text, newline="")
    return parse_csv(lines) if suffix == ".csv" else parse_jsonl(lines)


def parse_csv(lines: Iterable[str]) -> Parsed:
    """Rows from CSV text with a header row (see the module's rules)."""
    reader = csv.reader(iter(lines), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise FileRefused(f"line 1: the header is not valid CSV: {exc}") from None
    if not header:
        raise FileRefused("line 1 must name the columns (a header row); it is empty")
    _check_header(header)
    return _collect(_csv_records(reader, header))


def parse_jsonl(lines: Iterable[str]) -> Parsed:
    """Rows from JSON Lines text: one object per line (see the module's rules)."""
    return _collect(jsonl_records(lines))


def build(record: Mapping[str, Any]) -> Subscription:
    """The subscription one row describes; :class:`InvalidInput` naming what is wrong.

    ``record`` holds the row's fields (see :data:`FIELDS`) and ``metadata``, a mapping.
    """
    unknown = sorted(set(record) - FIELDS - {METADATA})
    if unknown:
        raise InvalidInput(f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    card = "parent_order" if record.get("gateway") == "bizon" else "stored_id"
    needed = (*REQUIRED[:2], card, *REQUIRED[2:])
    missing = [name for name in needed if record.get(name) in (None, "")]
    if missing:
        raise InvalidInput(f"missing {', '.join(missing)}")
    values = {name: _whole_number(name, record[name]) for name in record if name != METADATA}
    cadence = {name: values[name] for name in SCHEDULE if name in values}
    for name, value in cadence.items():
        if not isinstance(value, str):
            raise InvalidInput(f"{name} must be text, not {json_type(value)}")
    if cadence and "cadence" not in cadence:
        kinds = ", ".join(kind.value for kind in CadenceKind)
        raise InvalidInput(f"{', '.join(cadence)} given without a cadence (one of {kinds})")
    metadata = record.get(METADATA, {})
    if not isinstance(metadata, Mapping):
        raise InvalidInput(f"metadata must be an object of text values, not {json_type(metadata)}")
    for name in ("gateway", "parent_order"):
        if name in values and not isinstance(values[name], str):
            raise InvalidInput(f"{name} must be text, not {json_type(values[name])}")
    sub = Subscription.create(
        id=values["id"],
        customer=values["customer"],
        stored_id=values.get("stored_id"),
        amount=values["amount"],
        currency=values["currency"],
        description=values.get("description", ""),
        language=values.get("language", "az"),
        gateway=values.get("gateway", "txpg"),
        cadence=cadence,
        metadata=metadata,
        parent_order=values.get("parent_order", ""),
    )
    if cadence:
        parse_cadence(cadence)
    return sub


# --- the formats ------------------------------------------------------------------------------


def _check_header(header: list[str]) -> None:
    seen: set[str] = set()
    repeated: list[str] = []
    unknown: list[str] = []
    for name in header:
        if name in seen:
            repeated.append(name)
        seen.add(name)
        known = name in FIELDS or (name.startswith(METADATA_PREFIX) and name != METADATA_PREFIX)
        if not known:
            unknown.append(name)
    if unknown:
        allowed = ", ".join((*REQUIRED, *CARDS, *OPTIONAL, *SCHEDULE, "metadata.KEY"))
        raise FileRefused(
            f"unknown column{'s' if len(unknown) > 1 else ''}: "
            f"{', '.join(repr(n) for n in unknown)} (allowed: {allowed})"
        )
    if repeated:
        raise FileRefused(
            f"column{'s' if len(repeated) > 1 else ''} given twice: {', '.join(repeated)}"
        )
    missing = [name for name in REQUIRED if name not in seen]
    if missing:
        raise FileRefused(f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    if not seen & set(CARDS):
        raise FileRefused("missing column: stored_id (or parent_order, for bizon rows)")


def _csv_records(reader: Any, header: list[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, record) for each CSV row, or (line, reason) for a row that cannot be read."""
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:  # a stray quote: where the following rows start is unknown
            raise FileRefused(f"line {line}: not valid CSV: {exc}") from None
        if cells is None:
            return
        if not cells or cells == [""] * len(cells):
            continue  # a blank line
        if len(cells) != len(header):
            yield line, f"has {len(cells)} cells, the header has {len(header)}"
            continue
        record: dict[str, Any] = {}
        metadata: dict[str, str] = {}
        for name, cell in zip(header, cells, strict=True):
            if cell == "":
                continue
            if name.startswith(METADATA_PREFIX):
                metadata[name.removeprefix(METADATA_PREFIX)] = cell
            else:
                record[name] = cell
        if metadata:
            record[METADATA] = metadata
        yield line, record


def jsonl_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Each non-blank line as ``(line number, object)``, or ``(line number, why not)``: a
    repeated key, NaN or Infinity, or anything but an object is refused. Shared by every
    JSON Lines import (subscriptions, payouts)."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text, object_pairs_hook=_no_repeats, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON: {exc.msg} (column {exc.colno})"
            continue
        except InvalidInput as exc:
            yield number, str(exc)
            continue
        if not isinstance(value, dict):
            yield number, f"must be a JSON object, not {json_type(value)}"
            continue
        yield number, value


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidInput(f"key {key!r} is given twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not a number")


def _whole_number(name: str, value: Any) -> Any:
    """JSON whole numbers for the fields that are numbers anyway, as text; the rest as is."""
    if name in _WHOLE_NUMBERS and type(value) is int:
        return str(value)
    if name == "amount" and not isinstance(value, str):
        raise InvalidInput(
            f'amount must be text like "9.99", not {json_type(value)}: '
            "a JSON number may not be exact"
        )
    return value


def json_type(value: object) -> str:
    """How a JSON value reads in an error message."""
    names = {bool: "true/false", int: "a number", float: "a number", list: "a list"}
    if value is None:
        return "null"
    return names.get(type(value), "an object" if isinstance(value, Mapping) else "text")


# --- validation -------------------------------------------------------------------------------


def _collect(records: Iterable[tuple[int, dict[str, Any] | str]]) -> Parsed:
    rows: list[Row] = []
    duplicates: list[Row] = []
    invalid: list[BadRow] = []
    first: dict[str, tuple[int, Subscription | None]] = {}  # id -> its first row
    for line, record in records:
        if isinstance(record, str):
            invalid.append(BadRow(line, record))
            continue
        raw_id = record.get("id")
        sub_id = raw_id if isinstance(raw_id, str) and raw_id else None
        try:
            sub: Subscription | None = build(record)
            reason = None
        except InvalidInput as exc:
            sub, reason = None, str(exc)
        earlier = first.get(sub_id) if sub_id is not None else None
        if earlier is not None:
            earlier_line, earlier_sub = earlier
            if sub is not None and sub == earlier_sub:
                duplicates.append(Row(line, sub))
                continue
            if reason is None:
                state = "which is invalid" if earlier_sub is None else "with different values"
                reason = f"id {sub_id} is already on line {earlier_line}, {state}"
        elif sub_id is not None:
            first[sub_id] = (line, sub)
        if reason is not None:
            invalid.append(BadRow(line, reason, sub_id))
        elif sub is not None:
            rows.append(Row(line, sub))
    return Parsed(tuple(rows), tuple(duplicates), tuple(invalid))
