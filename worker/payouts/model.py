"""Payouts (OCT): who gets how much, and where it goes. Pure: no I/O, no clock.

A payout is validated as a whole when it is built (:meth:`Payout.create`), so a rejected
input changes nothing and the error names the field. Its id is the idempotency key.

Where the money goes, a :data:`Destination`:

* :class:`TokenDestination`: a TWO card-on-file token (``ridByCofp``, always with
  ``cofProviderRid: TWO_COF``). Accepted: 16 to 64 hexadecimal characters, kept as given.
  The reference's tokens are 32 (one example has 31); at least 16 so that the masked form
  (first 6, last 4) always hides something.
* :class:`OrderDestination`: the card of an earlier Bizon order (``POST /orders/{id}/credit``),
  Bizon's token-like destination: an order id of 1-64 ASCII digits (what the Bizon client
  accepts as an order id, ``[0-9A-Za-z_-]{1,64}``, narrowed to the digits Bizon's order ids
  are and its payout adapter sends).
* :class:`PanDestination`: a card number, 13-19 ASCII digits passing the Luhn check, held in a
  :class:`~worker.sensitive.Secret`. Only for an **immediate** payout: it goes straight to the
  gateway and is never stored. Scheduled payouts need a token (TXPG) or an order (Bizon).
* :class:`MaskedPanDestination`: what is left of a PAN once stored: its masked form
  (first 6 and last 4 digits). It can be shown, never sent.

A payout names its gateway (:attr:`Payout.gateway`, :data:`GATEWAYS`): ``txpg`` (the default)
takes a token or a PAN, ``bizon`` an order or a PAN (:data:`DESTINATIONS`). The same PAN rules
hold on both.

What is stored (:meth:`Payout.to_hash`) holds :meth:`Destination.ref`: ``token:<rid>``,
``order:<id>`` or ``pan:<first6******last4>``; never a PAN. The gateway is stored only when
it is not the default (``txpg``), as a subscription's is. Ids, tags and descriptions that
contain something that looks like a card number (13-19 digits passing Luhn) are refused, so a
PAN cannot slip into Redis, logs or reports through another field. (An order id is not held
to that: Bizon's order ids are long numbers, and some pass the Luhn check.)

Payout statuses::

    pending ──► queued ──► sending ──► paid
       │  ▲        │          │
       │  └────────┤          └──► failed ──► pending   (a dead-letter replay)
       ▼           ▼
    cancelled ◄────┘

* ``pending``: waiting for a run (or, for an immediate payout, about to be sent);
* ``queued``: taken by a run (``run_id``), waiting for its approval or its turn; a run that
  is discarded releases it back to ``pending``;
* ``sending``: opened for the gateway; an unknown outcome is reconciled and stays here;
* ``paid`` (``order_id``, ``approval_code``), ``failed`` (declined or rejected: in the dead
  letters, with ``failure_*``), ``cancelled``: final, except that a failed payout may be
  replayed.

Files of payouts (:func:`parse_payout_file`, CSV or JSON Lines) follow the rules of
:mod:`worker.ingest`, for **scheduled payouts with a token or an order** only (columns
``gateway``, ``token``, ``order``): a row with a PAN, or an immediate payout, is refused, since
those go straight to the gateway.
"""

from __future__ import annotations

import csv
import enum
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from worker.errors import InvalidInput
from worker.ingest import FileRefused, json_type, jsonl_records
from worker.money import Money, currency_exponent, parse_amount
from worker.sensitive import Secret, luhn_ok, mask_pan, scrub
from worker.subscriptions import GATEWAYS, validate_id

COF_PROVIDER = "TWO_COF"
DEFAULT_GATEWAY = "txpg"
_ORDER = re.compile(r"[0-9]{1,64}", re.ASCII)
_RID = re.compile(r"[0-9A-Fa-f]{16,64}", re.ASCII)
_MASKED_PAN = re.compile(r"[0-9]{6}\*{3,9}[0-9]{4}", re.ASCII)
_DIGITS = re.compile(r"[0-9]{13,19}", re.ASCII)
_ELLIPSIS = "…"

__all__ = [
    "COF_PROVIDER",
    "DEFAULT_GATEWAY",
    "DESTINATIONS",
    "GATEWAYS",
    "Destination",
    "FileRefused",
    "MaskedPanDestination",
    "OrderDestination",
    "PanDestination",
    "Payout",
    "PayoutMode",
    "PayoutRow",
    "PayoutStatus",
    "TokenDestination",
    "check_gateway",
    "destination_from_ref",
    "destination_kind",
    "parse_destination",
    "parse_payout_csv",
    "parse_payout_file",
    "parse_payout_jsonl",
    "parse_payout_rows",
    "payout_from_row",
]


