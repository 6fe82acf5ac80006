"""TXPG's errors: one class per ``errorCode``, placed on the branch of ``worker.errors`` that
says what the caller must do, and :func:`error_from_body`, the one place that maps a body.

::

    GatewayUnavailable   PmoUnreachable, CofpUnreachable, PmoIfaceNotFound
    OutcomeUnknown       ActionAppException, UnknownTxpgError (an errorCode not in the table)
    Declined             PmoDecline (class from the PMO code), CofpDecline (hard),
                         InvalidToken (hard), InvalidAutStatus (needs customer)
    RequestRejected      InvalidAmt, InvalidRequest, InvalidTran, InvalidTranLink,
                         TranProhibited, OperationProhibited, CantChooseSettleAcct,
                         ConsumerNotFound, InvalidConsumer, InvalidSecret, SecretTryLimit
      InvalidOrderState  InvalidOrderState
    CredentialsRejected  InvalidLogin, InvalidCert, NeedChangePwd, PwdTryLimitExceeded,
                         InvalidUserSession, UserSessionExpired

Session errors count as credentials: TXPG is called with Basic auth on every request, so a
session error means the account itself is in trouble, and retrying in a loop could lock it.
"""

from __future__ import annotations

from worker import errors as base
from worker.errors import DeclineClass
from worker.gateway.txpg.codes import ERROR_CODES, pmo_code
from worker.gateway.txpg.fields import FieldError, Fields
from worker.sensitive import scrub

GATEWAY = "txpg"


class TxpgError(base.GatewayError):
    """Mixin marker: the error came from TXPG's own ``errorCode``."""


# --- retry the same attempt ----------------------------------------------------------------
class PmoUnreachable(TxpgError, base.GatewayUnavailable):
    """TXPG could not reach the processor; nothing was executed."""


class CofpUnreachable(TxpgError, base.GatewayUnavailable):
    """TXPG could not reach the card-on-file provider."""


class PmoIfaceNotFound(TxpgError, base.GatewayUnavailable):
    """TXPG has no interface to the processor right now."""


# --- reconcile ------------------------------------------------------------------------------
class ActionAppException(TxpgError, base.OutcomeUnknown):
    """TXPG failed inside; whether it acted first is unknown."""


class UnknownTxpgError(TxpgError, base.OutcomeUnknown):
    """An ``errorCode`` that is not in the reference table."""


# --- declines -------------------------------------------------------------------------------
class PmoDecline(TxpgError, base.Declined):
    """The processor declined. Carries the PMO result code and its table entry."""

    def __init__(
        self,
        message: str,
        *,
        pmo_result_code: int,
        decline_reason: str | None,
        pmo_decline_desc: str | None,
        rid_by_pmo: str | None,
        http_status: int | None = None,
    ) -> None:
        entry = pmo_code(pmo_result_code)
        super().__init__(
            message,
            decline_class=entry.decline_class,
            http_status=http_status,
            code="PmoDecline",
            request_id=rid_by_pmo,
            gateway=GATEWAY,
            result_code=str(pmo_result_code),
            result_title=entry.title,
            reason=decline_reason,
        )
        self.pmo_result_code = pmo_result_code
        self.pmo_title = entry.title
        self.decline_reason = decline_reason
        self.pmo_decline_desc = pmo_decline_desc
        self.rid_by_pmo = rid_by_pmo


class CofpDecline(TxpgError, base.Declined):
    """The card-on-file provider declined the token."""

    decline_class = DeclineClass.HARD


class InvalidToken(TxpgError, base.Declined):
    """The saved card (token) is not valid any more: the customer needs a new card."""

    decline_class = DeclineClass.HARD


class InvalidAutStatus(TxpgError, base.Declined):
    """The cardholder's authentication status does not allow the transaction."""

    decline_class = DeclineClass.NEEDS_CUSTOMER


# --- rejected requests (nothing moved) --------------------------------------------------------
class InvalidAmt(TxpgError, base.RequestRejected):
    pass


class InvalidRequest(TxpgError, base.RequestRejected):
    pass


