"""Scheduled OCT payouts: money going out to cards, exactly once.

* :mod:`worker.payouts.model`: a payout, its destination (a TWO token, or a PAN for an
  immediate payout, never stored), its statuses, and files of payouts;
* :mod:`worker.payouts.runs`: which pending payouts a run takes, within its limits, and the
  run's own state;
* :mod:`worker.payouts.report`: what a run did, as a table, CSV or JSON;
* :mod:`worker.payouts.config`: the schedules (``BILLING_PAYOUT_SCHEDULES``, TOML).

These four are pure: no Redis, no HTTP, no clock (time comes in as ms arguments).
"""
