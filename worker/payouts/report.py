"""What a payout run did: ``billing payouts report RUN [--format table|csv|json]``. Pure.

:func:`build_report` counts and sums the run's payouts per status and currency (exact
:class:`~worker.money.Money`, integer minor units) and lists each payout with its gateway
(``txpg`` or ``bizon``: a run may mix them), the gateway's order id, approval code, masked
destination and, when it failed, the PMO (or error) code, title and reason. Then one of:

* :func:`report_title` and :func:`report_tables` / ``table``: a line about the run, then two
  rich tables, the summary and the payouts;
* :func:`render_csv` / ``csv``: one row per payout after a header row (``--summary``: one row
  per status and currency instead). A cell that a spreadsheet would run as a formula
  (``= + - @``, tab, CR) is prefixed with ``'``;
* :func:`render_json` / ``json``: the run, the summary and the payouts; amounts as decimal
  strings (``"9.99"``), never JSON numbers.

No PAN is in any of them: a destination is only ever its masked form, and gateway text is
scrubbed (:func:`worker.sensitive.scrub`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from worker.money import Money
from worker.payouts.model import Payout, PayoutStatus
from worker.payouts.runs import RunState
from worker.sensitive import scrub

FORMATS = ("table", "csv", "json")

#: CSV columns, one per :class:`ReportRow` field.
COLUMNS = (
    "payout_id",
    "status",
    "amount",
    "currency",
    "order_id",
    "approval_code",
    "gateway",
    "destination",
    "failure_code",
    "failure_title",
    "failure_reason",
)
SUMMARY_COLUMNS = ("status", "currency", "count", "total")
_STATUS_ORDER = {status: index for index, status in enumerate(PayoutStatus)}
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class ReportRow:
    payout_id: str
    status: PayoutStatus
    amount: Money
    order_id: str
    approval_code: str
    destination: str  #: masked: ``TWO_COF:D91E8A…4BCC``, ``order:123`` or ``416974******1778``
    failure_code: str
    failure_title: str
    failure_reason: str
    gateway: str = "txpg"  #: where it was sent: ``txpg`` or ``bizon``

    def cells(self) -> dict[str, str]:
        return {
            "payout_id": self.payout_id,
            "status": self.status.value,
            "amount": self.amount.to_gateway(),
            "currency": self.amount.currency,
            "order_id": self.order_id,
            "approval_code": self.approval_code,
            "gateway": self.gateway,
            "destination": self.destination,
            "failure_code": self.failure_code,
            "failure_title": self.failure_title,
            "failure_reason": self.failure_reason,
        }


@dataclass(frozen=True, slots=True)
class ReportGroup:
    """The payouts of one status in one currency."""

    status: PayoutStatus
    currency: str
    count: int
    total: Money


@dataclass(frozen=True, slots=True)
class Report:
    run: RunState | None
    groups: tuple[ReportGroup, ...]  #: by status (in lifecycle order), then currency
    rows: tuple[ReportRow, ...]  #: in sending order (created, then id)

    def totals(self) -> dict[str, tuple[int, Money]]:
        """(count, total) per currency over every status."""
        out: dict[str, tuple[int, Money]] = {}
        for group in self.groups:
            count, total = out.get(group.currency, (0, Money(0, group.currency)))
            out[group.currency] = (count + group.count, total + group.total)
        return dict(sorted(out.items()))


def build_report(
    run: RunState | None,
    payouts: Iterable[Payout],
    attempts: Mapping[str, Mapping[str, str]] | None = None,
) -> Report:
    """The report of ``run`` over its ``payouts``.

    ``attempts`` may give each payout's last attempt (its stored hash, by payout id): its
    ``order_id``, ``approval_code``, ``result_code`` (else ``error_code``), ``result_title`` and
    ``decline_reason`` fill whatever the payout itself does not say. A payout of another run
    raises ``ValueError``.
    """
    attempts = attempts or {}
    chosen = sorted(payouts, key=lambda payout: (payout.created_at, payout.id))
    sums: dict[tuple[PayoutStatus, str], tuple[int, int]] = {}
    rows: list[ReportRow] = []
    for payout in chosen:
        if run is not None and payout.run_id != run.id:
            raise ValueError(f"payout {payout.id} belongs to run {payout.run_id!r}, not {run.id}")
        key = (payout.status, payout.currency)
        count, minor = sums.get(key, (0, 0))
        sums[key] = (count + 1, minor + payout.amount.minor)
        rows.append(_row(payout, attempts.get(payout.id, {})))
    groups = tuple(
        ReportGroup(status, currency, count, Money(minor, currency))
        for (status, currency), (count, minor) in sorted(
            sums.items(), key=lambda item: (_STATUS_ORDER[item[0][0]], item[0][1])
        )
    )
    return Report(run, groups, tuple(rows))


def _row(payout: Payout, attempt: Mapping[str, str]) -> ReportRow:
    def pick(own: str, *names: str) -> str:
        if own:
            return scrub(own)
        return scrub(next((attempt[name] for name in names if attempt.get(name)), ""))

    return ReportRow(
        payout_id=payout.id,
        status=payout.status,
        amount=payout.amount,
        order_id=pick(payout.order_id, "order_id"),
        approval_code=pick(payout.approval_code, "approval_code"),
        destination=payout.destination.masked(),
        failure_code=pick(payout.failure_code, "result_code", "error_code"),
        failure_title=pick(payout.failure_title, "result_title"),
        failure_reason=pick(payout.failure_reason, "decline_reason"),
        gateway=payout.gateway,
    )


# --- rendering --------------------------------------------------------------------------------


def render(report: Report, fmt: str, *, width: int = 160) -> str:
    """The report as ``table`` (plain text of :func:`report_tables`), ``csv`` or ``json``."""
    if fmt == "table":
        return render_table(report, width=width)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "json":
        return render_json(report)
    raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")


def report_tables(report: Report) -> tuple[Table, Table]:
    """(summary, payouts) as rich tables; every cell is plain text, never markup.

    Print :func:`report_title` (as ``rich.text.Text``, not markup) above them.
    """
    summary = Table(title="summary", title_justify="left")
    for name in ("status", "currency", "count", "total"):
        summary.add_column(name, justify="right" if name in ("count", "total") else "left")
    for group in report.groups:
        summary.add_row(
            Text(group.status.value),
            Text(group.currency),
            Text(str(group.count)),
            Text(group.total.to_gateway()),
        )
    for currency, (count, total) in report.totals().items():
        summary.add_row(
            Text("all", style="bold"), Text(currency), Text(str(count)), Text(total.to_gateway())
        )
    payouts = Table(title="payouts", title_justify="left")
    names = ("payout", "status", "amount", "currency", "gateway", "order", "approval")
    for name in (*names, "destination"):
        payouts.add_column(name, justify="right" if name == "amount" else "left")
    payouts.add_column("failure")
    for row in report.rows:
        failure = " ".join(
            part for part in (row.failure_code, row.failure_title, row.failure_reason) if part
        )
        payouts.add_row(
            *(
                Text(value)
                for value in (
                    row.payout_id,
                    row.status.value,
                    row.amount.to_gateway(),
                    row.amount.currency,
                    row.gateway,
                    row.order_id,
                    row.approval_code,
                    row.destination,
                    failure,
                )
            )
        )
    return summary, payouts


def render_table(report: Report, *, width: int = 160) -> str:
    """:func:`report_tables` rendered as plain text."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(Text(report_title(report)))
    for table in report_tables(report):
        console.print(table)
    output = console.file
    assert isinstance(output, io.StringIO)
    return output.getvalue()


