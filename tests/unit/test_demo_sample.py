"""The demo's sample subscriptions: shipped with the package, valid for the importer, each
with a known story, and every first period due the moment the demo imports them.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter

from worker import demo, ingest
from worker.money import parse_amount
from worker.periods import parse_cadence, period_at

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
