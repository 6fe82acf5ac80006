"""``billing subscriptions import`` against a real Redis: all or nothing by default (bad rows
and conflicts with stored subscriptions are found before anything is written), idempotent by
subscription id, and ``--skip-invalid`` imports the rest while still naming the bad rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from typer.testing import CliRunner, Result

from worker.cli import app
from worker.clock import SYSTEM
from worker.money import Money
from worker.store import subscriptions as store
from worker.subscriptions import Subscription

HEADER = "id,customer,stored_id,amount,currency,description,cadence,anchor_day,start,metadata.plan"
ROWS = [
    "sub_1,cust_1,5125,9.99,AZN,Gym,monthly,31,2026-01-31,gold",
    "sub_2,cust_2,5159,0.10,AZN,,daily,,2026-02-01,",
    "sub_3,cust_2,77,12,USD,Pool,,,,silver",
]
IDS = ["sub_1", "sub_2", "sub_3"]


def run(redis_url: str | None, *args: str) -> Result:
    return CliRunner().invoke(
        app, ["subscriptions", "import", *args], env={"BILLING_REDIS_URL": redis_url}
    )


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def stderr_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("line ")]


def error(result: Result) -> str:
    return " ".join(result.stderr.split())


def everything(r: redis.Redis) -> dict[str, Any]:
    """Every key and its value: equal before and after means nothing was written."""
    out: dict[str, Any] = {}
    for key in sorted(cast("list[str]", r.keys("*"))):
        kind = r.type(key)
        if kind == "hash":
            out[key] = r.hgetall(key)
        elif kind == "zset":
            out[key] = r.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = kind
    return out


def stored(r: redis.Redis) -> list[str]:
    return [sub_id for sub_id in IDS if store.get(r, sub_id) is not None]


def existing(sub_id: str = "sub_1", amount: str = "9.99") -> Subscription:
    return Subscription.create(
        id=sub_id, customer="cust_1", stored_id=5125, amount=amount, currency="AZN",
        description="Gym", cadence={"cadence": "monthly", "anchor_day": "31",
                                    "start": "2026-01-31"},
        metadata={"plan": "gold"},
    )  # fmt: skip


def test_help() -> None:
    result = CliRunner().invoke(app, ["subscriptions", "import", "--help"])
    assert result.exit_code == 0
    for text in ("billing subscriptions import", "--skip-invalid", "--json", "--redis-url"):
        assert text in result.output
    listing = CliRunner().invoke(app, ["subscriptions", "--help"])
    assert "import" in listing.output


def test_a_csv_file_is_imported_with_exact_values(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    result = run(redis_url, str(write(tmp_path, "subs.csv", HEADER, *ROWS)))
    assert result.exit_code == 0, result.output
    assert result.stdout == "created 3, unchanged 0, invalid 0\n"
    assert stderr_lines(result) == []
    one, two, three = (store.get(r, sub_id) for sub_id in IDS)
    assert one is not None and two is not None and three is not None
    assert (one.amount, one.stored_id, one.description) == (Money(999, "AZN"), 5125, "Gym")
    assert dict(one.cadence) == {"cadence": "monthly", "anchor_day": "31", "start": "2026-01-31"}
    assert dict(one.metadata) == {"plan": "gold"}
    assert two.amount == Money(10, "AZN")
    assert dict(two.cadence) == {"cadence": "daily", "start": "2026-02-01"}
    assert (three.amount, dict(three.cadence)) == (Money(1200, "USD"), {})
    assert store.count(r) == 3


def test_a_jsonl_file_is_imported_and_the_summary_can_be_json(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    records = [
        {"id": "sub_1", "customer": "cust_1", "stored_id": 5125, "amount": "1.005",
         "currency": "KWD", "cadence": "days", "interval": 10, "start": "2026-01-01",
         "timezone": "UTC", "metadata": {"plan": "gold"}, "language": "en"},
        {"id": "sub_2", "customer": "cust_1", "stored_id": "9", "amount": "3",
         "currency": "JPY"},
    ]  # fmt: skip
    path = write(tmp_path, "subs.jsonl", *(json.dumps(rec) for rec in records))
    result = run(redis_url, str(path), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == {
        "file": str(path), "rows": 2, "written": True, "created": 2, "unchanged": 0,
        "invalid": 0, "errors": [],
    }  # fmt: skip
    one = store.get(r, "sub_1")
    assert one is not None
    assert (one.amount, one.language) == (Money(1005, "KWD"), "en")
    assert dict(one.cadence) == {
        "cadence": "days", "interval": "10", "start": "2026-01-01", "timezone": "UTC",
    }  # fmt: skip
    assert dict(one.metadata) == {"plan": "gold"}


def test_importing_twice_changes_nothing(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    path = write(tmp_path, "subs.csv", HEADER, *ROWS)
    assert run(redis_url, str(path)).exit_code == 0
    before = everything(r)
    again = run(redis_url, str(path))
    assert again.exit_code == 0, again.output
    assert again.stdout == "created 0, unchanged 3, invalid 0\n"
    assert everything(r) == before  # not even updated_at moved


def test_an_invalid_row_imports_nothing(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    path = write(
        tmp_path, "subs.csv", HEADER, ROWS[0],
        "sub_2,cust_2,5159,0.001,AZN,,daily,,2026-02-01,",
        ROWS[2],
        "sub_4,cust_2,77,12,USD,,weekly,,2026-02-30,",
    )  # fmt: skip
    result = run(redis_url, str(path))
    assert result.exit_code == 2, result.output
    assert stderr_lines(result) == [
        "line 3: amount '0.001' has 3 decimals; AZN has 2",
        "line 5: cadence start '2026-02-30' is not a calendar date",
    ]
    assert "error: 2 of 4 rows are invalid or conflict: nothing was imported" in error(result)
    assert result.stdout == ""
    assert r.keys("*") == []  # not even the valid rows 2 and 4


def test_skip_invalid_imports_the_good_rows_and_lists_the_bad(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    path = write(
        tmp_path, "subs.csv", HEADER, ROWS[0],
        "sub_2,cust_2,5159,0.001,AZN,,daily,,2026-02-01,",
        ROWS[2],
        ROWS[2].replace("12,USD", "13,USD"),  # the same id again with another amount
        ROWS[0],  # an identical duplicate is fine
    )  # fmt: skip
    result = run(redis_url, str(path), "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert result.stdout == "created 2, unchanged 1, invalid 2\n"
    assert stderr_lines(result) == [
        "line 3: amount '0.001' has 3 decimals; AZN has 2",
        "line 5: id sub_3 is already on line 4, with different values",
    ]
    assert stored(r) == ["sub_1", "sub_3"]
    sub_3 = store.get(r, "sub_3")
    assert sub_3 is not None and sub_3.amount == Money(1200, "USD")  # the first one won


def test_a_conflict_with_a_stored_subscription_is_found_before_writing(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    store.create(r, existing(amount="10.00"), SYSTEM)
    before = everything(r)
    path = write(tmp_path, "subs.csv", HEADER, *ROWS)
    result = run(redis_url, str(path))
    assert result.exit_code == 2, result.output
    assert stderr_lines(result) == [
        "line 2: conflict: sub_1 already exists with a different amount"
    ]
    assert everything(r) == before  # rows 3 and 4 were valid, and still not written
    assert stored(r) == ["sub_1"]


def test_skip_invalid_reports_a_conflict_and_imports_the_rest(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    store.create(r, existing(amount="10.00"), SYSTEM)
    store.create(r, existing("sub_2", amount="1.00"), SYSTEM)
    path = write(tmp_path, "subs.csv", HEADER, *ROWS)
    result = run(redis_url, str(path), "--skip-invalid", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["created"], summary["unchanged"], summary["invalid"]) == (1, 0, 2)
    assert summary["errors"] == [
        {"line": 2, "id": "sub_1",
         "reason": "conflict: sub_1 already exists with a different amount"},
        {"line": 3, "id": "sub_2", "reason": "conflict: sub_2 already exists with a different "
                                             "customer, stored_id, amount, description, cadence, "
                                             "metadata"},
    ]  # fmt: skip
    kept = store.get(r, "sub_1")
    assert kept is not None and kept.amount == Money(1000, "AZN")  # never overwritten
    assert stored(r) == ["sub_1", "sub_2", "sub_3"]


def test_an_equal_stored_subscription_counts_as_unchanged_even_if_paused(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    store.create(r, existing(), SYSTEM)
    store.pause(r, "sub_1", SYSTEM)
    result = run(redis_url, str(write(tmp_path, "subs.csv", HEADER, *ROWS)))
    assert result.exit_code == 0, result.output
    assert result.stdout == "created 2, unchanged 1, invalid 0\n"
    paused = store.get(r, "sub_1")
    assert paused is not None and paused.status.value == "paused"


def test_a_refused_import_can_print_json(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    path = write(tmp_path, "subs.jsonl", '{"id": "sub_1"}', "[]")
    result = run(redis_url, str(path), "--json")
    assert result.exit_code == 2
    summary = json.loads(result.stdout)
    assert (summary["written"], summary["created"], summary["invalid"]) == (False, 0, 2)
    assert [(e["line"], e["id"], e["reason"]) for e in summary["errors"]] == [
        (1, "sub_1", "missing customer, stored_id, amount, currency"),
        (2, None, "must be a JSON object, not a list"),
    ]
    assert r.keys("*") == []


@pytest.mark.parametrize(
    ("name", "lines", "message"),
    [
        ("subs.csv", [HEADER + ",colour", ROWS[0] + ",red"], "unknown column: 'colour'"),
        ("subs.csv", ["id,customer,amount,currency"], "missing column: stored_id"),
        ("subs.txt", [HEADER], "unknown file type '.txt': use .csv or .jsonl"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused(
    redis_url: str, r: redis.Redis, tmp_path: Path, name: str, lines: list[str], message: str
) -> None:
    result = run(redis_url, str(write(tmp_path, name, *lines)))
    assert result.exit_code == 2
    assert error(result).startswith("error: ")
    assert message in error(result)
    assert r.keys("*") == []


def test_a_missing_file_is_refused(redis_url: str, tmp_path: Path) -> None:
    result = run(redis_url, str(tmp_path / "nope.csv"))
    assert result.exit_code == 2
    assert "error: cannot read" in error(result)


def test_an_empty_jsonl_file_imports_nothing(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    result = run(redis_url, str(write(tmp_path, "subs.jsonl", "")))
    assert (result.exit_code, result.stdout) == (0, "created 0, unchanged 0, invalid 0\n")
    assert r.keys("*") == []


def test_many_rows(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    lines = [f"s{n},c{n % 7},{n + 1},{n % 50 + 1}.{n % 100:02},AZN,,,,," for n in range(1500)]
    path = write(tmp_path, "subs.csv", HEADER, *lines)
    result = run(redis_url, str(path))
    assert result.stdout == "created 1500, unchanged 0, invalid 0\n", result.output
    assert store.count(r) == 1500
    sample = store.get(r, "s1234")
    assert sample is not None and sample.amount == Money(3534, "AZN")


def test_a_subscription_stored_between_the_check_and_the_write_is_reported(
    redis_url: str, r: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check missed it (as if another writer stored sub_1 just after): create refuses."""
    store.create(r, existing(amount="10.00"), SYSTEM)
    monkeypatch.setattr(store, "get", lambda _r, _id: None)
    result = run(redis_url, str(write(tmp_path, "subs.csv", HEADER, *ROWS)))
    assert result.exit_code == 2
    assert result.stdout == "created 2, unchanged 0, invalid 1\n"
    assert stderr_lines(result) == [
        "line 2: conflict: subscription sub_1 already exists with a different amount"
    ]
    assert "the other 2 rows were imported" in error(result)
    monkeypatch.undo()
    kept = store.get(r, "sub_1")
    assert kept is not None and kept.amount == Money(1000, "AZN")