def render_csv(report: Report, *, summary: bool = False) -> str:
    """One row per payout (:data:`COLUMNS`), or per status and currency with ``summary``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if summary:
        writer.writerow(SUMMARY_COLUMNS)
        for group in report.groups:
            writer.writerow(
                [group.status.value, group.currency, group.count, group.total.to_gateway()]
            )
    else:
        writer.writerow(COLUMNS)
        for row in report.rows:
            cells = row.cells()
            writer.writerow([_cell(cells[name]) for name in COLUMNS])
    return out.getvalue()


def render_json(report: Report) -> str:
    """The run, the summary, totals per currency and the payouts; amounts as strings."""
    body: dict[str, Any] = {
        "run": report.run.summary() if report.run is not None else None,
        "summary": [
            {
                "status": group.status.value,
                "currency": group.currency,
                "count": group.count,
                "total": group.total.to_gateway(),
            }
            for group in report.groups
        ],
        "totals": {
            currency: {"count": count, "total": total.to_gateway()}
            for currency, (count, total) in report.totals().items()
        },
        "payouts": [row.cells() for row in report.rows],
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def report_title(report: Report) -> str:
    """One line about the run: its id, status, schedule, tag, approver and what was held."""
    run = report.run
    if run is None:
        return "payouts"
    parts = [f"run {run.id}: {run.status.value}"]
    if run.schedule:
        parts.append(f"schedule {run.schedule}")
    if run.tag:
        parts.append(f"tag {run.tag}")
    if run.approved_by:
        parts.append(f"approved by {run.approved_by}")
    if run.held:
        parts.append(f"{run.held} held ({run.limit_reached})")
    return ", ".join(parts)


def _cell(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA) else value
