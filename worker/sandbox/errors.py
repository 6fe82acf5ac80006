"""The sandbox's error answers: TXPG's ``errorCode`` bodies and the HTTP status of each.

TXPG's collection shows error bodies but not their HTTP statuses, so the sandbox picks them
and keeps them stable (clients should decide on ``errorCode``, never on the status alone):

=======  =====================================================================================
Status   errorCode
=======  =====================================================================================
400      ``InvalidRequest`` (bad JSON or fields), ``InvalidAmt``, ``InvalidToken``,
         ``TranProhibited`` (a call this order *type* never allows), ``PmoDecline``
401      ``InvalidLogin`` (Basic credentials missing or wrong)
403      ``OperationProhibited`` (the order ``password`` is missing where required, or wrong)
404      ``InvalidRequest`` for an order id the sandbox does not know
409      ``InvalidOrderState`` (a call the order's *state* does not allow: a second purchase)
500      ``ActionAppException`` (a bug in the sandbox; the body names no secret)
502/503  HTML pages from fault injection only (see :mod:`worker.sandbox.faults`)
=======  =====================================================================================
"""

from __future__ import annotations

from typing import Any

from worker.gateway.txpg.codes import ERROR_CODES

#: HTTP status of each errorCode the sandbox sends; anything else is 400.
HTTP_STATUS: dict[str, int] = {
    "InvalidLogin": 401,
    "OperationProhibited": 403,
    "InvalidOrderState": 409,
    "ActionAppException": 500,
}


class TxpgError(Exception):
    """A TXPG error answer: ``errorCode``, ``errorDescription`` and optional ``errorDetails``."""

    def __init__(
        self,
        code: str,
        detail: str = "",
        *,
        details: dict[str, Any] | None = None,
        http_status: int | None = None,
    ) -> None:
        known = ERROR_CODES.get(code)
        title = known.description if known else code
        self.code = code
        self.description = f"{title}: {detail}" if detail else title
        self.details = details
        self.http_status = http_status or HTTP_STATUS.get(code, 400)
        super().__init__(f"{code}: {self.description}")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"errorCode": self.code, "errorDescription": self.description}
        if self.details is not None:
            body["errorDetails"] = self.details
        return body


def unknown_order(order_id: object) -> TxpgError:
    return TxpgError("InvalidRequest", f"order {order_id} not found", http_status=404)
