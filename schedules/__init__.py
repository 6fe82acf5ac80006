"""The scheduler: what comes due when, swept exactly once (see docs/scheduling.md).

* ``plan``: pure decisions for one due subscription (periods to open or skip, next look);
* ``sweep``: claim, decide, record, ring, under the leader lease;
* ``process``: the APScheduler jobs of ``billing scheduler``;
* ``forecast`` and ``simulate``: upcoming charges, and the real pipeline over virtual time.
"""