# gateways: the gateway and parent_order columns


def test_import_bizon_rows_and_txpg_rows_with_a_fallback_card(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "subs.csv",
        "id,customer,amount,currency,gateway,stored_id,parent_order",
        "sub_b,cust_1,9.99,AZN,bizon,,23014805000000001",
        "sub_t,cust_2,5.00,AZN,txpg,5125,777",
    )
    result = run(redis_url, str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == "created 2, unchanged 0, invalid 0\n"
    bizon, txpg = store.require(r, "sub_b"), store.require(r, "sub_t")
    assert (bizon.gateway, bizon.cards()) == ("bizon", {"bizon": "23014805000000001"})
    assert (txpg.gateway, txpg.cards()) == ("txpg", {"txpg": "5125", "bizon": "777"})
    assert run(redis_url, str(path)).stdout == "created 0, unchanged 2, invalid 0\n"


def test_a_new_parent_order_for_a_stored_id_is_a_conflict(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    first = write(tmp_path, "a.jsonl", json.dumps({**JSONL_BIZON, "parent_order": 1}))
    assert run(redis_url, str(first)).exit_code == 0
    before = everything(r)
    second = write(tmp_path, "b.jsonl", json.dumps({**JSONL_BIZON, "parent_order": 2}))
    result = run(redis_url, str(second))
    assert result.exit_code == 2
    assert stderr_lines(result) == [
        "line 1: conflict: sub_b already exists with a different parent_order"
    ]
    assert everything(r) == before


def test_bizon_rows_without_a_parent_order_import_nothing(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "subs.jsonl",
        json.dumps({**JSONL_BIZON, "parent_order": "1"}),
        json.dumps({**JSONL_BIZON, "id": "sub_c", "parent_order": ""}),
        json.dumps({**JSONL_BIZON, "id": "sub_d", "gateway": "txpg", "parent_order": "4"}),
    )
    result = run(redis_url, str(path))
    assert result.exit_code == 2
    assert stderr_lines(result) == [
        "line 2: missing parent_order",
        "line 3: missing stored_id",
    ]
    assert r.keys("*") == []


JSONL_BIZON = {
    "id": "sub_b",
    "customer": "cust_1",
    "amount": "9.99",
    "currency": "AZN",
    "gateway": "bizon",
}
