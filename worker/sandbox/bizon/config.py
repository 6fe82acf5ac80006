"""How one Bizon sandbox is set up: the login it accepts, its port, its project settings.

The merchant login is the reference's own public example (``project:password``, the
``Authorization: Basic cHJvamVjdDpwYXNzd29yZA==`` of its curl examples).
"""

from __future__ import annotations

from dataclasses import dataclass

USERNAME = "project"
PASSWORD = "password"  # noqa: S105 - the reference's public example, sandbox only
DEFAULT_PORT = 8090
#: "the number of rows in response is limited to 2000 per page"
PAGE_SIZE = 2000


@dataclass(frozen=True, slots=True)
class BizonSettings:
    """The project settings the reference leaves to the merchant's account."""

    #: charge every authorisation at once ("It also can be done with auto_charge option passed
    #: in request or automatically depending on project settings"): authorize, rebill and
    #: 3-D Secure completion end ``charged`` instead of ``authorized``
    auto_charge: bool = False
    #: let rebill set ``merchant_order_id`` and ``description``. The reference lists neither
    #: for rebill (only amount, cvv, location, options.recurring, recurring_details), so by
    #: default they are ignored, as a gateway that ignores unknown fields would
    rebill_merchant_fields: bool = False
    page_size: int = PAGE_SIZE  #: rows per page of ``GET /orders/`` and ``GET /operations/``
    currency: str = "USD"  #: an order's currency when the request names none
    fee_basis_points: int = 300  #: the fee a charge's cashflow shows: 3% (0.30 of 9.99)
    descriptor: str = "TESTMERCH/TERM"  #: the terminal descriptor the examples show

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ValueError("page_size must be at least 1")
