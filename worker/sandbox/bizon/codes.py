"""ISO 8583 response codes, as the Bizon sandbox writes them in an operation's
``iso_response_code`` and ``iso_message``, and what each does to the operation and order.

The card behaviours are shared with the TXPG sandbox (:mod:`worker.sandbox.cards`); only
their numbering is ISO 8583 here, not Kapital's PMO codes:

=====  ===========================================  ==========  =============================
code   iso_message                                  operation   meaning for billing
=====  ===========================================  ==========  =============================
00     Approved                                     success
05     Do not honor                                 failure     soft: retry later
14     Invalid card number                          failure     hard
41     Lost card, pick up                           failure     hard
43     Stolen card, pick up                         failure     hard
51     Insufficient funds                           failure     soft: dunning (until top-up)
54     Expired card                                 failure     hard (by the card's date)
57     Transaction not permitted to cardholder      failure     hard
61     Exceeds withdrawal amount limit              failure     soft
62     Restricted card                              failure     hard
65     Exceeds withdrawal frequency limit           failure     soft
91     Issuer or switch inoperative                 failure     soft
96     System malfunction                           error       the order ends ``error``
1A     Additional customer authentication required  failure     needs the customer (SCA)
=====  ===========================================  ==========  =============================

An operation's status follows the reference's "Operation Status": ``success``, ``failure``
("the operation has been declined"), ``error`` ("an error occurred during processing").
A declined order is ``declined``; an errored one ``error``. Both allow only rebill.
"""

from __future__ import annotations

from worker.sandbox.cards import Card, Verdict

APPROVED = "00"
SCA_REQUIRED = "1A"
EXPIRED = "54"
INSUFFICIENT_FUNDS = "51"
DO_NOT_HONOR = "05"

MESSAGES: dict[str, str] = {
    "00": "Approved",
    "05": "Do not honor",
    "14": "Invalid card number",
    "41": "Lost card, pick up",
    "43": "Stolen card, pick up",
    "51": "Insufficient funds",
    "54": "Expired card",
    "57": "Transaction not permitted to cardholder",
    "61": "Exceeds withdrawal amount limit",
    "62": "Restricted card",
    "65": "Exceeds withdrawal frequency limit",
    "91": "Issuer or switch inoperative",
    "96": "System malfunction",
    "1A": "Additional customer authentication required",
}
#: Codes whose operation ends ``error`` rather than ``failure``.
ERRORS = frozenset({"96"})


def message(code: str) -> str:
    return MESSAGES.get(code, "Declined")


def operation_status(code: str) -> str:
    if code == APPROVED:
        return "success"
    return "error" if code in ERRORS else "failure"


def code_for(verdict: Verdict, card: Card) -> str:
    """The ISO code of a card's verdict (a ``decline`` card says its own)."""
    if verdict is Verdict.APPROVED:
        return APPROVED
    if verdict is Verdict.EXPIRED:
        return EXPIRED
    if verdict is Verdict.INSUFFICIENT_FUNDS:
        return INSUFFICIENT_FUNDS
    return card.iso_code or DO_NOT_HONOR
