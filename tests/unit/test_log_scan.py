"""The session's log scan is honest: it finds what it looks for, and it sees real lines."""

from __future__ import annotations

import structlog

from tests.fixtures.logs import LogCapture, find_leaks


def test_scanner_finds_each_kind_of_leak() -> None:
    secrets = {"z3fc5v4n5ey7"}
    lines = [
        '{"event": "ok", "order_id": 4600}',
        '{"event": "oops", "note": "order pass z3fc5v4n5ey7"}',
        '{"event": "card 4169741330151778"}',
        '{"url": "/order/1/exec-tran?password=abcd1234"}',
        '{"password": "hunter22"}',
        '{"url": "/order/1/exec-tran?password=***"}',
    ]
    leaks = find_leaks(lines, secrets)
    assert leaks == lines[1:5]


def test_project_logs_reach_the_capture_redacted(log_capture: LogCapture) -> None:
    before = len(log_capture.lines)
    structlog.get_logger("tests").warning(
        "gateway_call_failed", url="/order/9/exec-tran?password=plaintext9", card="4169741330151778"
    )
    line = log_capture.lines[before]
    assert "gateway_call_failed" in line
    assert "plaintext9" not in line
    assert "416974******1778" in line
    assert find_leaks([line], {"plaintext9"}) == []


def test_a_gateway_order_id_that_passes_luhn_is_kept_but_a_card_elsewhere_is_masked(
    log_capture: LogCapture,
) -> None:
    order_id = "23014805000103646"  # a 17-digit Bizon order id that passes the Luhn check
    before = len(log_capture.lines)
    structlog.get_logger("tests").info(
        "charge_attempt_finished", order_id=order_id, note=f"order {order_id}"
    )
    line = log_capture.lines[before]
    from worker.sensitive import luhn_ok

    assert luhn_ok(order_id)
    assert f'"order_id": "{order_id}"' in line  # the id field is traceable
    assert f"order {order_id}" not in line  # free text is still scrubbed like a PAN
