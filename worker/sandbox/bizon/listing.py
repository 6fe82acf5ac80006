"""``GET /orders/`` and ``GET /operations/``: the reference's filters, and pages of at most
2000 rows (``BizonSettings.page_size``) with the links to scroll through them in headers.

Filters of ``GET /orders/``, as the reference names them: ``status``, ``merchant_order_id``,
``card.type``, ``card.subtype``, ``location.ip``, ``issuer.country`` and ``issuer.bin``
take one value or a comma-separated list and match exactly; ``client.name``,
``client.email`` and ``issuer.title`` match a part, ignoring case; ``created_from`` and
``created_to`` (``YYYY-MM-DD HH:MM:SS``, UTC, or a bare date) bound the creation time,
both ends included. ``GET /operations/`` takes ``status``, ``type``, ``created_from`` and
``created_to``. Filters combine with AND. Rows come newest first.

Pages: the reference says only "follow links in HTTP headers", so the sandbox sends an RFC
8288 ``Link`` header, ``<url>; rel="first"``, ``"prev"``, ``"next"``, ``"last"``, whose URLs
keep the request's filters and add ``page=N`` (1-based). A client should follow the
``next`` link as it is, never build page URLs itself. A parameter the reference does not
name (nor ``page``) is refused: a misspelt filter must not silently list everything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, time
from typing import TypeVar

from yarl import URL

from worker.sandbox.bizon.errors import validation
from worker.sandbox.bizon.orders import Operation, OpStatus, OpType, Order, Status
from worker.sandbox.bizon.render import ISSUER_COUNTRY, ISSUER_TITLE, TIME_FORMAT

T = TypeVar("T")

EXACT_ORDER_FILTERS = (
    "status",
    "merchant_order_id",
    "card.type",
    "card.subtype",
    "location.ip",
    "issuer.country",
    "issuer.bin",
)
PART_ORDER_FILTERS = ("client.name", "client.email", "issuer.title")
TIME_FILTERS = ("created_from", "created_to")
ORDER_PARAMS = frozenset({*EXACT_ORDER_FILTERS, *PART_ORDER_FILTERS, *TIME_FILTERS})
ORDER_PARAMS |= {"expand", "page"}
OPERATION_PARAMS = frozenset({"expand", "status", "type", *TIME_FILTERS, "page"})


def check_params(query: Mapping[str, str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise validation(f"unknown parameters {unknown}; known: {sorted(allowed)}")


def values(raw: str) -> set[str]:
    return {item.strip() for item in raw.split(",") if item.strip()}


def expand_of(query: Mapping[str, str], allowed: frozenset[str]) -> frozenset[str]:
    wanted = frozenset(values(query.get("expand", "")))
    unknown = sorted(wanted - allowed)
    if unknown:
        raise validation(f"unknown expand {unknown}; possible: {sorted(allowed)}")
    return wanted


def parse_time(raw: str, name: str, *, end: bool) -> datetime:
    text = raw.strip()
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").date()
            return datetime.combine(day, time.max if end else time.min, UTC)
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise validation(f"{name} must be like 2016-01-31 23:59:59") from None


def _time_window(query: Mapping[str, str]) -> Callable[[datetime], bool]:
    low = high = None
    if "created_from" in query:
        low = parse_time(query["created_from"], "created_from", end=False)
    if "created_to" in query:
        high = parse_time(query["created_to"], "created_to", end=True)

    def inside(moment: datetime) -> bool:
        second = moment.astimezone(UTC).replace(microsecond=0)
        return (low is None or second >= low) and (high is None or second <= high)

    return inside


def _order_facts(order: Order) -> dict[str, str | None]:
    card = order.card
    return {
        "status": order.status.value,
        "merchant_order_id": order.merchant_order_id,
        "card.type": card.brand if card else None,
        "card.subtype": (("classic" if card.brand == "visa" else "standard") if card else None),
        "location.ip": order.location.get("ip"),
        "issuer.country": ISSUER_COUNTRY if card and card.registered else None,
        "issuer.bin": card.bin if card else None,
        "client.name": order.client.get("name"),
        "client.email": order.client.get("email"),
        "issuer.title": ISSUER_TITLE if card and card.registered else None,
    }


def order_filter(query: Mapping[str, str]) -> Callable[[Order], bool]:
    check_params(query, ORDER_PARAMS)
    if "status" in query:
        _known(values(query["status"]), {s.value for s in Status}, "status")
    exact = {name: values(query[name]) for name in EXACT_ORDER_FILTERS if name in query}
    parts = {name: query[name].strip().lower() for name in PART_ORDER_FILTERS if name in query}
    inside = _time_window(query)

    def keep(order: Order) -> bool:
        facts = _order_facts(order)
        for name, wanted in exact.items():
            if facts[name] not in wanted:
                return False
        for name, part in parts.items():
            fact = facts[name]
            if fact is None or part not in fact.lower():
                return False
        return inside(order.created)

    return keep


def operation_filter(query: Mapping[str, str]) -> Callable[[Operation], bool]:
    check_params(query, OPERATION_PARAMS)
    statuses = values(query["status"]) if "status" in query else None
    types = values(query["type"]) if "type" in query else None
    if statuses is not None:
        _known(statuses, {s.value for s in OpStatus}, "status")
    if types is not None:
        _known(types, {t.value for t in OpType}, "type")
    inside = _time_window(query)

    def keep(op: Operation) -> bool:
        if statuses is not None and op.status.value not in statuses:
            return False
        if types is not None and op.type.value not in types:
            return False
        return inside(op.created)

    return keep


def _known(given: set[str], known: set[str], name: str) -> None:
    unknown = sorted(given - known)
    if unknown:
        raise validation(f"{name} {unknown} is not one of {sorted(known)}")


def page_of(
    rows: Sequence[T], query: Mapping[str, str], url: URL, page_size: int
) -> tuple[list[T], dict[str, str]]:
    """One page of ``rows`` and the ``Link`` header to the others."""
    raw = query.get("page", "1")
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise validation("page must be a number from 1")
    number = int(raw)
    last = max(1, -(-len(rows) // page_size))
    start = (number - 1) * page_size
    links = {"first": 1, "last": last}
    if number > 1:
        links["prev"] = min(number - 1, last)
    if number < last:
        links["next"] = number + 1
    order = ("first", "prev", "next", "last")
    header = ", ".join(
        f'<{url.update_query(page=str(links[rel]))}>; rel="{rel}"' for rel in order if rel in links
    )
    return list(rows[start : start + page_size]), {"Link": header}
