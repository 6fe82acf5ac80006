"""The audit ledger: every approved money movement, the oracle for "charged exactly once".

An entry is written in the same step that moves an order's status, so an order that says
FullyPaid has its Purchase in the ledger, even when the response never reached the client
(the ``commit-then-drop`` fault). Declines move no money and are not entries.

Entries hold no secret: the card is its masked PAN and its storedId or TWO token, never a
full PAN, and never the order password. Amounts are exact strings (``"9.99"``).

Both sandboxes write the same entries: TXPG's with its order types and tran types
(``Order_REC``, ``Purchase``), the Bizon sandbox's with its own (``rebill``, ``charge``) and
its ``merchant_order_id`` and parent order (for a rebill or a credit to an earlier order's
card). ``direction`` means the same in both.

Read it from Python (:meth:`Ledger.entries`), over HTTP (``GET /_admin/ledger``), or as
JSON lines: :meth:`Ledger.dump_jsonl`, or ``--ledger-file`` to append each entry as it
happens (flushed at once, so the file survives a killed sandbox).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    seq: int  #: 1, 2, 3... in the order the money moved
    time: str  #: UTC, ISO 8601 (``2026-11-21T12:00:00.123456Z``)
    order_id: int
    order_type: str  #: ``Order_REC``, ``OCT``... (Bizon: ``authorize``, ``rebill``, ``credit``...)
    tran_type: str  #: Purchase, Auth, Clearing, Credit, Refund or Reversal (Bizon: its
    #: operation types: authorize, charge, refund, reverse, credit)
    amount: str  #: exact, with the currency's decimals: ``"9.99"``
    currency: str
    #: ``debit`` (money taken from the card), ``credit`` (sent back or paid out), ``hold``
    #: (an authorisation) or ``release`` (an authorisation given back)
    direction: str
    card: str  #: masked PAN, ``416974******1778``
    stored_id: int | None  #: the card's storedId, if it has one
    rid_by_cofp: str | None  #: the card's TWO token, if it has one
    description: str  #: the order's description (a merchant's own reference)
    reverses: str | None = None  #: for a Reversal: the tran type it undoes
    rid_by_pmo: str = ""
    merchant_order_id: str | None = None  #: Bizon: the order's ``merchant_order_id``
    parent_order_id: int | None = None  #: Bizon: the order a rebill or credit was made from

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """Append-only, thread-safe. Optionally mirrored line by line to a JSONL file."""

    def __init__(self, lock: threading.RLock, mirror: Path | None = None) -> None:
        self._lock = lock
        self._entries: list[LedgerEntry] = []
        self._mirror_path = mirror
        self._mirror: IO[str] | None = None

    def append(self, entry: LedgerEntry) -> None:
        with self._lock:
            self._entries.append(entry)
            if self._mirror_path is not None:
                if self._mirror is None:
                    self._mirror = self._mirror_path.open("a", encoding="utf-8")
                self._mirror.write(json.dumps(entry.to_json()) + "\n")
                self._mirror.flush()

    def next_seq(self) -> int:
        with self._lock:
            return len(self._entries) + 1

    def entries(
        self, *, order_id: int | None = None, tran_type: str | None = None
    ) -> list[LedgerEntry]:
        """A snapshot, optionally only one order's or one tran type's entries."""
        with self._lock:
            items: Iterable[LedgerEntry] = list(self._entries)
        if order_id is not None:
            items = [e for e in items if e.order_id == order_id]
        if tran_type is not None:
            items = [e for e in items if e.tran_type == tran_type]
        return list(items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def dump_jsonl(self, path: Path) -> int:
        """Write every entry to ``path`` as JSON lines; returns how many."""
        entries = self.entries()
        with path.open("w", encoding="utf-8") as out:
            for entry in entries:
                out.write(json.dumps(entry.to_json()) + "\n")
        return len(entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def close(self) -> None:
        with self._lock:
            if self._mirror is not None:
                self._mirror.close()
                self._mirror = None
