"""Prometheus metrics.

``billing worker`` serves them on ``--metrics-port`` (default 9191; env
``BILLING_METRICS_PORT``, 0 to disable) through Dramatiq's Prometheus middleware, which
aggregates every worker process (``PROMETHEUS_MULTIPROC_DIR``), so our metrics and
Dramatiq's own (messages, errors, durations) come from one endpoint.

=====================================================  =========================================
``billing_charges_total{outcome}``                     runs of the charge pipeline by outcome
``billing_gateway_request_seconds{gateway,endpoint}``  gateway latency, per call
``billing_charges_in_flight``                          charges being driven right now
``billing_dead_letters``                               dead letters stored (set by the janitor)
``billing_circuit_state{gateway}``                     0 closed, 1 half-open, 2 open (janitor)
``billing_work_pending``                               open periods in ``bw:work`` (janitor)
``billing_scheduler_leader``                           1 while this scheduler holds the lease
``billing_periods_dispatched_total``                   periods the sweep opened and rang for
``billing_subscriptions_due``                          subscriptions due now (scheduler)
``billing_subscriptions``                              subscriptions stored (scheduler)
=====================================================  =========================================
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CHARGES = Counter("billing_charges_total", "Charge pipeline runs by outcome.", ["outcome"])
GATEWAY_LATENCY = Histogram(
    "billing_gateway_request_seconds",
    "Gateway request latency.",
    ["gateway", "endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge(
    "billing_charges_in_flight", "Charges being driven now.", multiprocess_mode="livesum"
)
DEAD_LETTERS = Gauge("billing_dead_letters", "Open dead letters.", multiprocess_mode="mostrecent")
CIRCUIT = Gauge(
    "billing_circuit_state",
    "Circuit breaker: 0 closed, 1 half-open, 2 open.",
    ["gateway"],
    multiprocess_mode="mostrecent",
)
WORK_PENDING = Gauge(
    "billing_work_pending", "Open periods waiting in bw:work.", multiprocess_mode="mostrecent"
)

SCHEDULER_LEADER = Gauge(
    "billing_scheduler_leader", "1 while this scheduler holds the lease.", multiprocess_mode="max"
)
SWEPT = Counter("billing_periods_dispatched", "Periods the sweep opened and rang for.")
DUE_NOW = Gauge(
    "billing_subscriptions_due", "Subscriptions due now.", multiprocess_mode="mostrecent"
)
SUBSCRIPTIONS = Gauge(
    "billing_subscriptions", "Subscriptions stored.", multiprocess_mode="mostrecent"
)

CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}
