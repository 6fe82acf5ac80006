"""Fault injection: the sandbox misbehaving on purpose, so the worker's handling is tested.

A :class:`FaultRule` names an ``endpoint`` (TXPG's: ``create-order``, ``set-src-token``,
``set-dst-token``, ``exec-tran``, ``get-order`` or ``any``; the Bizon sandbox has its own
names, :class:`worker.sandbox.bizon.app.BizonEndpoint`), a ``kind``, and when it fires:
with a ``probability`` (drawn from a seeded RNG, so a run can be replayed), for the next
``times`` matching calls only, and/or only for one ``orderId`` or ``storedId`` (the card on
the order, or in the set-src-token body). Kinds:

====================  =========================================================================
``latency``           wait ``latencyMs`` before handling (adds up with other latency rules)
``http-502``          nginx's HTML "502 Bad Gateway" page; nothing is handled
``http-503``          nginx's HTML "503 Service Temporarily Unavailable"; nothing is handled
``drop-before``       close the TCP connection before handling: no response bytes, nothing moved
``commit-then-drop``  handle the call (money moves, the ledger has it), then close the
                      connection without a response: the client cannot know what happened
``slow-body``         handle the call, send the headers, then trickle the body ``chunkBytes``
                      at a time every ``latencyMs``
====================  =========================================================================

Rules come from a file at startup (``--faults FILE``: ``{"seed": 7, "faults": [...]}``), the
admin API (``POST /_admin/faults``) or Python (``state.faults.add(FaultRule(...))``). Rules
are tried in the order they were added; all firing latency rules apply, and then at most one
other rule (the first that fires), so ``times`` counts only the calls a rule really hit.

The plan, the kinds and the JSON form are shared by both sandboxes; only the endpoint names
differ, so :func:`rule_from_json` and :func:`load_faults` take the gateway's endpoint enum.
"""

from __future__ import annotations

import enum
import json
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from worker.errors import InvalidInput


class Endpoint(enum.StrEnum):
    """TXPG's endpoints, as fault rules name them."""

    CREATE_ORDER = "create-order"
    SET_SRC_TOKEN = "set-src-token"  # noqa: S105 - an endpoint name
    SET_DST_TOKEN = "set-dst-token"  # noqa: S105 - an endpoint name
    EXEC_TRAN = "exec-tran"
    GET_ORDER = "get-order"
    ANY = "any"


class FaultKind(enum.StrEnum):
    LATENCY = "latency"
    HTTP_502 = "http-502"
    HTTP_503 = "http-503"
    DROP_BEFORE = "drop-before"
    COMMIT_THEN_DROP = "commit-then-drop"
    SLOW_BODY = "slow-body"


#: The endpoint name every gateway's enum has: a rule for it matches every call.
ANY_ENDPOINT = "any"

#: Kinds that act before the call is handled (nothing moves).
BEFORE_KINDS = frozenset({FaultKind.HTTP_502, FaultKind.HTTP_503, FaultKind.DROP_BEFORE})


@dataclass(slots=True)
class FaultRule:
    kind: FaultKind
    #: a member of the gateway's endpoint enum (:class:`Endpoint` for TXPG); a plain string
    #: is read as a TXPG endpoint
    endpoint: str = Endpoint.ANY
    probability: float = 1.0  #: a chance, not money: a float is fine
    times: int | None = None  #: fire for the next N matching calls only; None: no limit
    order_id: int | None = None
    stored_id: int | None = None
    latency_ms: int = 100  #: the wait for ``latency``; the gap between chunks for ``slow-body``
    chunk_bytes: int = 16  #: ``slow-body`` chunk size
    id: int = 0  #: given by :meth:`FaultPlan.add`
    fired: int = 0  #: how many calls it hit so far

    def __post_init__(self) -> None:
        self.kind = FaultKind(self.kind)
        if not isinstance(self.endpoint, enum.Enum):
            self.endpoint = Endpoint(self.endpoint)
        if not 0.0 <= self.probability <= 1.0:
            raise InvalidInput("probability must be between 0 and 1")
        if self.times is not None and self.times < 0:
            raise InvalidInput("times must be 0 or more")
        if self.latency_ms < 0 or self.chunk_bytes < 1:
            raise InvalidInput("latencyMs must be >= 0 and chunkBytes >= 1")

    def matches(self, endpoint: str, order_id: int | None, stored_id: int | None) -> bool:
        if self.endpoint != ANY_ENDPOINT and self.endpoint != endpoint:
            return False
        if self.times is not None and self.times <= 0:
            return False
        if self.order_id is not None and self.order_id != order_id:
            return False
        return self.stored_id is None or self.stored_id == stored_id

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "endpoint": str(self.endpoint),
            "probability": self.probability,
            "times": self.times,
            "orderId": self.order_id,
            "storedId": self.stored_id,
            "latencyMs": self.latency_ms,
            "chunkBytes": self.chunk_bytes,
            "fired": self.fired,
        }


_JSON_KEYS = {
    "kind": "kind",
    "endpoint": "endpoint",
    "probability": "probability",
    "times": "times",
    "orderId": "order_id",
    "storedId": "stored_id",
    "latencyMs": "latency_ms",
    "chunkBytes": "chunk_bytes",
}