class InvalidTran(TxpgError, base.RequestRejected):
    pass


class InvalidTranLink(TxpgError, base.RequestRejected):
    pass


class TranProhibited(TxpgError, base.RequestRejected):
    pass


class OperationProhibited(TxpgError, base.RequestRejected):
    pass


class CantChooseSettleAcct(TxpgError, base.RequestRejected):
    pass


class ConsumerNotFound(TxpgError, base.RequestRejected):
    pass


class InvalidConsumer(TxpgError, base.RequestRejected):
    pass


class InvalidSecret(TxpgError, base.RequestRejected):
    pass


class SecretTryLimit(TxpgError, base.RequestRejected):
    pass


class InvalidOrderState(TxpgError, base.InvalidOrderState):
    """The order's state does not allow the call (for example a second purchase)."""


# --- stop everything --------------------------------------------------------------------------
class InvalidLogin(TxpgError, base.CredentialsRejected):
    pass


class InvalidCert(TxpgError, base.CredentialsRejected):
    pass


class NeedChangePwd(TxpgError, base.CredentialsRejected):
    pass


class PwdTryLimitExceeded(TxpgError, base.CredentialsRejected):
    pass


class InvalidUserSession(TxpgError, base.CredentialsRejected):
    pass


class UserSessionExpired(TxpgError, base.CredentialsRejected):
    pass


#: ``errorCode`` -> class. Checked against the reference table by a test.
ERROR_CLASSES: dict[str, type[TxpgError]] = {
    cls.__name__: cls
    for cls in (
        PmoUnreachable,
        CofpUnreachable,
        PmoIfaceNotFound,
        ActionAppException,
        PmoDecline,
        CofpDecline,
        InvalidToken,
        InvalidAutStatus,
        InvalidAmt,
        InvalidRequest,
        InvalidTran,
        InvalidTranLink,
        TranProhibited,
        OperationProhibited,
        CantChooseSettleAcct,
        ConsumerNotFound,
        InvalidConsumer,
        InvalidSecret,
        SecretTryLimit,
        InvalidOrderState,
        InvalidLogin,
        InvalidCert,
        NeedChangePwd,
        PwdTryLimitExceeded,
        InvalidUserSession,
        UserSessionExpired,
    )
}
assert set(ERROR_CLASSES) == set(ERROR_CODES), "every reference errorCode needs a class"


def error_from_body(body: Fields, http_status: int) -> base.GatewayError:
    """The typed error for a TXPG error body (one with ``errorCode``).

    Free text from the gateway is scrubbed (PANs masked, passwords removed) before it goes
    into the exception, because exceptions end up in logs and dead letters.
    """
    try:
        code = body.string("errorCode")
        description = scrub(body.opt_string("errorDescription") or "")
    except FieldError as exc:
        return base.MalformedResponse(f"unreadable error body: {exc}", http_status=http_status)
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        return UnknownTxpgError(
            f"unknown TXPG errorCode {scrub(code)[:64]!r}: {description}",
            http_status=http_status,
            code=scrub(code)[:64],
            gateway=GATEWAY,
        )
    if cls is PmoDecline:
        try:
            details = body.obj("errorDetails")
            result_code = details.int_text("pmoResultCode")
            match = details.opt_obj("match")
            desc = details.opt_string("pmoDeclineDesc")
            reason = details.opt_string("declineReason")
            rid = match.opt_text("ridByPmo") if match else None
        except FieldError as exc:
            # A decline we cannot read is not a decline we can act on: ask the gateway.
            return base.MalformedResponse(f"unreadable PmoDecline: {exc}", http_status=http_status)
        title = pmo_code(result_code).title
        return PmoDecline(
            f"declined by PMO: {result_code} {title}" + (f" ({reason})" if reason else ""),
            pmo_result_code=result_code,
            decline_reason=reason,
            pmo_decline_desc=None if desc is None else scrub(desc),
            rid_by_pmo=rid,
            http_status=http_status,
        )
    message = f"{code}: {description or ERROR_CODES[code].description}"
    return cls(message, http_status=http_status, code=code, gateway=GATEWAY)
