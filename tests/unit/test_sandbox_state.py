"""The sandbox's Python API without HTTP: copies out, reset, ids never reused, and a server
that cannot start says so.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from worker.money import Money
from worker.sandbox import SandboxServer, SandboxState
from worker.sandbox.errors import TxpgError


def _paid(state: SandboxState, amount: str = "9.99") -> int:
    order = state.create_order(
        {"order": {"typeRid": "Order_REC", "amount": amount, "currency": "AZN"}}, "http://x/flex"
    )["order"]
    state.set_src_token(order["id"], order["password"], {"token": {"storedId": 5125}})
    state.exec_tran(order["id"], order["password"], {"tran": {"phase": "Single"}})
    order_id: int = order["id"]
    return order_id


def test_reads_are_copies() -> None:
    state = SandboxState()
    order_id = _paid(state)
    copy = state.order(order_id)
    copy.trans.clear()
    copy.cleared_minor = 0
    assert len(state.order(order_id).trans) == 1
    assert state.order(order_id).cleared_minor == 999
    entries = state.ledger.entries()
    entries.clear()
    assert len(state.ledger) == 1


def test_reset_forgets_everything_but_ids_keep_counting() -> None:
    state = SandboxState()
    first = _paid(state)
    state.top_up(5159, Money(100, "AZN"))
    state.set_clock(lambda: state.clock().replace(year=2040))
    state.reset()
    assert state.orders() == []
    assert len(state.ledger) == 0
    card = state.cards.by_stored_id(5159)
    assert card is not None
    assert card.balance == Money(0, "AZN")
    assert state.clock().year < 2040
    assert _paid(state) > first
    with pytest.raises(TxpgError) as caught:
        state.get_order(first, None, {}, "http://x/flex")
    assert caught.value.http_status == 404


def test_no_demo_cards_when_given_an_empty_list() -> None:
    state = SandboxState(cards=[])
    with pytest.raises(TxpgError) as caught:
        _paid(state)
    assert caught.value.code == "InvalidToken"


def test_a_server_that_cannot_bind_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port: Any = taken.getsockname()[1]
        server = SandboxServer(port=port)
        with pytest.raises(RuntimeError, match="could not start"):
            server.start()
        server.stop()
