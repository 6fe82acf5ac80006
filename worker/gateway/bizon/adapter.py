"""Bizon behind the gateway port: a recurring charge is ``POST /orders/{parent}/rebill`` (a new
order on the card of an earlier, customer-present order) then ``PUT /orders/{id}/charge``; a
payout is ``POST /orders/{parent}/credit`` (or ``POST /orders/credit`` to a card number);
``GET /orders/{id}`` reconciles.

Finding a rebill whose answer was lost
--------------------------------------
The reference lets ``rebill`` carry no ``merchant_order_id`` and no ``description`` (only
amount, cvv, location, ``options.recurring``, ``recurring_details``), and the gateway answers
with a NEW order whose id is in that answer only. So a lost answer leaves an order this
attempt cannot name. :class:`BizonChargeGateway` therefore

1. writes a note ahead of every rebill (the port's :class:`~worker.gateway.port.WritesAhead`):
   the wall-clock second the request is about to leave, stored on the attempt *before* the
   call;
2. before any rebill, when earlier notes exist (an earlier try whose outcome is unknown),
   SEARCHES ``GET /orders/`` with ``created_from``/``created_to`` around each earlier send
   time (``skew`` seconds either side, plus the request deadline after it), narrowed by
   ``issuer.bin`` (the parent's BIN), and keeps the orders on the parent's masked PAN with the
   attempt's amount, excluding the parent itself. One match is this attempt's order. None:
   the earlier try never made one, and only then is a new rebill sent. More than one: the
   orders cannot be told apart (another attempt on the same card, same amount, same minutes),
   so the attempt is refused for a human (:class:`AmbiguousRebill`, no money moves). A search
   that fails raises :class:`RebillSearchFailed` (``GatewayUnavailable``): the pipeline backs
   off and searches again; it never rebills blind;
3. assumes the gateway acts on a request within the request deadline or not at all: the
   search runs after the earlier call returned or timed out, so a request still queued at the
   gateway after that (past the deadline) would not be found and a second rebill could follow.

When the gateway is known to honour ``merchant_order_id`` on rebill (``honours_rebill_ids``,
``BILLING_BIZON_REBILL_MERCHANT_ID=1``; the sandbox's ``--rebill-merchant-fields``) the rebill
carries the attempt's key as ``merchant_order_id`` and the search is by that id alone.

Credits do take ``merchant_order_id``, so a payout's order is named ahead: the handle's id is
the attempt's key until the gateway gives its own, and :meth:`BizonPayoutGateway.lookup` finds
the credit by ``merchant_order_id``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from worker.errors import (
    CredentialsRejected,
    DeclineClass,
    GatewayError,
    GatewayUnavailable,
    InvalidInput,
    RequestRejected,
)
from worker.gateway.bizon.client import BizonClient
from worker.gateway.bizon.codes import FAILED_STATUSES, OperationStatus, OrderStatus, iso_code
from worker.gateway.bizon.models import (
    Credit,
    Expand,
    Order,
    OrderFilter,
    Pan,
    Rebill,
)
from worker.gateway.port import (
    PAN_PREFIX,
    Approval,
    Lookup,
    LookupOutcome,
    OrderHandle,
    PanNotInMemory,
    PanVault,
    pan_lookup,
)
from worker.money import Money
from worker.sensitive import Secret

GATEWAY = "bizon"
ORDER_PREFIX = "order:"  #: a payout destination: the card of an earlier Bizon order
_LOOKUP_EXPANDS = (Expand.CARD, Expand.OPERATIONS_CASHFLOW)
#: Statuses in which money moved (a refund or chargeback later does not undo the charge).
_MOVED = frozenset(
    {OrderStatus.CHARGED, OrderStatus.REFUNDED, OrderStatus.CHARGEDBACK, OrderStatus.CREDITED}
)


class RebillSearchFailed(GatewayUnavailable):
    """The search for an order an earlier rebill may have made did not come back (or may not
    run yet): nothing is sent; try again later.
    """


class AmbiguousRebill(RequestRejected):
    """Several orders match an earlier rebill of this attempt: a human decides."""


def merchant_key(description: str) -> str:
    """The attempt's key as a ``merchant_order_id`` (the listing filter splits on commas)."""
    return description.replace(",", ";")