# --- destinations -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenDestination:
    """A TWO token: ``ridByCofp`` with ``cofProviderRid: TWO_COF``."""

    rid: str
    provider: ClassVar[str] = COF_PROVIDER

    def __post_init__(self) -> None:
        if not isinstance(self.rid, str) or not _RID.fullmatch(self.rid):
            raise InvalidInput(
                "token (ridByCofp) is invalid: use 16-64 hexadecimal characters (0-9, A-F)"
            )

    def masked(self) -> str:
        return f"{COF_PROVIDER}:{self.rid[:6]}{_ELLIPSIS}{self.rid[-4:]}"

    def ref(self) -> str:
        return f"token:{self.rid}"

    @property
    def sendable(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class OrderDestination:
    """The card of an earlier Bizon order: ``POST /orders/{order_id}/credit``."""

    order_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.order_id, str) or not _ORDER.fullmatch(self.order_id):
            raise InvalidInput(
                "order is invalid: give the id of an earlier Bizon order (1-64 digits)"
            )

    def masked(self) -> str:
        # an order id is no secret (and no card number, even when it passes Luhn)
        return f"order:{self.order_id}"

    def ref(self) -> str:
        return f"order:{self.order_id}"

    @property
    def sendable(self) -> bool:
        return True


@dataclass(frozen=True, slots=True, repr=False)
class PanDestination:
    """A card number, for an immediate payout only. ``repr`` shows it masked."""

    pan: Secret[str]

    def __post_init__(self) -> None:
        if not isinstance(self.pan, Secret):
            raise TypeError("PanDestination.pan must be a Secret")
        value = self.pan.reveal()
        if not isinstance(value, str) or not _DIGITS.fullmatch(value):
            raise InvalidInput("pan is invalid: use 13-19 ASCII digits, no spaces or dashes")
        if not luhn_ok(value):
            raise InvalidInput(f"pan {mask_pan(value)} fails the Luhn check")

    @classmethod
    def parse(cls, value: str | Secret[str]) -> PanDestination:
        secret = value if isinstance(value, Secret) else Secret(value)
        return cls(secret)

    def masked(self) -> str:
        return mask_pan(self.pan.reveal())

    def ref(self) -> str:
        return f"pan:{self.masked()}"

    @property
    def sendable(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"PanDestination({self.masked()!r})"


@dataclass(frozen=True, slots=True)
class MaskedPanDestination:
    """A PAN as stored: masked. Shown, never sent (the PAN itself was never kept)."""

    masked_pan: str

    def __post_init__(self) -> None:
        if not isinstance(self.masked_pan, str) or not _MASKED_PAN.fullmatch(self.masked_pan):
            raise ValueError("a stored PAN destination must be masked as first6******last4")

    def masked(self) -> str:
        return self.masked_pan

    def ref(self) -> str:
        return f"pan:{self.masked_pan}"

    @property
    def sendable(self) -> bool:
        return False


Destination = TokenDestination | OrderDestination | PanDestination | MaskedPanDestination

#: The destinations each gateway takes, by their ref kind.
DESTINATIONS: dict[str, tuple[str, ...]] = {"txpg": ("token", "pan"), "bizon": ("order", "pan")}
_KIND_NAMES = {"token": "a token (ridByCofp)", "order": "an order", "pan": "a pan"}


def parse_destination(
    token: object = None, pan: object = None, order: object = None
) -> TokenDestination | OrderDestination | PanDestination:
    """Exactly one of ``token`` (a TWO ``ridByCofp``), ``order`` (an earlier Bizon order's id)
    and ``pan`` (a card number)."""
    given = [name for name, value in (("token", token), ("order", order), ("pan", pan))
             if value not in (None, "")]  # fmt: skip
    if len(given) != 1:
        raise InvalidInput(
            "give exactly one destination: a token (ridByCofp), an order or a pan"
            + (f" (got {' and '.join(given)})" if given else "")
        )
    if token not in (None, ""):
        if not isinstance(token, str):
            raise InvalidInput("token (ridByCofp) must be text")
        return TokenDestination(token)
    if order not in (None, ""):
        if not isinstance(order, str):
            raise InvalidInput("order must be text")
        return OrderDestination(order)
    if not isinstance(pan, str | Secret):
        raise InvalidInput("pan must be text")
    return PanDestination.parse(pan)


def destination_kind(destination: Destination) -> str:
    """``token``, ``order`` or ``pan`` (a masked PAN too): the kind its ref starts with."""
    return destination.ref().partition(":")[0]


def check_gateway(gateway: str, destination: Destination) -> None:
    """Refuse a destination that ``gateway`` does not take (:data:`DESTINATIONS`)."""
    kind = destination_kind(destination)
    allowed = DESTINATIONS[gateway]
    if kind not in allowed:
        takes = " or ".join(_KIND_NAMES[k] for k in allowed)
        owner = next(name for name, kinds in DESTINATIONS.items() if kind in kinds)
        raise InvalidInput(
            f"gateway {gateway} pays out to {takes}, not to {_KIND_NAMES[kind]}: "
            f"{_KIND_NAMES[kind]} is a destination on gateway {owner}"
        )


def destination_from_ref(ref: str) -> TokenDestination | OrderDestination | MaskedPanDestination:
    """The destination a stored :meth:`ref` names (a PAN comes back masked)."""
    kind, _, value = ref.partition(":")
    if kind == "token":
        return TokenDestination(value)
    if kind == "order":
        return OrderDestination(value)
    if kind == "pan":
        return MaskedPanDestination(value)
    raise ValueError(f"unknown destination ref kind {kind!r}")


# --- payouts ----------------------------------------------------------------------------------


class PayoutMode(enum.StrEnum):
    SCHEDULED = "scheduled"  #: paid by a run of a schedule; needs a token or an order
    IMMEDIATE = "immediate"  #: sent at once; a token, an order or a PAN


class PayoutStatus(enum.StrEnum):
    PENDING = "pending"  #: waiting for a run
    QUEUED = "queued"  #: taken by a run (run_id): waiting for approval or its turn
    SENDING = "sending"  #: opened for the gateway; an unknown outcome is reconciled here
    PAID = "paid"  #: final: money moved once
    FAILED = "failed"  #: declined or rejected: in the dead letters
    CANCELLED = "cancelled"  #: final: never sent


#: Every allowed status change; :meth:`Payout.with_status` refuses anything else.
TRANSITIONS: dict[PayoutStatus, frozenset[PayoutStatus]] = {
    PayoutStatus.PENDING: frozenset(
        {PayoutStatus.QUEUED, PayoutStatus.SENDING, PayoutStatus.CANCELLED}
    ),
    PayoutStatus.QUEUED: frozenset(
        {PayoutStatus.SENDING, PayoutStatus.PENDING, PayoutStatus.CANCELLED}
    ),
    PayoutStatus.SENDING: frozenset({PayoutStatus.PAID, PayoutStatus.FAILED}),
    PayoutStatus.PAID: frozenset(),
    PayoutStatus.FAILED: frozenset({PayoutStatus.PENDING}),
    PayoutStatus.CANCELLED: frozenset(),
}
FINAL_STATUSES = frozenset({PayoutStatus.PAID, PayoutStatus.CANCELLED})

#: Stored fields that are left out while empty.
_OPTIONAL = (
    "description",
    "tag",
    "run_id",
    "order_id",
    "approval_code",
    "failure_code",
    "failure_title",
    "failure_reason",
)


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    amount: Money
    destination: Destination
    description: str = ""
    tag: str = ""  #: a batch tag a schedule may select on; "" for none
    mode: PayoutMode = PayoutMode.SCHEDULED
    status: PayoutStatus = PayoutStatus.PENDING
    created_at: int = 0  #: ms since the epoch
    updated_at: int = 0
    run_id: str = ""  #: the run that took it; "" while pending (and for immediate payouts)
    order_id: str = ""  #: the gateway order, once there is one
    approval_code: str = ""  #: when paid
    failure_code: str = ""  #: when failed: the PMO code, or the gateway's error code
    failure_title: str = ""
    failure_reason: str = ""
    gateway: str = DEFAULT_GATEWAY  #: ``txpg`` or ``bizon``: where it is sent

    @property
    def currency(self) -> str:
        return self.amount.currency

    @classmethod
    def create(
        cls,
        *,
        id: str,
        amount: str,
        currency: str,
        token: str | None = None,
        pan: str | Secret[str] | None = None,
        order: str | None = None,
        gateway: str = DEFAULT_GATEWAY,
        description: str = "",
        tag: str = "",
        mode: str = PayoutMode.SCHEDULED.value,
        now_ms: int = 0,
    ) -> Payout:
        """Validate every field; raise :class:`InvalidInput` naming the first bad one.

        ``gateway`` is ``txpg`` (a ``token`` or a ``pan``) or ``bizon`` (an ``order`` or a
        ``pan``); a ``pan`` only with ``mode="immediate"``. The message never holds a PAN,
        whichever field it was typed into.
        """
        try:
            return cls._create(
                id=id,
                amount=amount,
                currency=currency,
                token=token,
                pan=pan,
                order=order,
                gateway=gateway,
                description=description,
                tag=tag,
                mode=mode,
                now_ms=now_ms,
            )
        except InvalidInput as exc:
            raise InvalidInput(scrub(str(exc))) from None

    @classmethod
    def _create(
        cls,
        *,
        id: str,
        amount: str,
        currency: str,
        token: str | None,
        pan: str | Secret[str] | None,
        order: str | None,
        gateway: str,
        description: str,
        tag: str,
        mode: str,
        now_ms: int,
    ) -> Payout:
        payout_id = _safe_id(id, "payout id")
        currency_exponent(currency)  # an unknown (or unhashable) currency is named, not a crash
        money = parse_amount(amount, currency)
        chosen = _gateway(gateway)
        destination = parse_destination(token, pan, order)
        check_gateway(chosen, destination)
        payout_mode = _mode(mode)
        if payout_mode is PayoutMode.SCHEDULED and isinstance(destination, PanDestination):
            raise InvalidInput(
                "scheduled payouts need a token (txpg) or an order (bizon); a PAN is only for "
                "an immediate payout"
            )
        return cls(
            id=payout_id,
            amount=money,
            destination=destination,
            description=_text(description, "description", 255),
            tag=_safe_id(tag, "tag") if tag != "" else "",
            mode=payout_mode,
            created_at=now_ms,
            updated_at=now_ms,
            gateway=chosen,
        )

    def with_status(self, status: PayoutStatus, now_ms: int, **fields: str) -> Payout:
        """This payout moved to ``status`` (an allowed transition), with outcome ``fields``.

        ``fields`` may set ``run_id``, ``order_id``, ``approval_code`` and ``failure_code``,
        ``failure_title``, ``failure_reason`` (scrubbed of anything like a PAN).
        """
        if status not in TRANSITIONS[self.status]:
            raise InvalidInput(f"payout {self.id} is {self.status}; it cannot become {status}")
        allowed = {"run_id", "order_id", "approval_code"} | {
            name for name in _OPTIONAL if name.startswith("failure_")
        }
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise TypeError(f"unknown payout fields: {', '.join(unknown)}")
        clean = {
            name: scrub(value) if name.startswith("failure_") else value
            for name, value in fields.items()
        }
        return replace(self, status=status, updated_at=now_ms, **clean)  # type: ignore[arg-type]

    def to_hash(self) -> dict[str, str]:
        """The stored hash: no ``id`` (the key holds it), never a PAN, no empty optional field,
        no ``gateway`` while it is the default (``txpg``)."""
        out = {
            "amount_minor": str(self.amount.minor),
            "currency": self.amount.currency,
            "destination": self.destination.ref(),
            "mode": self.mode.value,
            "status": self.status.value,
            "created_at": str(self.created_at),
            "updated_at": str(self.updated_at),
        }
        optional = {name: getattr(self, name) for name in _OPTIONAL}
        optional["gateway"] = "" if self.gateway == DEFAULT_GATEWAY else self.gateway
        out.update({name: value for name, value in optional.items() if value})
        return out

    @classmethod
    def from_hash(cls, data: Mapping[str, str], payout_id: str) -> Payout:
        """A stored payout; a PAN destination comes back masked (:class:`MaskedPanDestination`)."""
        return cls(
            id=payout_id,
            amount=Money(int(data["amount_minor"]), data["currency"]),
            destination=destination_from_ref(data["destination"]),
            mode=PayoutMode(data["mode"]),
            status=PayoutStatus(data["status"]),
            created_at=int(data.get("created_at", "0")),
            updated_at=int(data.get("updated_at", "0")),
            description=data.get("description", ""),
            tag=data.get("tag", ""),
            run_id=data.get("run_id", ""),
            order_id=data.get("order_id", ""),
            approval_code=data.get("approval_code", ""),
            failure_code=data.get("failure_code", ""),
            failure_title=data.get("failure_title", ""),
            failure_reason=data.get("failure_reason", ""),
            gateway=data.get("gateway") or DEFAULT_GATEWAY,
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-able view for the CLI and events: the destination masked."""
        return {
            "id": self.id,
            "amount": self.amount.to_gateway(),
            "currency": self.currency,
            "gateway": self.gateway,
            "destination": self.destination.masked(),
            "description": self.description,
            "tag": self.tag,
            "mode": self.mode.value,
            "status": self.status.value,
            "run_id": self.run_id,
            "order_id": self.order_id,
            "approval_code": self.approval_code,
            "failure_code": self.failure_code,
            "failure_title": self.failure_title,
            "failure_reason": self.failure_reason,
        }


def _gateway(value: object) -> str:
    if isinstance(value, str) and value in GATEWAYS:
        return value
    raise InvalidInput(f"gateway {value!r} is not one of {', '.join(GATEWAYS)}")


def _mode(value: object) -> PayoutMode:
    for mode in PayoutMode:
        if value == mode.value:
            return mode
    allowed = ", ".join(mode.value for mode in PayoutMode)
    raise InvalidInput(f"mode {value!r} is not one of {allowed}")


def _looks_like_pan(value: str) -> bool:
    return scrub(value) != value


def _safe_id(value: object, what: str) -> str:
    if isinstance(value, str) and _looks_like_pan(value):
        raise InvalidInput(f"{what} looks like a card number; a PAN must never be used as an id")
    return validate_id(value, what)


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    # Cc: C0, DEL and C1 controls; Cs: lone surrogates, which Redis (UTF-8) cannot store.
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise InvalidInput(f"{what} contains control characters or invalid unicode")
    if _looks_like_pan(value):
        raise InvalidInput(
            f"{what} contains what looks like a card number or a password; it would be stored"
        )
    return value


# --- one row, and files of rows ---------------------------------------------------------------

REQUIRED = ("id", "amount", "currency")
OPTIONAL = ("gateway", "description", "token", "order", "pan", "tag", "mode")
FIELDS = frozenset(REQUIRED + OPTIONAL)
FORMATS = (".csv", ".jsonl")

_FROM_FILE = (
    "immediate payouts are not imported from a file: they go straight to the gateway "
    "(use `billing payouts add --now`); a file is for scheduled payouts with a token or an "
    "order"
)
_PAN_IN_FILE = (
    "a PAN is only for an immediate payout, and immediate payouts are not imported from a "
    "file: a file is for scheduled payouts with a token (txpg) or an order (bizon)"
)


def payout_from_row(
    record: Mapping[str, Any], *, now_ms: int = 0, from_file: bool = True
) -> Payout:
    """The payout one row (a CSV or JSON Lines record, or the CLI's options) describes.

    Fields: ``id``, ``amount`` (text like ``"9.99"``), ``currency``, exactly one of ``token``,
    ``order`` and ``pan``, and optionally ``gateway`` (``txpg`` by default; ``bizon`` for an
    ``order``), ``description``, ``tag``, ``mode`` (``scheduled`` by default). With
    ``from_file`` (the default) a PAN or an immediate payout is refused.
    """
    if not isinstance(record, Mapping):
        raise InvalidInput("a payout row must be an object of fields")
    unknown = sorted(str(name) for name in set(record) - FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    if from_file and record.get("pan") not in (None, ""):
        raise InvalidInput(_PAN_IN_FILE)
    if from_file and record.get("mode") == PayoutMode.IMMEDIATE.value:
        raise InvalidInput(_FROM_FILE)
    missing = [name for name in REQUIRED if record.get(name) in (None, "")]
    if missing:
        raise InvalidInput(f"missing {', '.join(missing)}")
    for name in FIELDS - {"pan"}:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            hint = ': a JSON number may not be exact; write "9.99"' if name == "amount" else ""
            raise InvalidInput(f"{name} must be text, not {json_type(value)}{hint}")
    return Payout.create(
        id=record["id"],
        amount=record["amount"],
        currency=record["currency"],
        token=record.get("token") or None,
        pan=record.get("pan") or None,
        order=record.get("order") or None,
        gateway=record.get("gateway") or DEFAULT_GATEWAY,
        description=record.get("description") or "",
        tag=record.get("tag") or "",
        mode=record.get("mode") or PayoutMode.SCHEDULED.value,
        now_ms=now_ms,
    )


@dataclass(frozen=True, slots=True)
class PayoutRow:
    """A valid row: the payout it describes, and its line in the file."""

    line: int
    payout: Payout


def parse_payout_rows(
    rows: Iterable[tuple[int, Mapping[str, Any] | str]], *, now_ms: int = 0
) -> tuple[tuple[PayoutRow, ...], tuple[str, ...]]:
    """(valid rows, errors) from ``(line, record)`` pairs; errors read ``line N: reason``.

    A record given as a string is a row that could not be read (the string says why). An id
    seen on an earlier row is an error on the later one, whatever it says: an id pays once,
    so a second payout needs its own id. No error message holds a PAN.
    """
    valid: list[PayoutRow] = []
    errors: list[str] = []
    first: dict[str, int] = {}
    for line, record in rows:
        if isinstance(record, str):
            errors.append(scrub(f"line {line}: {record}"))
            continue
        raw_id = record.get("id") if isinstance(record, Mapping) else None
        payout_id = raw_id if isinstance(raw_id, str) and raw_id else None
        earlier = first.get(payout_id) if payout_id is not None else None
        if payout_id is not None and earlier is None:
            first[payout_id] = line
        try:
            payout = payout_from_row(record, now_ms=now_ms)
        except InvalidInput as exc:
            errors.append(scrub(f"line {line}: {exc}"))
            continue
        if earlier is not None:
            errors.append(
                f"line {line}: payout id {payout_id} is already on line {earlier}; "
                "an id pays once, so give another payout its own id"
            )
            continue
        valid.append(PayoutRow(line, payout))
    return tuple(valid), tuple(errors)


def parse_payout_file(
    name: str, data: bytes, *, now_ms: int = 0
) -> tuple[tuple[PayoutRow, ...], tuple[str, ...]]:
    """A ``.csv`` or ``.jsonl`` file's bytes (UTF-8, an optional BOM), by ``name``'s extension.

    :class:`FileRefused` when the file as a whole cannot be read.
    """
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix not in FORMATS:
        raise FileRefused(f"unknown file type {suffix or '(none)'!r}: use .csv or .jsonl")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"the file is not UTF-8 (byte {exc.start})") from None
    lines = io.StringIO(text, newline="")
    if suffix == ".csv":
        return parse_payout_csv(lines, now_ms=now_ms)
    return parse_payout_jsonl(lines, now_ms=now_ms)


def parse_payout_csv(
    lines: Iterable[str], *, now_ms: int = 0
) -> tuple[tuple[PayoutRow, ...], tuple[str, ...]]:
    """CSV with a header row; an empty cell is a field left out (see :mod:`worker.ingest`)."""
    reader = csv.reader(iter(lines), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise FileRefused(f"line 1: the header is not valid CSV: {exc}") from None
    if not header:
        raise FileRefused("line 1 must name the columns (a header row); it is empty")
    _check_header(header)
    return parse_payout_rows(_csv_records(reader, header), now_ms=now_ms)


def parse_payout_jsonl(
    lines: Iterable[str], *, now_ms: int = 0
) -> tuple[tuple[PayoutRow, ...], tuple[str, ...]]:
    """One JSON object per line; blank lines are ignored; values are text."""
    return parse_payout_rows(jsonl_records(lines), now_ms=now_ms)


def _check_header(header: list[str]) -> None:
    unknown = [name for name in header if name not in FIELDS]
    if unknown:
        names = scrub(", ".join(repr(n) for n in unknown))
        allowed = ", ".join((*REQUIRED, *OPTIONAL))
        raise FileRefused(
            f"unknown column{'s' if len(unknown) > 1 else ''}: {names} (allowed: {allowed})"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise FileRefused(
            f"column{'s' if len(repeated) > 1 else ''} given twice: {', '.join(repeated)}"
        )
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise FileRefused(f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")


def _csv_records(reader: Any, header: list[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:  # a stray quote: where the following rows start is unknown
            raise FileRefused(f"line {line}: not valid CSV: {exc}") from None
        if cells is None:
            return
        if not cells or cells == [""] * len(cells):
            continue
        if len(cells) != len(header):
            yield line, f"has {len(cells)} cells, the header has {len(header)}"
            continue
        yield line, {name: cell for name, cell in zip(header, cells, strict=True) if cell != ""}
