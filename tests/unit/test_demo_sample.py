"""The demo's sample subscriptions and payouts: shipped with the package, valid for the
importers, each with a known story; every first period due the moment the demo imports
them, and the payout run's limit holding back the one payout it should.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections import Counter
from dataclasses import replace
from importlib import resources
from typing import Any

from worker import demo, ingest
from worker.money import parse_amount
from worker.payouts.model import Payout, PayoutMode, TokenDestination, parse_payout_file
from worker.payouts.runs import RunLimits, plan_run
from worker.periods import parse_cadence, period_at
from worker.sensitive import Secret

TODAY = dt.date(2026, 11, 21)


def _rows() -> list[ingest.Row]:
    parsed = ingest.parse_csv(io.StringIO(demo.sample_text(TODAY), newline=""))
    assert not parsed.invalid, parsed.invalid
    assert not parsed.duplicates
    return list(parsed.rows)


def test_the_sample_file_is_package_data_with_a_today_placeholder() -> None:
    text = demo.sample_text(TODAY)
    assert demo.TODAY not in text
    assert text.count(TODAY.isoformat()) == len(_rows())


def test_every_row_imports_and_tells_a_known_story() -> None:
    stories = Counter(demo.story_of(row.subscription) for row in _rows())
    assert stories == {
        demo.Story.APPROVE: 4,
        demo.Story.TOP_UP: 1,
        demo.Story.REPLAY: 1,
        demo.Story.HARD_DECLINE: 2,
    }


def test_every_first_period_is_due_at_once_and_is_today() -> None:
    start = dt.datetime.combine(TODAY, dt.time(0, 0), tzinfo=dt.UTC)
    now_ms = int(start.timestamp() * 1000) + 5_000  # a few seconds into the day
    for row in _rows():
        period = period_at(parse_cadence(row.subscription.cadence), now_ms)
        assert period is not None
        assert period.key == TODAY.isoformat()
        assert period.due_at_ms <= now_ms


def test_the_story_fits_the_sandbox_cards_and_the_top_ups() -> None:
    """The first top-up pays the top_up subscription and leaves the replay one short, on the
    same card; hard declines use the stolen (41) and the expired (51) demo cards.
    """
    rows = {demo.story_of(r.subscription): r.subscription for r in _rows()}
    top_up, replay = rows[demo.Story.TOP_UP], rows[demo.Story.REPLAY]
    assert top_up.stored_id == replay.stored_id == 5159
    first = parse_amount(demo.FIRST_TOP_UP, "AZN")
    second = parse_amount(demo.SECOND_TOP_UP, "AZN")
    assert top_up.amount.minor <= first.minor
    assert replay.amount.minor > first.minor - top_up.amount.minor
    assert replay.amount.minor <= first.minor - top_up.amount.minor + second.minor
    hard = {
        r.subscription.stored_id
        for r in _rows()
        if r.subscription.metadata["story"] == "hard_decline"
    }
    assert hard == {5141, 5151}


# --- the sample payouts -------------------------------------------------------------------------


def _payouts() -> list[Payout]:
    """The sample payouts as ``billing payouts import`` stores them: file order is sending
    order (each row one millisecond after the one before).
    """
    data = demo.payout_sample_text().encode()
    rows, errors = parse_payout_file(demo.PAYOUT_FILE, data, now_ms=1_000)
    assert not errors, errors
    return [replace(row.payout, created_at=1_000 + n) for n, row in enumerate(rows)]


def _sandbox_tokens() -> dict[str, dict[str, Any]]:
    raw = resources.files("worker.sandbox").joinpath("cards.json").read_text(encoding="utf-8")
    cards = json.loads(raw)["cards"]
    return {c["ridByCofp"].upper(): c for c in cards if c.get("ridByCofp")}


def test_the_sample_payouts_are_package_data_with_a_story_each_in_sending_order() -> None:
    payouts = _payouts()
    assert [p.id for p in payouts] == list(demo.PAYOUT_STORIES)
    assert all(p.mode is PayoutMode.SCHEDULED and p.currency == demo.CURRENCY for p in payouts)
    assert all(isinstance(p.destination, TokenDestination) for p in payouts)
    assert demo.NOW_PAYOUT_ID not in demo.PAYOUT_STORIES


def test_the_run_limit_holds_back_exactly_the_held_payout() -> None:
    limit = parse_amount(demo.PAYOUT_MAX_TOTAL, demo.CURRENCY)
    plan = plan_run(_payouts(), None, RunLimits(max_total={demo.CURRENCY: limit}))
    held = {p.id for p, _why in plan.held}
    expected = {i for i, story in demo.PAYOUT_STORIES.items() if story is demo.PayoutStory.HELD}
    assert held == expected
    assert [p.id for p in plan.selected] == [
        i for i, story in demo.PAYOUT_STORIES.items() if story is not demo.PayoutStory.HELD
    ]
    assert plan.limit_reached


def test_the_sample_payouts_fit_the_sandbox_destinations() -> None:
    """The declined payout goes to the card at its deposit limit (64); the others to one that
    approves credits.
    """
    tokens = _sandbox_tokens()
    for payout in _payouts():
        assert isinstance(payout.destination, TokenDestination)
        card = tokens[payout.destination.rid.upper()]
        if demo.PAYOUT_STORIES[payout.id] is demo.PayoutStory.DECLINED:
            assert (card["behaviour"], card["pmoResultCode"]) == ("decline", 64)
        else:
            assert card["behaviour"] == "approve"


def test_the_immediate_payout_card_number_is_valid_and_shown_masked() -> None:
    payout = Payout.create(
        id=demo.NOW_PAYOUT_ID,
        amount=demo.NOW_PAYOUT_AMOUNT,
        currency=demo.CURRENCY,
        pan=Secret(demo.PAYOUT_PAN),
        mode=PayoutMode.IMMEDIATE.value,
    )
    assert payout.destination.masked() == "416974******1778"
    assert demo.PAYOUT_PAN not in payout.destination.ref()