def classify(order: Order) -> Lookup:
    """What an order says about its money: charged (or credited) is PAID; authorized is
    NOT_EXECUTED (charging it is safe); declined, rejected, fraud, reversed is FAILED, classed
    by the last failed operation's ISO code; anything else is UNRESOLVED.
    """
    status = order.status_raw
    if order.status in _MOVED:
        return Lookup(LookupOutcome.PAID, status, result_code="00", reference=order.id)
    if order.status is OrderStatus.AUTHORIZED:
        return Lookup(LookupOutcome.NOT_EXECUTED, status)
    if order.status in FAILED_STATUSES:
        failed = [op for op in order.operations if op.status is OperationStatus.FAILURE]
        raw = failed[-1].iso_response_code if failed else None
        entry = iso_code(raw, order.card_type) if raw else None
        decline = entry.decline_class if entry else DeclineClass.SOFT
        if order.status is OrderStatus.FRAUD and entry is None:
            decline = DeclineClass.HARD
        if decline in (DeclineClass.UNKNOWN, DeclineClass.UNAVAILABLE):
            decline = DeclineClass.SOFT
        return Lookup(
            LookupOutcome.FAILED,
            status,
            decline_class=decline,
            result_code=entry.code if entry else None,
            result_title=entry.title if entry else None,
        )
    return Lookup(LookupOutcome.UNRESOLVED, status)


def _approval(order: Order) -> Approval:
    last = order.last_operation
    code = last.iso_response_code if last is not None else None
    return Approval(order.auth_code, order.id, code)


def _parent_id(card_ref: str) -> str:
    ref = card_ref.removeprefix(ORDER_PREFIX)
    if not ref.isdigit():
        raise InvalidInput("a Bizon card reference must be a parent order id")
    return ref


