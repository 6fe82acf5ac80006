"""Rows from CSV and JSON Lines: every row is validated as a whole, bad ones are named by line
and reason, an unreadable header refuses the file, and duplicates are told from conflicts.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import InvalidInput
from worker.ingest import (
    BadRow,
    FileRefused,
    Parsed,
    build,
    parse_csv,
    parse_jsonl,
    read_file,
)
from worker.money import Money
from worker.subscriptions import Subscription

HEADER = "id,customer,stored_id,amount,currency"
GOOD: dict[str, Any] = {
    "id": "sub_1",
    "customer": "cust_1",
    "stored_id": "5125",
    "amount": "9.99",
    "currency": "AZN",
}
MONTHLY = {"cadence": "monthly", "anchor_day": "31", "start": "2026-01-31"}


def csv_of(*lines: str) -> Parsed:
    return parse_csv(io.StringIO("\n".join(lines) + "\n", newline=""))


def jsonl_of(*records: object) -> Parsed:
    text = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"
    return parse_jsonl(io.StringIO(text, newline=""))


def reasons(parsed: Parsed) -> list[tuple[int, str]]:
    return [(bad.line, bad.reason) for bad in parsed.invalid]


# build


def test_build_makes_the_subscription_create_would() -> None:
    sub = build({**GOOD, **MONTHLY, "description": "Gym", "metadata": {"plan": "gold"}})
    expected = Subscription.create(
        id="sub_1", customer="cust_1", stored_id="5125", amount="9.99", currency="AZN",
        description="Gym", cadence=MONTHLY, metadata={"plan": "gold"},
    )  # fmt: skip
    assert sub == expected
    assert sub.amount == Money(999, "AZN")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": None}, "missing id"),
        ({"amount": ""}, "missing amount"),
        ({"amount": "9.999"}, "amount '9.999' has 3 decimals; AZN has 2"),
        ({"amount": 9.99}, 'amount must be text like "9.99", not a number'),
        ({"amount": 10}, 'amount must be text like "9.99", not a number'),
        ({"currency": "XYZ"}, "unsupported currency 'XYZ'"),
        ({"stored_id": "0"}, "stored_id 0 is invalid"),
        ({"language": "fr"}, "language 'fr' is not one of az, en, ru"),
        ({"colour": "red", "size": "L"}, "unknown fields: colour, size"),
        ({"cadence": "fortnightly", "start": "2026-01-01"}, "cadence 'fortnightly' is not one"),
        ({"cadence": "monthly"}, "cadence start is missing"),
        ({"cadence": "monthly", "start": "2026-02-30"}, "not a calendar date"),
        ({"cadence": "weekly", "weekday": "mon", "anchor_day": "3", "start": "2026-01-01"},
         "cadence field 'anchor_day' is not used by a weekly cadence"),
        ({"start": "2026-01-01"}, "start given without a cadence"),
        ({"cadence": "days", "interval": 3.0, "start": "2026-01-01"}, "interval must be text"),
        ({"metadata": ["a"]}, "metadata must be an object of text values, not a list"),
        ({"metadata": {"k": 1}}, "metadata k must be text"),
    ],
)  # fmt: skip
def test_build_refuses_a_bad_row_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        build({**GOOD, **changes})
    assert message in str(caught.value)


def test_whole_numbers_are_accepted_where_the_field_is_a_number() -> None:
    sub = build({**GOOD, "stored_id": 5125, "cadence": "days", "interval": 10,
                 "start": "2026-01-01"})  # fmt: skip
    assert sub.stored_id == 5125
    assert dict(sub.cadence) == {"cadence": "days", "interval": "10", "start": "2026-01-01"}


# CSV


def test_csv_rows_with_schedule_and_metadata_columns() -> None:
    parsed = csv_of(
        f"{HEADER},description,cadence,anchor_day,start,timezone,metadata.plan,metadata.seat",
        "sub_1,cust_1,5125,9.99,AZN,Gym,monthly,31,2026-01-31,UTC,gold,",
        "sub_2,cust_1,77,1,KWD,,,,,,,3",
    )
    assert parsed.invalid == ()
    one, two = (row.subscription for row in parsed.rows)
    assert [row.line for row in parsed.rows] == [2, 3]
    assert dict(one.cadence) == {**MONTHLY, "timezone": "UTC"}
    assert dict(one.metadata) == {"plan": "gold"}  # an empty cell is a field left out
    assert (one.description, two.description) == ("Gym", "")
    assert two.amount == Money(1000, "KWD")
    assert (dict(two.cadence), dict(two.metadata)) == ({}, {"seat": "3"})


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (f"{HEADER},colour,metadata", "unknown columns: 'colour', 'metadata'"),
        (f"{HEADER},metadata.", "unknown column: 'metadata.'"),
        (f"{HEADER},interval,interval", "column given twice: interval"),
        ("id,customer,stored_id,amount", "missing column: currency"),
        ("", "line 1 must name the columns"),
    ],
)
def test_a_bad_csv_header_refuses_the_file(header: str, message: str) -> None:
    with pytest.raises(FileRefused) as caught:
        csv_of(header, "sub_1,cust_1,5125,9.99,AZN")
    assert message in str(caught.value)


def test_csv_bad_rows_are_named_by_their_own_line() -> None:
    parsed = csv_of(
        HEADER,
        "sub_1,cust_1,5125,9.99,AZN",
        "",  # blank lines are skipped but counted
        'sub_2,cust_1,5125,"9.999",AZN',
        '"sub\n3",cust_1,5125,1,AZN',  # a quoted newline: the row starts on line 5
        "sub_4,cust_1,5125,1,AZN,extra",
        "sub_5,cust_1,5125,1",
        "sub_6,cust_1,5125,1,AZN",
    )
    assert [row.subscription.id for row in parsed.rows] == ["sub_1", "sub_6"]
    assert [row.line for row in parsed.rows] == [2, 9]
    assert reasons(parsed) == [
        (4, "amount '9.999' has 3 decimals; AZN has 2"),
        (5, parsed.invalid[1].reason),
        (7, "has 6 cells, the header has 5"),
        (8, "has 4 cells, the header has 5"),
    ]
    assert "subscription id 'sub\\n3' is invalid" in parsed.invalid[1].reason
    assert parsed.total == 6


def test_a_csv_quoting_error_refuses_the_file() -> None:
    with pytest.raises(FileRefused, match="line 3: not valid CSV"):
        csv_of(HEADER, "sub_1,cust_1,5125,9.99,AZN", 'sub_2,"cu"st,5125,1,AZN')


# JSON Lines


def test_jsonl_rows_and_bad_lines() -> None:
    parsed = jsonl_of(
        {**GOOD, **MONTHLY, "metadata": {"plan": "gold"}},
        "",
        "not json",
        [1, 2],
        '{"id": "a", "id": "b"}',
        '{"id": "x", "amount": NaN}',
        {**GOOD, "id": "sub_2", "size": "L"},
        {**GOOD, "id": "sub_3", "amount": 9.99},
    )
    assert [(row.line, row.subscription.id) for row in parsed.rows] == [(1, "sub_1")]
    assert dict(parsed.rows[0].subscription.metadata) == {"plan": "gold"}
    assert reasons(parsed) == [
        (3, "not valid JSON: Expecting value (column 1)"),
        (4, "must be a JSON object, not a list"),
        (5, "key 'id' is given twice"),
        (6, "NaN is not a number"),
        (7, "unknown field: size"),
        (8, 'amount must be text like "9.99", not a number: a JSON number may not be exact'),
    ]
    assert [bad.id for bad in parsed.invalid] == [None, None, None, None, "sub_2", "sub_3"]


def test_jsonl_crlf_line_endings_keep_line_numbers() -> None:
    text = json.dumps(GOOD) + "\r\n\r\n" + json.dumps({**GOOD, "id": "s2", "amount": "0"})
    parsed = parse_jsonl(io.StringIO(text, newline=""))
    assert reasons(parsed) == [(3, "amount '0' is zero; a charge or payout must be positive")]


# duplicates


def test_an_identical_duplicate_is_fine_and_a_different_one_is_an_error_on_the_later_row() -> None:
    parsed = jsonl_of(
        GOOD,
        {**GOOD, "amount": "9.99"},
        {**GOOD, "amount": "10.00"},
        {**GOOD, "id": "sub_2", "amount": "0"},
        {**GOOD, "id": "sub_2"},
    )
    assert [row.line for row in parsed.rows] == [1]
    assert [row.line for row in parsed.duplicates] == [2]
    assert reasons(parsed) == [
        (3, "id sub_1 is already on line 1, with different values"),
        (4, "amount '0' is zero; a charge or payout must be positive"),
        (5, "id sub_2 is already on line 4, which is invalid"),
    ]
    assert parsed.total == 5


# files


def test_read_file_decides_by_extension_and_reads_a_bom(tmp_path: Path) -> None:
    (tmp_path / "subs.CSV").write_bytes(("\ufeff" + HEADER + "\nsub_1,cust_1,5,1,AZN\n").encode())
    (tmp_path / "subs.jsonl").write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    assert [r.subscription.id for r in read_file(tmp_path / "subs.CSV").rows] == ["sub_1"]
    assert [r.subscription.id for r in read_file(tmp_path / "subs.jsonl").rows] == ["sub_1"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("subs.json", b"{}", "unknown file type '.json': use .csv or .jsonl"),
        ("subs", b"", "unknown file type '(none)'"),
        ("subs.csv", b"id,\xff\n", "subs.csv is not UTF-8 (byte 3)"),
    ],
)
def test_read_file_refuses_what_it_cannot_read(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(FileRefused) as caught:
        read_file(tmp_path / name)
    assert message in str(caught.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileRefused, match="cannot read"):
        read_file(tmp_path / "nope.csv")


# properties


_IDS = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "id": _IDS,
            "customer": _IDS,
            "stored_id": st.integers(1, 10**9).map(str),
            "amount": st.integers(1, 10**7).map(lambda n: f"{n // 100}.{n % 100:02}"),
            "currency": st.sampled_from(["AZN", "USD"]),
            "description": st.text(st.characters(codec="utf-8", categories=["L", "N", "Zs", "P"]),
                                   max_size=20),
        }
    ),
    max_size=12,
)  # fmt: skip


@given(_ROWS)
def test_csv_and_jsonl_read_the_same_rows_the_same_way(rows: list[dict[str, str]]) -> None:
    """Both formats agree; every row lands in exactly one of rows, duplicates and invalid."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=[*GOOD, "description"], lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    from_csv = parse_csv(io.StringIO(out.getvalue(), newline=""))
    from_jsonl = jsonl_of(*rows) if rows else parse_jsonl([])
    assert [r.subscription for r in from_csv.rows] == [r.subscription for r in from_jsonl.rows]
    # the CSV header is line 1, so every CSV row is one line further down
    assert [(b.line - 1, b.id) for b in from_csv.invalid] == [
        (b.line, b.id) for b in from_jsonl.invalid
    ]
    assert from_csv.total == from_jsonl.total == len(rows)
    first: dict[str, dict[str, str]] = {}
    for row in rows:
        first.setdefault(row["id"], row)
    assert [r.subscription.id for r in from_jsonl.rows] == list(first)
    conflicts = sum(1 for row in rows if row != first[row["id"]])
    assert len(from_jsonl.invalid) == conflicts
    assert all(isinstance(bad, BadRow) for bad in from_jsonl.invalid)