def rule_from_json(
    data: Mapping[str, Any], endpoints: type[enum.StrEnum] = Endpoint, *, by_card: bool = True
) -> FaultRule:
    """A rule from its JSON form: ``{"kind": "http-502", "endpoint": "exec-tran", ...}``.

    ``endpoints`` is the gateway's endpoint enum; ``by_card=False`` refuses ``storedId``
    (a gateway without stored-card ids, where such a rule would never fire).
    """
    if not isinstance(data, Mapping):
        raise InvalidInput("a fault rule must be a JSON object")
    known = set(_JSON_KEYS) if by_card else set(_JSON_KEYS) - {"storedId"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInput(f"fault rule has unknown keys {unknown}; known: {sorted(known)}")
    if "kind" not in data:
        raise InvalidInput(f"fault rule needs a kind: one of {[k.value for k in FaultKind]}")
    kwargs: dict[str, Any] = {_JSON_KEYS[k]: v for k, v in data.items()}
    for key in ("times", "order_id", "stored_id", "latency_ms", "chunk_bytes"):
        value = kwargs.get(key)
        if value is not None and type(value) is not int:
            raise InvalidInput(f"{key} must be an integer")
    probability = kwargs.get("probability", 1)
    if isinstance(probability, bool) or not isinstance(probability, int | float | Decimal):
        raise InvalidInput("probability must be a number between 0 and 1")
    kwargs["probability"] = float(probability)
    try:
        kwargs["kind"] = FaultKind(kwargs["kind"])
        kwargs["endpoint"] = endpoints(kwargs.get("endpoint", ANY_ENDPOINT))
    except ValueError as exc:
        names = ", ".join(e.value for e in endpoints)
        raise InvalidInput(f"{exc}; endpoints: {names}") from None
    return FaultRule(**kwargs)


def load_faults(
    source: Path | str | bytes, endpoints: type[enum.StrEnum] = Endpoint, *, by_card: bool = True
) -> tuple[list[FaultRule], int | None]:
    """Rules and seed from a file (a path) or JSON bytes: ``{"seed": 7, "faults": [...]}``."""
    text = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"faults file is not valid JSON: {exc}") from None
    seed = None
    if isinstance(data, dict):
        seed = data.get("seed")
        if seed is not None and type(seed) is not int:
            raise InvalidInput("seed must be an integer")
        data = data.get("faults", [])
    if not isinstance(data, list):
        raise InvalidInput('faults file must hold a list or {"faults": [...]}')
    return [rule_from_json(item, endpoints, by_card=by_card) for item in data], seed


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What to do to one call: wait ``delay_ms``, then the ``action`` rule (if any)."""

    delay_ms: int = 0
    action: FaultRule | None = None


NO_FAULT = FaultDecision()


class FaultPlan:
    """The active rules. Thread-safe; :meth:`decide` is called once per gateway call."""

    def __init__(
        self, lock: threading.RLock, rules: Iterable[FaultRule] = (), seed: int | None = None
    ) -> None:
        self._lock = lock
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self._random = random.Random(seed)  # noqa: S311 - fault timing, not security
        for rule in rules:
            self.add(rule)

    def add(self, rule: FaultRule) -> FaultRule:
        """Activate a copy of ``rule``; returns it with its ``id``."""
        with self._lock:
            active = replace(rule, id=self._next_id, fired=0)
            self._next_id += 1
            self._rules.append(active)
            return replace(active)

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def seed(self, seed: int | None) -> None:
        with self._lock:
            self._random.seed(seed)

    def rules(self) -> list[FaultRule]:
        """Copies of the active rules, with how often each fired."""
        with self._lock:
            return [replace(r) for r in self._rules]

    @property
    def active(self) -> bool:
        """True when any rule is set (checked on every call, so it copies nothing)."""
        return bool(self._rules)

    @property
    def wants_stored_id(self) -> bool:
        """True when some rule matches on storedId (so the caller must look it up)."""
        with self._lock:
            return any(r.stored_id is not None for r in self._rules)

    def decide(
        self, endpoint: str, order_id: int | None = None, stored_id: int | None = None
    ) -> FaultDecision:
        with self._lock:
            if not self._rules:
                return NO_FAULT
            delay = 0
            for rule in self._rules:
                if rule.kind is not FaultKind.LATENCY or not self._fires(
                    rule, endpoint, order_id, stored_id
                ):
                    continue
                delay += rule.latency_ms
            for rule in self._rules:
                if rule.kind is not FaultKind.LATENCY and self._fires(
                    rule, endpoint, order_id, stored_id
                ):
                    return FaultDecision(delay, replace(rule))
            return FaultDecision(delay) if delay else NO_FAULT

    def _fires(
        self, rule: FaultRule, endpoint: str, order_id: int | None, stored_id: int | None
    ) -> bool:
        if not rule.matches(endpoint, order_id, stored_id):
            return False
        if rule.probability < 1.0 and self._random.random() >= rule.probability:
            return False
        rule.fired += 1
        if rule.times is not None:
            rule.times -= 1
        return True
