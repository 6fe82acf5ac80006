"""The OCT payout adapter against the sandbox, over real HTTP: what goes on the wire, what the
ledger shows, how declines and lost answers come back, and that a PAN never leaks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.logs import LogCapture
from worker import errors as base
from worker.errors import DeclineClass, InvalidInput
from worker.gateway.port import ChargeGateway, LookupOutcome, OrderHandle, PanNotInMemory
from worker.gateway.txpg.client import TxpgClient
from worker.gateway.txpg.payouts import InvalidCardRef, TxpgPayoutGateway
from worker.money import parse_amount
from worker.sandbox import Endpoint, FaultKind, FaultRule, SandboxServer
from worker.sensitive import Secret, mask_pan
from worker.settings import TxpgSettings

AMOUNT = parse_amount("25.00", "AZN")
APPROVE = "26AB0DACE700EF1180EB005056954BCC"  #: the reference's OCT destination
LIMIT = "4D0C64A1E700EF1180EB005056954BCC"  #: declines credits with 64
CLOSED = "4D0C29A1E700EF1180EB005056954BCC"  #: declines credits with 29
#: A Luhn-valid card number no other test uses, so a leak of it can only come from here.
PAN = "4169740000001230"
PAN_REF = "pan:payout-7"


class Recorder(httpx.HTTPTransport):
    """The real transport, keeping each request's path and JSON body (in memory only)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, dict[str, object] | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, body))
        return super().handle_request(request)


@pytest.fixture
def wire() -> Recorder:
    return Recorder()


@pytest.fixture
def client(sandbox: SandboxServer, wire: Recorder) -> Iterator[TxpgClient]:
    settings = TxpgSettings(base_url=sandbox.base_url, read_timeout=5.0, deadline=10.0)
    with TxpgClient(settings, transport=wire) as txpg:
        yield txpg


@pytest.fixture
def pans(log_capture: LogCapture) -> dict[str, Secret[str]]:
    log_capture.secrets.add(PAN)  # the session's log scan fails the run if it shows up
    return {PAN_REF: Secret(PAN)}


@pytest.fixture
def payouts(client: TxpgClient, pans: dict[str, Secret[str]]) -> TxpgPayoutGateway:
    return TxpgPayoutGateway(client, pans=pans)


def _credits(sandbox: SandboxServer, order: OrderHandle) -> list[object]:
    return list(sandbox.state.ledger.entries(order_id=int(order.id)))


def _count(sandbox: SandboxServer, endpoint: Endpoint) -> int:
    """Start counting the calls to ``endpoint`` (a latency rule of 0 ms); returns its id."""
    return sandbox.state.faults.add(FaultRule(FaultKind.LATENCY, endpoint, latency_ms=0)).id


def _fired(sandbox: SandboxServer, rule_id: int) -> int:
    return next(r.fired for r in sandbox.state.faults.rules() if r.id == rule_id)


def test_it_fits_the_gateway_port(payouts: TxpgPayoutGateway) -> None:
    port: ChargeGateway = payouts
    assert port.name == "txpg"


def test_token_payout_is_one_ledger_credit(
    sandbox: SandboxServer, payouts: TxpgPayoutGateway, wire: Recorder
) -> None:
    order = payouts.open_order(AMOUNT, "payout p-1 seller-9")
    assert order.secret is not None
    payouts.attach_card(order, f"token:{APPROVE}")
    approval = payouts.execute(order, AMOUNT)

    assert approval.result_code == "1"
    assert approval.approval_code and approval.reference
    (entry,) = sandbox.state.ledger.entries()
    assert entry.order_id == int(order.id)
    assert (entry.order_type, entry.tran_type, entry.direction) == ("OCT", "Credit", "credit")
    assert (entry.amount, entry.currency) == ("25.00", "AZN")
    assert entry.description == "payout p-1 seller-9"
    assert entry.rid_by_cofp == APPROVE
    assert entry.rid_by_pmo == approval.reference

    found = payouts.lookup(order)
    assert found.outcome is LookupOutcome.PAID
    assert found.status == "FullyPaid"
    info = payouts.client.get_order(int(order.id), detailed=True)
    assert info.type_rid == "OCT"
    assert [(t.type, t.pmo_result_code) for t in info.trans] == [("Credit", 1)]

    # The bodies are the reference's, key for key.
    bodies = [(method, path.rsplit("/", 1)[-1], body) for method, path, body in wire.sent]
    assert bodies[0] == (
        "POST",
        "",
        {
            "order": {
                "typeRid": "OCT",
                "amount": "25.00",
                "currency": "AZN",
                "language": "az",
                "description": "payout p-1 seller-9",
            }
        },
    )
    assert bodies[1] == (
        "POST",
        "set-dst-token",
        {
            "token": {
                "extCof": {"ridByCofp": APPROVE, "cofProviderRid": "TWO_COF"},
                "card": {"entryMode": "ECommerce"},
            }
        },
    )
    assert bodies[2] == (
        "POST",
        "exec-tran",
        {"tran": {"phase": "Single", "amount": "25.00", "type": "Credit"}},
    )


