"""Payouts: strict validation naming the field, destinations that never show a PAN, a Redis
hash that round-trips and never holds one, and files of scheduled payouts.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import InvalidInput
from worker.money import Money
from worker.payouts.model import (
    DESTINATIONS,
    GATEWAYS,
    FileRefused,
    MaskedPanDestination,
    OrderDestination,
    PanDestination,
    Payout,
    PayoutMode,
    PayoutStatus,
    TokenDestination,
    parse_destination,
    parse_payout_csv,
    parse_payout_file,
    parse_payout_jsonl,
    parse_payout_rows,
    payout_from_row,
)
from worker.sensitive import Secret, luhn_ok

PAN = "4169741330151778"  # the reference's test card
RID = "26AB0DACE700EF1180EB005056954BCC"  # the reference's TWO token
GOOD: dict[str, Any] = {"id": "po-1", "amount": "25.00", "currency": "AZN", "token": RID}


def make(**changes: Any) -> Payout:
    return Payout.create(**{**GOOD, **changes})


def immediate(pan: str = PAN, **changes: Any) -> Payout:
    fields = {**GOOD, "token": None, "pan": pan, "mode": "immediate", **changes}
    return Payout.create(**fields)


@st.composite
def pans(draw: st.DrawFn) -> str:
    """Luhn-valid card numbers of 13 to 19 digits."""
    length = draw(st.integers(13, 19))
    body = draw(st.text("0123456789", min_size=length - 1, max_size=length - 1))
    return body + next(d for d in "0123456789" if luhn_ok(body + d))


# --- building a payout ------------------------------------------------------------------------


def test_a_token_payout_keeps_exact_values() -> None:
    payout = make(description="Seller payout", tag="sellers", now_ms=7)
    assert payout.amount == Money(2500, "AZN")
    assert payout.destination == TokenDestination(RID)
    assert (payout.mode, payout.status) == (PayoutMode.SCHEDULED, PayoutStatus.PENDING)
    assert (payout.tag, payout.created_at, payout.run_id) == ("sellers", 7, "")
    assert payout.destination.masked() == "TWO_COF:26AB0D…4BCC"
    assert payout.destination.ref() == f"token:{RID}"
    assert TokenDestination.provider == "TWO_COF"


def test_the_reference_tokens_are_accepted() -> None:
    for rid in (RID, "D91E8A152405EE1180E4005056954BC", "d91e8a152405ee11"):
        assert parse_destination(token=rid) == TokenDestination(rid)


def test_an_immediate_pan_payout_shows_first6_last4_only() -> None:
    payout = immediate()
    assert isinstance(payout.destination, PanDestination)
    assert payout.destination.masked() == "416974******1778"
    assert payout.destination.ref() == "pan:416974******1778"
    for text in (repr(payout), str(payout), repr(payout.destination), json.dumps(payout.summary())):
        assert PAN not in text
        assert "416974******1778" in text


def test_a_scheduled_payout_needs_a_token() -> None:
    with pytest.raises(
        InvalidInput,
        match=r"scheduled payouts need a token \(txpg\) or an order \(bizon\); a PAN is only",
    ):
        immediate(mode="scheduled")


@pytest.mark.parametrize(("token", "pan"), [(None, None), ("", ""), (RID, PAN)])
def test_exactly_one_destination(token: str | None, pan: str | None) -> None:
    with pytest.raises(InvalidInput, match="exactly one destination"):
        make(token=token, pan=pan, mode="immediate")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": "a:b"}, "payout id 'a:b' is invalid"),
        ({"id": "a|b"}, "payout id 'a|b' is invalid"),
        ({"id": ""}, "payout id '' is invalid"),
        ({"id": PAN}, "payout id looks like a card number"),
        ({"amount": "0"}, "amount '0' is zero"),
        ({"amount": "9.999"}, "amount '9.999' has 3 decimals; AZN has 2"),
        ({"amount": "-1"}, "amount '-1' is not a plain decimal"),
        ({"amount": 9.99}, "amount must be a string"),
        ({"currency": "XYZ"}, "unsupported currency 'XYZ'"),
        ({"description": "x" * 256}, "description is longer than 255 characters"),
        ({"description": "a\nb"}, "description contains control characters"),
        ({"description": f"card {PAN}"}, "description contains what looks like a card number"),
        ({"tag": "a b"}, "tag 'a b' is invalid"),
        ({"tag": "4169 7413 3015 1778"}, "tag looks like a card number"),
        ({"mode": "later"}, "mode 'later' is not one of scheduled, immediate"),
        ({"token": "ABC123"}, "token (ridByCofp) is invalid: use 16-64 hexadecimal"),
        ({"token": "G" * 32}, "token (ridByCofp) is invalid"),
        ({"token": "A" * 65}, "token (ridByCofp) is invalid"),
        ({"token": 12}, "token (ridByCofp) must be text"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        make(**changes)
    assert message in str(caught.value)
    assert PAN not in str(caught.value)


@pytest.mark.parametrize(
    ("pan", "message"),
    [
        ("4169 7413 3015 1778", "pan is invalid: use 13-19 ASCII digits"),
        ("416974133015177", "pan 416974*****5177 fails the Luhn check"),
        ("4169741330151779", "pan 416974******1779 fails the Luhn check"),
        ("41697413301517７8", "pan is invalid"),
        ("123456789012", "pan is invalid"),
        ("1" * 20, "pan is invalid"),
    ],
)
def test_bad_pans_are_refused_without_echoing_them(pan: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        immediate(pan)
    assert message in str(caught.value)
    assert pan.replace(" ", "") not in str(caught.value).replace(" ", "")


def test_a_pan_typed_into_another_field_is_not_echoed() -> None:
    for changes in ({"amount": PAN}, {"currency": PAN}, {"tag": f"x{PAN}"}, {"id": f"{PAN}x"}):
        with pytest.raises(InvalidInput) as caught:
            make(**changes)
        assert PAN not in str(caught.value)


def test_a_pan_may_come_as_a_secret() -> None:
    fields = {**GOOD, "token": None, "mode": "immediate"}
    assert Payout.create(**fields, pan=Secret(PAN)) == immediate(PAN)


@given(pans())
def test_masking_never_shows_the_middle_digits(pan: str) -> None:
    destination = PanDestination.parse(pan)
    masked = destination.masked()
    assert masked[:6] == pan[:6] and masked[-4:] == pan[-4:]
    assert set(masked[6:-4]) == {"*"}
    for text in (masked, destination.ref(), repr(destination), str(destination)):
        assert pan not in text
        assert "".join(c for c in text if c.isdigit()) == pan[:6] + pan[-4:]


@given(pans(), st.sampled_from(list(PayoutStatus)))
def test_no_pan_in_the_stored_hash(pan: str, status: PayoutStatus) -> None:
    payout = immediate(pan, id="po-pan")
    stored = payout.to_hash()
    flat = json.dumps(stored)
    assert pan not in flat
    assert stored["destination"] == f"pan:{payout.destination.masked()}"
    back = Payout.from_hash(stored, "po-pan")
    assert back.destination == MaskedPanDestination(payout.destination.masked())
    assert not back.destination.sendable and payout.destination.sendable
    assert back.amount == payout.amount


# --- status changes ---------------------------------------------------------------------------


def test_a_payout_moves_through_its_statuses() -> None:
    queued = make().with_status(PayoutStatus.QUEUED, 10, run_id="daily-20260105T1400Z")
    sending = queued.with_status(PayoutStatus.SENDING, 11, order_id="10001")
    paid = sending.with_status(PayoutStatus.PAID, 12, approval_code="312866")
    assert (paid.status, paid.run_id, paid.order_id, paid.approval_code) == (
        PayoutStatus.PAID,
        "daily-20260105T1400Z",
        "10001",
        "312866",
    )
    assert (paid.created_at, paid.updated_at) == (0, 12)
    with pytest.raises(InvalidInput, match="payout po-1 is paid; it cannot become sending"):
        paid.with_status(PayoutStatus.SENDING, 13)
    with pytest.raises(InvalidInput, match="is pending; it cannot become paid"):
        make().with_status(PayoutStatus.PAID, 13)


def test_failure_text_is_scrubbed() -> None:
    failed = (
        make()
        .with_status(PayoutStatus.SENDING, 1)
        .with_status(PayoutStatus.FAILED, 2, failure_code="41", failure_reason=f"card {PAN}")
    )
    assert failed.failure_reason == "card 416974******1778"
    assert failed.with_status(PayoutStatus.PENDING, 3).status is PayoutStatus.PENDING


optional_text = st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9 ]{1,20}", fullmatch=True))


@given(
    amount=st.integers(1, 10**12),
    currency=st.sampled_from(["AZN", "USD", "JPY", "KWD"]),
    status=st.sampled_from(list(PayoutStatus)),
    tag=st.one_of(st.just(""), st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True)),
    texts=st.lists(optional_text, min_size=6, max_size=6),
    times=st.tuples(st.integers(0, 2**45), st.integers(0, 2**45)),
)
def test_to_hash_from_hash_round_trip(
    amount: int,
    currency: str,
    status: PayoutStatus,
    tag: str,
    texts: list[str],
    times: tuple[int, int],
) -> None:
    payout = Payout(
        id="po-7",
        amount=Money(amount, currency),
        destination=TokenDestination(RID),
        description=texts[0],
        tag=tag,
        status=status,
        created_at=times[0],
        updated_at=times[1],
        run_id=texts[1].replace(" ", "x"),
        order_id=texts[2],
        approval_code=texts[3],
        failure_code=texts[4],
        failure_reason=texts[5],
    )
    stored = payout.to_hash()
    assert all(isinstance(value, str) and value for value in stored.values())
    assert "id" not in stored
    assert Payout.from_hash(stored, "po-7") == payout


# --- rows and files ---------------------------------------------------------------------------


def test_one_row_from_the_cli_may_be_an_immediate_pan_payout() -> None:
    row = {"id": "po-9", "amount": "5", "currency": "USD", "pan": PAN, "mode": "immediate"}
    payout = payout_from_row(row, from_file=False, now_ms=5)
    assert payout.amount == Money(500, "USD")
    assert payout.destination.masked() == "416974******1778"
    assert payout.created_at == 5


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({**GOOD, "token": None, "pan": PAN}, "a PAN is only for an immediate payout, and"),
        ({**GOOD, "token": None, "pan": PAN, "mode": "immediate"}, "a PAN is only for"),
        ({**GOOD, "mode": "immediate"}, "immediate payouts are not imported from a file"),
        ({**GOOD, "colour": "red"}, "unknown field: colour"),
        ({**GOOD, "amount": 25}, "amount must be text, not a number: a JSON number may not be"),
        ({**GOOD, "tag": 3}, "tag must be text, not a number"),
        ({"amount": "1", "token": RID}, "missing id, currency"),
    ],
)
def test_a_file_row_is_for_a_scheduled_token_payout(row: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        payout_from_row(row)
    assert message in str(caught.value)
    assert PAN not in str(caught.value)


def test_csv_rows_are_named_by_their_line() -> None:
    text = "\n".join(
        [
            "id,amount,currency,token,tag,description,pan",
            f"po-1,25.00,AZN,{RID},sellers,June,",
            f"po-2,1.5,USD,{RID},,,",
            "",
            f"po-3,1,AZN,,,,{PAN}",
            f"po-1,25.00,AZN,{RID},sellers,June,",
            "po-4,1,AZN",
            f"po-5,0,AZN,{RID},,,",
        ]
    )
    valid, errors = parse_payout_csv(text.splitlines(keepends=True), now_ms=9)
    assert [(row.line, row.payout.id) for row in valid] == [(2, "po-1"), (3, "po-2")]
    assert valid[0].payout.tag == "sellers" and valid[0].payout.created_at == 9
    assert valid[1].payout.amount == Money(150, "USD")
    assert errors == (
        "line 5: a PAN is only for an immediate payout, and immediate payouts are not imported "
        "from a file: a file is for scheduled payouts with a token (txpg) or an order (bizon)",
        "line 6: payout id po-1 is already on line 2; an id pays once, so give another payout "
        "its own id",
        "line 7: has 3 cells, the header has 7",
        "line 8: amount '0' is zero; a charge or payout must be positive",
    )
    assert PAN not in "".join(errors)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("id,amount,currency,colour", "unknown column: 'colour'"),
        (f"id,amount,currency,{PAN}", "unknown column: '416974******1778'"),
        ("id,amount,currency,tag,tag", "column given twice: tag"),
        ("id,amount,token", "missing column: currency"),
        ("", "line 1 must name the columns"),
    ],
)
def test_a_bad_header_refuses_the_file(header: str, message: str) -> None:
    with pytest.raises(FileRefused) as caught:
        parse_payout_csv([header + "\n", f"po-1,1,AZN,{RID}\n"])
    assert message in str(caught.value)
    assert PAN not in str(caught.value)


def test_jsonl_rows() -> None:
    lines = [
        json.dumps({**GOOD, "description": "June"}),
        "",
        json.dumps({**GOOD, "id": "po-2", "amount": 1.5}),
        '{"id": "po-3", "id": "po-4"}',
        "[1]",
        "{not json",
        json.dumps({**GOOD, "id": "po-5", "token": None, "pan": PAN, "mode": "immediate"}),
        '{"id": "po-6", "amount": NaN}',
    ]
    valid, errors = parse_payout_jsonl(line + "\n" for line in lines)
    assert [(row.line, row.payout.id) for row in valid] == [(1, "po-1")]
    assert [error.split(":")[0] for error in errors] == [f"line {n}" for n in (3, 4, 5, 6, 7, 8)]
    assert "amount must be text, not a number" in errors[0]
    assert "key 'id' is given twice" in errors[1]
    assert "must be a JSON object, not a list" in errors[2]
    assert "not valid JSON" in errors[3]
    assert "immediate payouts are not imported from a file" in errors[4]
    assert "NaN is not a number" in errors[5]
    assert PAN not in "".join(errors)


def test_parse_payout_rows_takes_unreadable_rows_as_text() -> None:
    valid, errors = parse_payout_rows([(2, GOOD), (3, f"bad row with {PAN}")])
    assert len(valid) == 1
    assert errors == ("line 3: bad row with 416974******1778",)


def test_files_by_extension() -> None:
    body = f"\ufeffid,amount,currency,token\npo-1,25,AZN,{RID}\n".encode()
    valid, errors = parse_payout_file("payouts.CSV", body)
    assert (len(valid), errors) == (1, ())
    valid, errors = parse_payout_file("p.jsonl", json.dumps(GOOD).encode())
    assert (len(valid), errors) == (1, ())
    with pytest.raises(FileRefused, match=r"unknown file type '\.txt'"):
        parse_payout_file("p.txt", body)
    with pytest.raises(FileRefused, match=r"unknown file type '\(none\)'"):
        parse_payout_file("payouts", body)
    with pytest.raises(FileRefused, match="not UTF-8"):
        parse_payout_file("p.csv", b"id\xff")


# --- gateways: TXPG and Bizon -----------------------------------------------------------------

ORDER = "23014808614292147"  # the reference's example order id
BIZON: dict[str, Any] = {"id": "po-b", "amount": "25.00", "currency": "AZN", "gateway": "bizon"}


def bizon(**changes: Any) -> Payout:
    return Payout.create(**{**BIZON, "order": ORDER, **changes})


def test_every_gateway_has_its_destinations() -> None:
    assert set(DESTINATIONS) == set(GATEWAYS) == {"txpg", "bizon"}
    assert DESTINATIONS == {"txpg": ("token", "pan"), "bizon": ("order", "pan")}


def test_a_payout_is_on_txpg_unless_it_says_otherwise() -> None:
    payout = make()
    assert payout.gateway == "txpg"
    assert "gateway" not in payout.to_hash()  # the default is not stored
    assert payout.summary()["gateway"] == "txpg"
    assert Payout.from_hash(payout.to_hash(), payout.id) == payout


def test_a_bizon_payout_to_an_earlier_order() -> None:
    payout = bizon(description="cashback", tag="sellers", now_ms=3)
    assert payout.gateway == "bizon"
    assert payout.destination == OrderDestination(ORDER)
    assert payout.destination.sendable
    assert payout.destination.ref() == payout.destination.masked() == f"order:{ORDER}"
    assert payout.mode is PayoutMode.SCHEDULED  # the token-like destination: runs may send it
    stored = payout.to_hash()
    assert (stored["gateway"], stored["destination"]) == ("bizon", f"order:{ORDER}")
    assert Payout.from_hash(stored, payout.id) == payout
    assert payout.summary()["gateway"] == "bizon"
    assert payout.summary()["destination"] == f"order:{ORDER}"
    assert bizon(mode="immediate").mode is PayoutMode.IMMEDIATE


@given(pans(), st.sampled_from(list(PayoutStatus)))
def test_a_bizon_pan_payout_follows_the_same_rules_and_stores_no_pan(
    pan: str, status: PayoutStatus
) -> None:
    payout = Payout.create(**{**BIZON, "pan": pan, "mode": "immediate"})
    assert payout.gateway == "bizon" and isinstance(payout.destination, PanDestination)
    stored = replace(payout, status=status).to_hash()
    assert pan not in json.dumps(stored)
    back = Payout.from_hash(stored, payout.id)
    assert back.gateway == "bizon"
    assert back.destination == MaskedPanDestination(payout.destination.masked())
    assert not back.destination.sendable


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # a destination the gateway does not take
        ({"order": None, "token": RID}, "gateway bizon pays out to an order or a pan, not to a"),
        ({"gateway": "txpg"}, "gateway txpg pays out to a token (ridByCofp) or a pan, not to an"),
        ({"gateway": ""}, "gateway '' is not one of txpg, bizon"),
        ({"gateway": "TXPG"}, "gateway 'TXPG' is not one of txpg, bizon"),
        ({"gateway": "paypal"}, "gateway 'paypal' is not one of txpg, bizon"),
        # exactly one destination
        ({"token": RID}, "give exactly one destination"),
        ({"pan": PAN, "mode": "immediate"}, "give exactly one destination"),
        ({"order": None}, "give exactly one destination"),
        # an order id as the Bizon client takes it, and digits as Bizon's are
        ({"order": "abc-1"}, "order is invalid"),
        ({"order": "12 34"}, "order is invalid"),
        ({"order": "1" * 65}, "order is invalid"),
        ({"order": "\uff11\uff12\uff13"}, "order is invalid"),  # full-width digits
        ({"order": "-1"}, "order is invalid"),
        # the PAN rules of TXPG
        ({"order": None, "pan": PAN}, "scheduled payouts need a token (txpg) or an order"),
        ({"order": None, "pan": "4169741330151779", "mode": "immediate"}, "fails the Luhn"),
        ({"order": None, "pan": "4169 7413 3015 1778", "mode": "immediate"}, "pan is invalid"),
    ],
)
def test_a_bad_gateway_and_destination_combination_is_named(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        bizon(**changes)
    assert message in str(caught.value)
    assert PAN not in str(caught.value)


def test_an_order_id_that_passes_the_luhn_check_is_still_an_order_id() -> None:
    # Bizon's order ids are long numbers; some pass Luhn. They are not refused as a PAN.
    lucky = "23014808614292144"
    assert luhn_ok(lucky)
    payout = bizon(order=lucky)
    assert payout.destination.ref() == f"order:{lucky}"
    assert Payout.from_hash(payout.to_hash(), payout.id) == payout


def test_parse_destination_takes_an_order() -> None:
    assert parse_destination(order="7") == OrderDestination("7")
    with pytest.raises(InvalidInput, match="got token and order"):
        parse_destination(token=RID, order="7")
    with pytest.raises(InvalidInput, match="order must be text"):
        parse_destination(order=7)


def test_rows_name_their_gateway() -> None:
    text = "\n".join(
        [
            "id,amount,currency,gateway,token,order,tag",
            f"po-1,10.00,AZN,,{RID},,sellers",
            f"po-2,5.00,AZN,txpg,{RID},,",
            f"po-3,7.50,USD,bizon,,{ORDER},sellers",
            f"po-4,1.00,AZN,,,{ORDER},",  # an order, but on the default gateway: txpg
            f"po-5,1.00,AZN,bizon,{RID},,",
            f"po-6,1.00,AZN,bizon,,{ORDER}x,",
            "po-7,1.00,AZN,nope,,1,",
            f"po-8,1.00,AZN,bizon,{RID},{ORDER},",
        ]
    )
    valid, errors = parse_payout_csv(text.splitlines(keepends=True))
    assert [(row.line, row.payout.id, row.payout.gateway) for row in valid] == [
        (2, "po-1", "txpg"),
        (3, "po-2", "txpg"),
        (4, "po-3", "bizon"),
    ]
    assert valid[2].payout.destination == OrderDestination(ORDER)
    assert valid[2].payout.amount == Money(750, "USD")
    assert [error.split(": ", 1) for error in errors] == [
        ["line 5", "gateway txpg pays out to a token (ridByCofp) or a pan, not to an order: "
                   "an order is a destination on gateway bizon"],
        ["line 6", "gateway bizon pays out to an order or a pan, not to a token (ridByCofp): "
                   "a token (ridByCofp) is a destination on gateway txpg"],
        ["line 7", "order is invalid: give the id of an earlier Bizon order (1-64 digits)"],
        ["line 8", "gateway 'nope' is not one of txpg, bizon"],
        ["line 9", "give exactly one destination: a token (ridByCofp), an order or a pan "
                   "(got token and order)"],
    ]  # fmt: skip


def test_a_file_takes_no_bizon_pan_either() -> None:
    lines = [
        json.dumps({**BIZON, "order": ORDER}),
        json.dumps({**BIZON, "id": "po-2", "pan": PAN}),
        json.dumps({**BIZON, "id": "po-3", "order": ORDER, "mode": "immediate"}),
        json.dumps({**BIZON, "id": "po-4", "order": 123}),
        json.dumps({**BIZON, "id": "po-5", "order": ORDER, "gateway": None}),
    ]
    valid, errors = parse_payout_jsonl(line + "\n" for line in lines)
    assert [(row.payout.id, row.payout.gateway) for row in valid] == [("po-b", "bizon")]
    assert [error.split(":")[0] for error in errors] == [f"line {n}" for n in (2, 3, 4, 5)]
    assert "a PAN is only for an immediate payout" in errors[0]
    assert "immediate payouts are not imported from a file" in errors[1]
    assert "order must be text, not a number" in errors[2]
    assert "gateway txpg pays out to a token" in errors[3]
    assert PAN not in "".join(errors)


@given(
    order=st.from_regex(r"[0-9]{1,64}", fullmatch=True),
    status=st.sampled_from(list(PayoutStatus)),
)
def test_bizon_payouts_round_trip(order: str, status: PayoutStatus) -> None:
    payout = replace(bizon(order=order), status=status, run_id="r-1", order_id="555")
    stored = payout.to_hash()
    assert all(isinstance(value, str) and value for value in stored.values())
    assert Payout.from_hash(stored, payout.id) == payout
