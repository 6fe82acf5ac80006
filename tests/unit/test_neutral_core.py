"""The fenced core names no gateway: every gateway word lives in an adapter.

The words are matched case-sensitively as the gateways spell them (``pmo`` and ``iso`` in
lower case too, as field names would spell them: a decline's code is ``result_code`` in the
core, whichever gateway numbered it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = (
    "worker/charges/pipeline.py",
    "worker/charges/flow.py",
    "worker/charges/policy.py",
    "worker/charges/states.py",
    "worker/deadletters.py",
    "worker/store/charges.py",
    "worker/store/deadletters.py",
)
WORDS = (
    "txpg",
    "TXPG",
    "Txpg",
    "bizon",
    "Bizon",
    "BIZON",
    "storedId",
    "stored_id",
    "rebill",
    "Rebill",
    "set-src-token",
    "set-dst-token",
    "exec-tran",
    "exec_tran",
    "OCT",
    "Order_REC",
    "PMO",
    "pmo",
    "ISO",
    "iso",
    "iso_response",
    "ridByCofp",
    "TWO_COF",
)
PATTERN = re.compile("|".join(rf"(?<![A-Za-z]){re.escape(w)}(?![a-z])" for w in WORDS))


@pytest.mark.parametrize("path", CORE)
def test_the_core_names_no_gateway(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    hits = [
        f"{path}:{n}: {line.strip()}"
        for n, line in enumerate(text.splitlines(), 1)
        if PATTERN.search(line)
    ]
    assert hits == []


def test_the_pattern_catches_the_words() -> None:
    for sample in ("TXPG behind", "a txpg order", "POST rebill", "the PMO code", "an OCT payout"):
        assert PATTERN.search(sample), sample
    for sample in ("pmo_code", "iso_code", "the PMO code"):
        assert PATTERN.search(sample), sample
    assert not PATTERN.search("exec_sent, result_code, octet, isolated, isodate")
