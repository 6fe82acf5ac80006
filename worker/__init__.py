"""billing-worker: exactly-once recurring charges and payouts through Kapital Bank's TXPG."""

__version__ = "0.1.0"
