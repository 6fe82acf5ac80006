"""Secrets stay secret: repr, masking, scrubbing and the log redaction processor."""

from __future__ import annotations

import pickle

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from worker.logs import redact
from worker.sensitive import Secret, luhn_ok, mask_pan, scrub

PAN = "4169741330151778"  # the reference's test card


def test_secret_hides_its_value() -> None:
    secret = Secret("8xjpd1ejxdma")
    assert "8xjpd1ejxdma" not in repr(secret)
    assert "8xjpd1ejxdma" not in str(secret)
    assert "8xjpd1ejxdma" not in f"{secret} {[secret]} { ({'p': secret}) }"
    assert secret.reveal() == "8xjpd1ejxdma"


def test_secret_cannot_be_pickled_into_a_message() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret("x"))


def test_luhn() -> None:
    assert luhn_ok(PAN)
    assert not luhn_ok("4169741330151779")
    assert not luhn_ok("41697413301517７8")


def test_mask_pan_shows_first6_last4() -> None:
    assert mask_pan(PAN) == "416974******1778"


@given(st.text(alphabet="0123456789", min_size=13, max_size=19))
def test_mask_pan_never_shows_the_middle(pan: str) -> None:
    masked = mask_pan(pan)
    assert masked[:6] == pan[:6] and masked[-4:] == pan[-4:]
    assert set(masked[6:-4]) == {"*"}


@pytest.mark.parametrize(
    "text",
    [
        f"card {PAN} declined",
        "POST /order/1/exec-tran?password=z3fc5v4n5ey7 HTTP/1.1",
        '{"password": "z3fc5v4n5ey7", "secret": "312866"}',
        "Authorization: Basic VGVybWluYWxTeXMva2FwaXRhbDprYXBpdGFsMTIz",
        "4169 7413 3015 1778",
    ],
)
def test_scrub_removes_secrets(text: str) -> None:
    cleaned = scrub(text)
    for secret in (PAN, "4169 7413 3015 1778", "z3fc5v4n5ey7", "312866", "VGVybWluYWxTeXM"):
        assert secret not in cleaned


def test_scrub_keeps_ordinary_numbers() -> None:
    text = "order 4600 amount 999 rid 17302955 action 240422-13060545"
    assert scrub(text) == text


def test_redaction_processor_cleans_keys_values_and_nesting() -> None:
    event = {
        "event": f"charge_declined for {PAN}",
        "password": "z3fc5v4n5ey7",
        "details": {"secret": "312866", "url": "/order/1?password=abc123def"},
        "order": Secret("x"),
        "amount_minor": 999,
    }
    out = redact(None, "info", dict(event))
    flat = repr(out)
    assert PAN not in flat and "z3fc5v4n5ey7" not in flat and "312866" not in flat
    assert "abc123def" not in flat
    assert out["amount_minor"] == 999
    assert "416974******1778" in out["event"]


def test_redaction_runs_in_a_configured_pipeline() -> None:
    with structlog.testing.capture_logs(processors=[redact]) as logs:
        structlog.get_logger().info("gateway_call_failed", url="/x?password=hunter22")
    assert logs[0]["url"] == "/x?password=***"
