"""The Bizon sandbox's error answers.

The reference shows no error body and no error status, so these are the sandbox's own,
kept stable and documented in docs/sandbox.md (a client should treat a body it does not
recognise by its HTTP status alone):

======  =================  ==============================================================
status  ``failure_type``   when
======  =================  ==============================================================
400     ``validation``     bad JSON, a missing or malformed field, an amount too large, an
                           unknown filter or expand
401     ``access``         Basic credentials missing or wrong (with ``WWW-Authenticate``)
404     ``not_found``      an order id the sandbox does not know
409     ``operation``      the order's status does not allow the operation (the reference's
                           status table), or a 3-D Secure step on an order not waiting for it
                           ("Order already completed")
500     ``server``         a bug in the sandbox; the body names no request data
======  =================  ==============================================================

Body: ``{"failure_type": "...", "failure_message": "...", "order_id": "..." | null}``.
A *decline* is not an error: the order comes back (200) with status ``declined`` and an
operation whose ``status`` is ``failure`` (see :mod:`.codes`).
"""

from __future__ import annotations

from typing import Any


class BizonError(Exception):
    def __init__(
        self, failure_type: str, message: str, *, status: int, order_id: int | None = None
    ) -> None:
        self.failure_type = failure_type
        self.message = message
        self.status = status
        self.order_id = order_id
        super().__init__(f"{failure_type}: {message}")

    def body(self) -> dict[str, Any]:
        return {
            "failure_type": self.failure_type,
            "failure_message": self.message,
            "order_id": None if self.order_id is None else str(self.order_id),
        }


def validation(message: str, order_id: int | None = None) -> BizonError:
    return BizonError("validation", message, status=400, order_id=order_id)


def access() -> BizonError:
    return BizonError("access", "Basic credentials missing or wrong", status=401)


def not_found(order_id: object) -> BizonError:
    return BizonError("not_found", f"order {order_id} not found", status=404)


def not_allowed(message: str, order_id: int) -> BizonError:
    return BizonError("operation", message, status=409, order_id=order_id)


def server() -> BizonError:
    return BizonError("server", "unexpected error in the sandbox", status=500)
