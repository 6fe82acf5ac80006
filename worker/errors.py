"""The one error tree of billing-worker. Branches follow what the caller must do.

::

    BillingError
    ├── InvalidInput                  reject before anything moves; say what is wrong
    ├── ConfigurationError            the worker is set up wrong; fix settings and restart
    └── GatewayError                  anything a payment gateway said or failed to say
        ├── GatewayUnavailable        retry the SAME attempt later (nothing happened there)
        │   └── RequestNotSent        transport failed before the request could arrive
        ├── OutcomeUnknown            the request may have been acted on: RECONCILE, never resend
        │   └── MalformedResponse     a body we cannot trust (HTML 502, truncated, NaN, ...)
        ├── Declined                  the gateway said no; ``decline_class`` says what next:
        │                             SOFT -> dunning, HARD / NEEDS_CUSTOMER -> dead letter
        ├── RequestRejected           the gateway refused the request itself (nothing moved);
        │   └── InvalidOrderState     dead-letter, or reconcile when the state is the question
        └── CredentialsRejected       STOP charging on that gateway and alert; never retry in a loop

Each gateway adapter (``worker.gateway.<name>.errors``) subclasses these with one class per
error code of its own, mapped in exactly one function at the boundary. Messages never carry
secrets: credentials, order passwords and PANs are kept out by construction (see
``worker.sensitive``).
"""

from __future__ import annotations

import enum


class BillingError(Exception):
    """Root of every error this project raises on purpose."""


class InvalidInput(BillingError, ValueError):
    """Input from a person, a file or an API call is malformed. Nothing was changed."""


class ConfigurationError(BillingError):
    """Settings are missing or contradictory."""


class DeclineClass(enum.StrEnum):
    """What a decline means for the next step."""

    #: retrying the same card later may succeed (insufficient funds, limits, cutover): dunning
    SOFT = "soft"
    #: the card will never work again (lost, stolen, expired, closed): dead letter, new card
    HARD = "hard"
    #: the cardholder must act (strong authentication, contact issuer): dead letter
    NEEDS_CUSTOMER = "needs_customer"
    #: the processor or a system behind it was not reachable: retry the same attempt
    UNAVAILABLE = "unavailable"
    #: the merchant's credentials were refused: stop everything and alert
    CREDENTIALS = "credentials"
    #: approved, or a code whose money outcome is not a clean "no" (postponed): reconcile
    UNKNOWN = "unknown"


class GatewayError(BillingError):
    """Something a gateway said, or failed to say.

    ``http_status`` is the HTTP status when a response arrived, ``code`` the gateway's own
    error code (TXPG ``errorCode``), ``request_id`` whatever id the gateway gave the request.
    """

    #: True when the same request may be sent again as is (nothing reached the gateway)
    should_retry: bool = False

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        gateway: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code
        self.request_id = request_id
        self.gateway = gateway

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"code={self.code}")
        if self.http_status is not None:
            parts.append(f"http_status={self.http_status}")
        return " ".join(parts)


class GatewayUnavailable(GatewayError):
    """The gateway could not act on the request. Retry the same attempt after a pause."""

    should_retry = True


class RequestNotSent(GatewayUnavailable):
    """The transport failed before the request could reach the gateway (connect, pool)."""


class OutcomeUnknown(GatewayError):
    """The request may have been acted on. Ask the gateway what happened; never resend blind."""


class MalformedResponse(OutcomeUnknown):
    """A response arrived but cannot be trusted: wrong type, bad JSON, missing fields."""


class Declined(GatewayError):
    """The gateway declined. ``decline_class`` says what to do next."""

    decline_class: DeclineClass = DeclineClass.HARD
    #: the processor's own result code and its title (TXPG: the PMO code), when there is one
    result_code: str | None = None
    result_title: str | None = None
    #: the gateway's short reason (TXPG: ``declineReason``)
    reason: str | None = None

    def __init__(
        self,
        message: str,
        *,
        decline_class: DeclineClass | None = None,
        http_status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        gateway: str | None = None,
        result_code: str | None = None,
        result_title: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(
            message, http_status=http_status, code=code, request_id=request_id, gateway=gateway
        )
        if decline_class is not None:
            self.decline_class = decline_class
        self.result_code = result_code
        self.result_title = result_title
        self.reason = reason


class RequestRejected(GatewayError):
    """The gateway refused the request as invalid or not allowed. No money moved."""


class InvalidOrderState(RequestRejected):
    """The order's state does not allow this call (for example a second purchase)."""


class CredentialsRejected(GatewayError):
    """The merchant's credentials were refused. Stop charging and alert a human."""