def test_pan_payout_keeps_the_pan_out_of_logs_and_ledger(
    sandbox: SandboxServer,
    payouts: TxpgPayoutGateway,
    wire: Recorder,
    log_capture: LogCapture,
) -> None:
    start = len(log_capture.lines)
    order = payouts.open_order(AMOUNT, "payout p-2")
    payouts.attach_card(order, PAN_REF)
    approval = payouts.execute(order, AMOUNT)

    assert approval.result_code == "1"
    (entry,) = sandbox.state.ledger.entries()
    assert (entry.tran_type, entry.direction) == ("Credit", "credit")
    assert entry.card == mask_pan(PAN)
    assert PAN not in json.dumps(entry.to_json())
    assert payouts.lookup(order).outcome is LookupOutcome.PAID
    # It went to TXPG once, in set-dst-token's panBlock, and nowhere else.
    assert wire.sent[1][2] == {
        "token": {"card": {"panBlock": {"data": PAN}, "entryMode": "ECommerce"}}
    }
    assert sum(PAN in json.dumps(body) for _m, _p, body in wire.sent) == 1
    assert log_capture.lines[start:], "the calls were logged"
    assert not [line for line in log_capture.lines[start:] if PAN in line]


def test_pan_never_in_error_messages(
    sandbox: SandboxServer, client: TxpgClient, log_capture: LogCapture
) -> None:
    log_capture.secrets.add(PAN)
    vault = {PAN_REF: Secret(PAN), "pan:bad": Secret(PAN[:-1] + "9")}  # a Luhn failure
    payouts = TxpgPayoutGateway(client, pans=vault)
    errors: list[Exception] = []

    order = payouts.open_order(AMOUNT, "payout p-3")
    with pytest.raises(InvalidInput) as bad:
        payouts.attach_card(order, "pan:bad")
    errors.append(bad.value)
    payouts.attach_card(order, PAN_REF)
    sandbox.state.faults.add(FaultRule(FaultKind.COMMIT_THEN_DROP, Endpoint.EXEC_TRAN, times=1))
    with pytest.raises(base.OutcomeUnknown) as lost:
        payouts.execute(order, AMOUNT)
    errors.append(lost.value)
    with pytest.raises(base.RequestRejected) as again:  # the order is paid already
        payouts.execute(order, AMOUNT)
    errors.append(again.value)
    with pytest.raises(base.RequestRejected) as late:  # the order takes no second card
        payouts.attach_card(order, PAN_REF)
    errors.append(late.value)

    assert "416974******" in str(bad.value)  # a Luhn failure names the card masked
    for exc in errors:
        assert PAN not in f"{exc} {exc!r} {exc.args!r}"
    assert len(sandbox.state.ledger.entries()) == 1


@pytest.mark.parametrize(
    ("rid", "code", "title", "decline_class"),
    [
        (LIMIT, "64", "Credit amount limit", DeclineClass.SOFT),
        (CLOSED, "29", "Closed account", DeclineClass.HARD),
    ],
)
def test_declining_destination(
    sandbox: SandboxServer,
    payouts: TxpgPayoutGateway,
    rid: str,
    code: str,
    title: str,
    decline_class: DeclineClass,
) -> None:
    order = payouts.open_order(AMOUNT, "payout p-4")
    payouts.attach_card(order, f"token:{rid}")
    with pytest.raises(base.Declined) as caught:
        payouts.execute(order, AMOUNT)

    declined = caught.value
    assert declined.decline_class is decline_class
    assert (declined.code, declined.result_code, declined.result_title) == (
        "PmoDecline",
        code,
        title,
    )
    assert declined.reason == "PmoDecline"
    assert sandbox.state.ledger.entries() == []

    found = payouts.lookup(order)
    assert found.outcome is LookupOutcome.FAILED
    assert (found.status, found.decline_class) == ("Declined", decline_class)
    assert (found.result_code, found.result_title) == (code, title)