# gateways: the gateway and parent_order fields


def test_a_bizon_row_needs_a_parent_order_and_no_stored_id() -> None:
    row = {**GOOD, "gateway": "bizon", "parent_order": "23014805000000001"}
    del row["stored_id"]
    sub = build(row)
    assert (sub.gateway, sub.parent_order, sub.stored_id) == ("bizon", "23014805000000001", 0)
    assert build({**row, "parent_order": 23014805000000001}) == sub  # a JSON whole number
    both = build({**row, "stored_id": "5125"})
    assert both.cards() == {"bizon": "23014805000000001", "txpg": "5125"}


def test_a_txpg_row_may_hold_a_bizon_card_for_the_fallback() -> None:
    sub = build({**GOOD, "parent_order": "777"})
    assert (sub.gateway, sub.cards()) == ("txpg", {"txpg": "5125", "bizon": "777"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gateway": "bizon"}, "missing parent_order"),
        ({"gateway": "bizon", "stored_id": None, "amount": None}, "missing parent_order, amount"),
        ({"stored_id": None, "parent_order": "777"}, "missing stored_id"),
        ({"gateway": "paypal"}, "gateway 'paypal' is not one of txpg, bizon"),
        ({"gateway": 1}, "gateway must be text, not a number"),
        ({"parent_order": "12ab"}, "parent_order '12ab' is invalid"),
        ({"parent_order": 1.5}, "parent_order must be text, not a number"),
    ],
)
def test_a_row_whose_card_does_not_fit_its_gateway_is_refused(
    changes: dict[str, Any], message: str
) -> None:
    row = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    with pytest.raises(InvalidInput) as caught:
        build(row)
    assert message in str(caught.value)


def test_csv_gateway_columns() -> None:
    parsed = csv_of(
        "id,customer,amount,currency,gateway,stored_id,parent_order",
        "sub_1,cust_1,9.99,AZN,bizon,,777",
        "sub_2,cust_1,9.99,AZN,,5125,778",
        "sub_3,cust_1,9.99,AZN,bizon,5125,",
    )
    one, two = (row.subscription for row in parsed.rows)
    assert (one.gateway, one.cards()) == ("bizon", {"bizon": "777"})
    assert (two.gateway, two.cards()) == ("txpg", {"txpg": "5125", "bizon": "778"})
    assert reasons(parsed) == [(4, "missing parent_order")]


def test_a_csv_with_a_parent_order_column_only_is_read() -> None:
    parsed = csv_of("id,customer,amount,currency,gateway,parent_order", "s,c,1,AZN,bizon,9")
    assert [row.subscription.parent_order for row in parsed.rows] == ["9"]
    with pytest.raises(FileRefused) as caught:
        csv_of("id,customer,amount,currency,gateway", "s,c,1,AZN,bizon")
    assert "missing column: stored_id (or parent_order, for bizon rows)" in str(caught.value)