class BizonChargeGateway:
    """The charge port over a :class:`BizonClient` (thread-safe; share one per process).

    ``auto_charge``: the project charges every authorisation at once
    (``BILLING_BIZON_AUTO_CHARGE``), so a rebill may already be charged; ``skew``: seconds
    of clock difference (and margin) allowed between this host and the gateway;
    ``deadline``: the longest a request may take (the client's overall deadline).
    """

    name = GATEWAY

    def __init__(
        self,
        client: BizonClient,
        *,
        auto_charge: bool = False,
        honours_rebill_ids: bool = False,
        skew: float = 120.0,
        deadline: float | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.auto_charge = auto_charge
        self.honours_rebill_ids = honours_rebill_ids
        self.skew = skew
        self.deadline = client.settings.deadline if deadline is None else deadline
        self.wall = wall
        self._parents: dict[str, Order] = {}

    # -- write-ahead ---------------------------------------------------------------------------

    def note_ahead(self, amount: Money, description: str, card_ref: str) -> str:
        return json.dumps({"sent_at": int(self.wall())})

    # -- the port ------------------------------------------------------------------------------

    def open_order(
        self, amount: Money, description: str, card_ref: str, ahead: Sequence[str] = ()
    ) -> OrderHandle:
        parent = _parent_id(card_ref)
        earlier = [_sent_at(note) for note in ahead[:-1]]
        if earlier:
            found = self.find_rebill(parent, amount, description, earlier)
            if found is not None:
                return OrderHandle(found.id)
        request = Rebill(
            amount,
            recurring=True,
            merchant_order_id=merchant_key(description) if self.honours_rebill_ids else None,
            description=description if self.honours_rebill_ids else None,
        )
        return OrderHandle(self.client.rebill(parent, request).id)

    def attach_card(self, order: OrderHandle, card_ref: str) -> None:
        """Nothing to do: a rebill is made on its parent's card."""

    def execute(self, order: OrderHandle, amount: Money) -> Approval:
        if self.auto_charge:
            current = self.client.get_order(order.id, _LOOKUP_EXPANDS)
            if current.status in _MOVED:
                return _approval(current)
        return _approval(self.client.charge(order.id))

    def lookup(self, order: OrderHandle) -> Lookup:
        return classify(self.client.get_order(order.id, _LOOKUP_EXPANDS))

    # -- the search ----------------------------------------------------------------------------

    def find_rebill(
        self, parent_id: str, amount: Money, description: str, sent_at: Iterable[int]
    ) -> Order | None:
        """The order an earlier rebill of this attempt made, or None when there is none."""
        windows = _merged((at - self.skew, at + self.deadline + self.skew) for at in sent_at)
        try:
            if self.honours_rebill_ids:
                flt = OrderFilter(merchant_order_id=(merchant_key(description),))
                found = {o.id: o for o in self.client.list_orders(flt) if o.id != parent_id}
            else:
                parent = self._parent(parent_id)
                bins = (parent.pan[:6],) if parent.pan and parent.pan[:6].isdigit() else ()
                found = {}
                for start, end in windows:
                    flt = OrderFilter(
                        created_from=_utc(start), created_to=_utc(end), issuer_bin=bins
                    )
                    for o in self.client.list_orders(flt):
                        if o.id != parent_id and o.pan == parent.pan and o.amount == amount:
                            found[o.id] = o
        except CredentialsRejected:
            raise
        except (GatewayError, InvalidInput) as exc:
            raise RebillSearchFailed(
                f"searching for an earlier rebill failed: {exc}", gateway=GATEWAY
            ) from exc
        if len(found) > 1:
            raise AmbiguousRebill(
                f"{len(found)} orders ({', '.join(sorted(found))}) match an earlier rebill of"
                " this attempt; a human decides which is its order",
                gateway=GATEWAY,
            )
        return next(iter(found.values()), None)

    def _parent(self, parent_id: str) -> Order:
        parent = self._parents.get(parent_id)
        if parent is None:
            parent = self.client.get_order(parent_id)
            self._parents[parent_id] = parent
        return parent


def _sent_at(note: str) -> int:
    try:
        return int(json.loads(note)["sent_at"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput("a write-ahead note that is not this gateway's") from exc


def _merged(windows: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping time windows joined, so a search lists each minute once."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(windows):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


class BizonPayoutGateway:
    """The payout port over a :class:`BizonClient`. A destination is ``order:<parent id>``
    (the card of an earlier Bizon order) or ``pan:<key>`` (a card number in the vault of the
    process that accepted the payout, as for TXPG). ``open_order`` calls nothing: the credit
    is one call, made by ``execute`` with ``merchant_order_id`` = the attempt's key.
    """

    name = GATEWAY

    def __init__(self, client: BizonClient, *, pans: PanVault | None = None) -> None:
        self.client = client
        self._pan_of = pan_lookup(pans)

    def open_order(
        self, amount: Money, description: str, card_ref: str, ahead: Sequence[str] = ()
    ) -> OrderHandle:
        """No call: the handle names the credit by its key and keeps its destination."""
        if not card_ref.startswith((ORDER_PREFIX, PAN_PREFIX)):
            raise InvalidInput("a Bizon payout destination is 'order:<id>' or 'pan:<key>'")
        return OrderHandle(merchant_key(description), Secret(card_ref))

    def attach_card(self, order: OrderHandle, card_ref: str) -> None:
        """Nothing to do: the destination goes with the credit itself."""

    def execute(self, order: OrderHandle, amount: Money) -> Approval:
        if order.secret is None:
            raise InvalidInput("the payout's destination is gone")
        ref = order.secret.reveal()
        request = Credit(amount, merchant_order_id=order.id, description=order.id)
        if ref.startswith(ORDER_PREFIX):
            return _approval(self.client.credit(_parent_id(ref), request))
        pan = self._pan_of(ref)
        if pan is None:
            raise PanNotInMemory(
                "the card number of this immediate payout is no longer in memory (the process"
                " restarted); nothing was sent: submit the payout again"
            )
        return _approval(self.client.credit_pan(Pan.parse(pan.reveal()), request))

    def lookup(self, order: OrderHandle) -> Lookup:
        if order.id.isdigit():
            return classify(self.client.get_order(order.id, _LOOKUP_EXPANDS))
        found = list(self.client.list_orders(OrderFilter(merchant_order_id=(order.id,))))
        if not found:
            return Lookup(LookupOutcome.NOT_EXECUTED, "no order with this merchant_order_id")
        if len(found) > 1:
            return Lookup(LookupOutcome.UNRESOLVED, f"{len(found)} orders with this key")
        return classify(self.client.get_order(found[0].id, _LOOKUP_EXPANDS))