def test_commit_then_drop_is_unknown_then_paid_once(
    sandbox: SandboxServer, payouts: TxpgPayoutGateway
) -> None:
    order = payouts.open_order(AMOUNT, "payout p-5")
    payouts.attach_card(order, f"token:{APPROVE}")
    sandbox.state.faults.add(FaultRule(FaultKind.COMMIT_THEN_DROP, Endpoint.EXEC_TRAN, times=1))
    with pytest.raises(base.OutcomeUnknown) as caught:
        payouts.execute(order, AMOUNT)
    assert not isinstance(caught.value, base.GatewayUnavailable)

    found = payouts.lookup(order)
    assert found.outcome is LookupOutcome.PAID
    (entry,) = _credits(sandbox, order)
    assert sandbox.state.ledger.entries(tran_type="Credit") == [entry]


def test_drop_before_is_not_executed_and_executes_once(
    sandbox: SandboxServer, payouts: TxpgPayoutGateway
) -> None:
    order = payouts.open_order(AMOUNT, "payout p-6")
    payouts.attach_card(order, f"token:{APPROVE}")
    sandbox.state.faults.add(FaultRule(FaultKind.DROP_BEFORE, Endpoint.EXEC_TRAN, times=1))
    with pytest.raises(base.OutcomeUnknown):
        payouts.execute(order, AMOUNT)

    found = payouts.lookup(order)
    assert (found.outcome, found.status) == (LookupOutcome.NOT_EXECUTED, "Preparing")
    assert sandbox.state.ledger.entries() == []

    approval = payouts.execute(order, AMOUNT)
    assert approval.result_code == "1"
    assert len(_credits(sandbox, order)) == 1
    assert payouts.lookup(order).outcome is LookupOutcome.PAID


def test_missing_pan_sends_nothing(sandbox: SandboxServer, client: TxpgClient) -> None:
    order_vault: dict[str, Secret[str]] = {}  # a restarted process: the vault is empty
    payouts = TxpgPayoutGateway(client, pans=order_vault.get)
    order = payouts.open_order(AMOUNT, "payout p-7")
    counter = _count(sandbox, Endpoint.ANY)

    with pytest.raises(PanNotInMemory, match="no longer in memory") as caught:
        payouts.attach_card(order, PAN_REF)

    assert isinstance(caught.value, InvalidInput)
    assert "submit the payout again" in str(caught.value)
    assert PAN_REF not in str(caught.value)
    assert _fired(sandbox, counter) == 0
    assert sandbox.state.order(int(order.id)).dst is None
    assert payouts.lookup(order).outcome is LookupOutcome.NOT_EXECUTED
    assert sandbox.state.ledger.entries() == []


def test_without_a_vault_every_pan_is_missing(client: TxpgClient) -> None:
    payouts = TxpgPayoutGateway(client)
    with pytest.raises(PanNotInMemory):
        payouts.destination(PAN_REF)


@pytest.mark.parametrize(
    "ref",
    ["", "5125", "token:", "token:short", "token:not-alnum-but-long", "pan:", "PAN:x", "card:1"],
)
def test_other_card_refs_are_invalid(sandbox: SandboxServer, client: TxpgClient, ref: str) -> None:
    payouts = TxpgPayoutGateway(client, pans={})
    order = payouts.open_order(AMOUNT, "payout p-8")
    counter = _count(sandbox, Endpoint.ANY)
    with pytest.raises(InvalidInput) as caught:
        payouts.attach_card(order, ref)
    assert not isinstance(caught.value, PanNotInMemory)
    assert _fired(sandbox, counter) == 0
    if ref in ("", "5125", "pan:", "PAN:x", "card:1"):
        assert isinstance(caught.value, InvalidCardRef)


def test_unknown_token_is_a_hard_decline(payouts: TxpgPayoutGateway) -> None:
    order = payouts.open_order(AMOUNT, "payout p-9")
    with pytest.raises(base.Declined) as caught:
        payouts.attach_card(order, "token:00000000000000000000000000000000")
    assert caught.value.decline_class is DeclineClass.HARD
    assert caught.value.code == "InvalidToken"
