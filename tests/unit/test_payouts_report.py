"""The run report: exact counts and totals per status and currency, each payout's order,
approval and masked destination, in three formats, none of which ever holds a PAN.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.money import Money
from worker.payouts.model import OrderDestination, Payout, PayoutStatus, TokenDestination
from worker.payouts.report import (
    COLUMNS,
    FORMATS,
    ReportGroup,
    build_report,
    render,
    render_csv,
    render_json,
    render_table,
    report_tables,
)
from worker.payouts.runs import RunLimits, RunState, RunStatus

PAN = "4169741330151778"
RID = "26AB0DACE700EF1180EB005056954BCC"
RUN = "sellers-weekdays-20260105T1400Z"
STATE = RunState(
    id=RUN,
    status=RunStatus.COMPLETED,
    schedule="sellers-weekdays",
    tag="sellers",
    limits=RunLimits(max_count=500),
    selected=4,
    totals={"AZN": Money(4000, "AZN"), "USD": Money(500, "USD")},
)


def token_payout(pid: str, minor: int, currency: str = "AZN", at: int = 0) -> Payout:
    return Payout(
        id=pid,
        amount=Money(minor, currency),
        destination=TokenDestination(RID),
        created_at=at,
        run_id=RUN,
        status=PayoutStatus.QUEUED,
    )


def sample() -> list[Payout]:
    paid = (
        token_payout("p1", 1500, at=1)
        .with_status(PayoutStatus.SENDING, 2, order_id="10001")
        .with_status(PayoutStatus.PAID, 3, approval_code="312866")
    )
    failed = (
        token_payout("p2", 2500, at=2)
        .with_status(PayoutStatus.SENDING, 2, order_id="10002")
        .with_status(
            PayoutStatus.FAILED,
            3,
            failure_code="41",
            failure_title="Stolen card",
            failure_reason=f"=pick up {PAN}",
        )
    )
    sending = token_payout("p3", 500, "USD", at=3).with_status(PayoutStatus.SENDING, 2)
    # a PAN payout as stored: its destination masked
    stored = Payout.create(
        id="p0", amount="0.01", currency="AZN", pan=PAN, mode="immediate", now_ms=0
    ).to_hash()
    masked = Payout.from_hash({**stored, "run_id": RUN, "status": "sending"}, "p0")
    return [sending, failed, paid, masked]


def test_counts_and_totals_per_status_and_currency() -> None:
    report = build_report(STATE, sample())
    assert report.groups == (
        ReportGroup(PayoutStatus.SENDING, "AZN", 1, Money(1, "AZN")),
        ReportGroup(PayoutStatus.SENDING, "USD", 1, Money(500, "USD")),
        ReportGroup(PayoutStatus.PAID, "AZN", 1, Money(1500, "AZN")),
        ReportGroup(PayoutStatus.FAILED, "AZN", 1, Money(2500, "AZN")),
    )
    assert report.totals() == {"AZN": (3, Money(4001, "AZN")), "USD": (1, Money(500, "USD"))}
    assert [row.payout_id for row in report.rows] == ["p0", "p1", "p2", "p3"]
    p0, p1, p2, _ = report.rows
    assert p0.destination == "416974******1778"
    assert (p1.order_id, p1.approval_code, p1.destination) == (
        "10001",
        "312866",
        "TWO_COF:26AB0D…4BCC",
    )
    assert (p2.failure_code, p2.failure_title, p2.failure_reason) == (
        "41",
        "Stolen card",
        "=pick up 416974******1778",
    )


def test_attempts_fill_what_the_payout_does_not_say() -> None:
    payout = token_payout("p1", 100).with_status(PayoutStatus.SENDING, 1)
    payout = payout.with_status(PayoutStatus.FAILED, 2)
    attempt = {"order_id": "9", "error_code": "InvalidAmt", "decline_reason": f"x {PAN}"}
    (row,) = build_report(STATE, [payout], {"p1": attempt}).rows
    assert (row.order_id, row.failure_code, row.failure_reason) == (
        "9",
        "InvalidAmt",
        "x 416974******1778",
    )


def test_a_payout_of_another_run_is_refused() -> None:
    other = token_payout("p9", 1)
    with pytest.raises(ValueError, match="belongs to run"):
        build_report(RunState(id="other", status=RunStatus.SENDING), [other])
    assert len(build_report(None, [other]).rows) == 1


def test_csv_has_a_header_and_defuses_formulas() -> None:
    text = render_csv(build_report(STATE, sample()))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(COLUMNS)
    assert rows[1] == {
        "payout_id": "p1",
        "status": "paid",
        "amount": "15.00",
        "currency": "AZN",
        "order_id": "10001",
        "approval_code": "312866",
        "gateway": "txpg",
        "destination": "TWO_COF:26AB0D…4BCC",
        "failure_code": "",
        "failure_title": "",
        "failure_reason": "",
    }
    assert rows[2]["failure_reason"] == "'=pick up 416974******1778"
    summary = list(csv.reader(io.StringIO(render_csv(build_report(STATE, sample()), summary=True))))
    assert summary[0] == ["status", "currency", "count", "total"]
    assert summary[1:] == [
        ["sending", "AZN", "1", "0.01"],
        ["sending", "USD", "1", "5.00"],
        ["paid", "AZN", "1", "15.00"],
        ["failed", "AZN", "1", "25.00"],
    ]


def test_json_amounts_are_decimal_strings() -> None:
    body = json.loads(render_json(build_report(STATE, sample())))
    assert body["run"]["id"] == RUN and body["run"]["status"] == "completed"
    assert body["totals"] == {
        "AZN": {"count": 3, "total": "40.01"},
        "USD": {"count": 1, "total": "5.00"},
    }
    assert body["summary"][0] == {
        "status": "sending",
        "currency": "AZN",
        "count": 1,
        "total": "0.01",
    }
    assert body["payouts"][1]["amount"] == "15.00"
    assert body["payouts"][0]["destination"] == "416974******1778"
    assert json.loads(render_json(build_report(None, [])))["run"] is None


def test_the_table_shows_every_payout_as_plain_text() -> None:
    payout = token_payout("p4", 100, at=9).with_status(PayoutStatus.SENDING, 1)
    payout = payout.with_status(PayoutStatus.FAILED, 2, failure_reason="[bold]x[/bold]")
    text = render_table(build_report(STATE, [*sample()[:3], payout]), width=200)
    assert text.splitlines()[0] == (
        "run sellers-weekdays-20260105T1400Z: completed, schedule sellers-weekdays, tag sellers"
    )
    assert "TWO_COF:26AB0D…4BCC" in text and "312866" in text and "10001" in text
    assert "[bold]x[/bold]" in text  # gateway text is never rich markup
    summary, payouts = report_tables(build_report(STATE, sample()))
    assert (summary.row_count, payouts.row_count) == (6, 4)  # 4 groups + 2 currencies


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_pan_in_any_format(fmt: str) -> None:
    pan_payout = Payout.create(
        id="now-1", amount="25.00", currency="AZN", pan=PAN, mode="immediate"
    )
    sent = pan_payout.with_status(PayoutStatus.SENDING, 1, order_id="1")
    failed = sent.with_status(PayoutStatus.FAILED, 2, failure_reason=f"card {PAN} refused")
    output = render(build_report(None, [failed]), fmt)
    assert PAN not in output
    assert "416974******1778" in output
    with pytest.raises(ValueError, match="format 'xml'"):
        render(build_report(None, []), "xml")


@given(
    st.lists(
        st.tuples(
            st.integers(1, 10**15),
            st.sampled_from(["AZN", "USD", "JPY", "KWD"]),
            st.sampled_from(list(PayoutStatus)),
        ),
        max_size=40,
    )
)
def test_totals_are_the_sums_of_minor_units(rows: list[tuple[int, str, PayoutStatus]]) -> None:
    payouts = [
        Payout(
            id=f"p{n}",
            amount=Money(minor, currency),
            destination=TokenDestination(RID),
            status=status,
            run_id=RUN,
        )
        for n, (minor, currency, status) in enumerate(rows)
    ]
    report = build_report(STATE, payouts)
    for group in report.groups:
        chosen = [m for m, c, s in rows if (c, s) == (group.currency, group.status)]
        assert (group.count, group.total) == (len(chosen), Money(sum(chosen), group.currency))
        assert type(group.total.minor) is int
    assert sum(group.count for group in report.groups) == len(rows)
    body = json.loads(render_json(report))
    for currency, (count, total) in report.totals().items():
        assert body["totals"][currency] == {"count": count, "total": total.to_gateway()}
        assert total.minor == sum(m for m, c, _ in rows if c == currency)


def test_a_run_mixing_gateways_names_each_payout_s_gateway() -> None:
    bizon = Payout(
        id="b1",
        amount=Money(750, "AZN"),
        destination=OrderDestination("23014808614292147"),
        created_at=9,
        run_id=RUN,
        status=PayoutStatus.QUEUED,
        gateway="bizon",
    ).with_status(PayoutStatus.SENDING, 10, order_id="b1 credit #1")
    report = build_report(STATE, [*sample(), bizon])
    assert [(row.payout_id, row.gateway) for row in report.rows][-2:] == [
        ("p3", "txpg"),
        ("b1", "bizon"),
    ]
    (row,) = [r for r in csv.DictReader(io.StringIO(render_csv(report))) if r["payout_id"] == "b1"]
    assert (row["gateway"], row["destination"], row["order_id"]) == (
        "bizon",
        "order:23014808614292147",
        "b1 credit #1",
    )
    assert json.loads(render_json(report))["payouts"][-1]["gateway"] == "bizon"
    table = render_table(report, width=200)
    assert "gateway" in table and "bizon" in table and "order:23014808614292147" in table
