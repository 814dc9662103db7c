"""Fault-injection rules: parsing, validation and (seeded, deterministic) selection.

The ASGI side that *applies* a fault lives in :mod:`.app`; this module stays pure so the
store can hold rules under its lock.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = ("status", "rateLimit", "latency", "drop", "commitThenDrop", "malformedJson", "html200")
_COMMON = {"kind", "method", "path", "count", "probability"}
_PARAMS = {
    "status": {"status", "body", "headers"},
    "rateLimit": {"retryAfter", "retryAfterIn"},
    "latency": {"latencyMs"},
    "drop": set(),
    "commitThenDrop": set(),
    "malformedJson": set(),
    "html200": set(),
}
RETRY_AFTER_IN = ("body", "header", "both", "none")


class FaultError(ValueError):
    """A fault specification is invalid; the message names the offending rule and field."""


@dataclass
class FaultRule:
    """One fault rule (see ``docs/sandbox.md``, "Fault rules").

    :param kind: one of :data:`FAULT_KINDS`.
    :param method: the method it applies to, None for any.
    :param path: the path prefix it applies to, None for every API path.
    :param remaining: how many more requests it applies to, None for no limit.
    :param probability: the chance it applies to a matching request.
    :param params: the kind's parameters.
    :param applied: how often it applied.
    """

    kind: str
    method: str | None = None
    path: str | None = None
    remaining: int | None = None
    probability: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)
    applied: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Whether the rule (still) applies to this request.

        :param method: the request's method.
        :param path: the request's path.
        """
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.path is None or path.startswith(self.path)

    def to_dict(self) -> dict[str, Any]:
        """The rule as ``GET /_sandbox/faults`` shows it."""
        return {
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "count": self.remaining,
            "remaining": self.remaining,
            "probability": self.probability,
            "applied": self.applied,
            **copy.deepcopy(self.params),
        }


def _fail(where: str, msg: str) -> None:
    raise FaultError(f"{where}: {msg}")


def _kind_params(kind: str, spec: dict[str, Any], where: str) -> dict[str, Any]:
    """The kind-specific part of a rule (``status``, ``rateLimit`` or ``latency``), validated."""
    params: dict[str, Any] = {}
    if kind == "status":
        status = spec.get("status", 500)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            _fail(f"{where}.status", "must be an HTTP status code")
        params["status"] = status
        if "body" in spec:
            params["body"] = copy.deepcopy(spec["body"])
        headers = spec.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            _fail(f"{where}.headers", "must be an object of string values")
        params["headers"] = dict(headers)
    elif kind == "rateLimit":
        retry = spec.get("retryAfter", 1.0)
        if isinstance(retry, bool) or not isinstance(retry, (int, float)) or retry < 0:
            _fail(f"{where}.retryAfter", "must be a non-negative number of seconds")
        where_in = spec.get("retryAfterIn", "body")
        if where_in not in RETRY_AFTER_IN:
            _fail(f"{where}.retryAfterIn", f"must be one of {list(RETRY_AFTER_IN)}")
        params.update(retryAfter=float(retry), retryAfterIn=where_in)
    elif kind == "latency":
        ms = spec.get("latencyMs", 1000)
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 <= ms <= 600_000:
            _fail(f"{where}.latencyMs", "must be a number of milliseconds (0..600000)")
        params["latencyMs"] = ms
    return params


def parse_rule(spec: Any, where: str) -> FaultRule:
    """Validate one rule's JSON.

    :param spec: the rule's JSON.
    :param where: its path, for errors (``rules[2]``).
    """
    if not isinstance(spec, dict):
        _fail(where, "must be an object")
    kind = spec.get("kind")
    if kind not in FAULT_KINDS:
        _fail(f"{where}.kind", f"must be one of {list(FAULT_KINDS)}")
    unknown = sorted(set(spec) - _COMMON - _PARAMS[kind])
    if unknown:
        _fail(where, f"unknown field(s) {unknown} for kind {kind!r}")
    method = spec.get("method")
    if method is not None and not (isinstance(method, str) and method.isalpha()):
        _fail(f"{where}.method", "must be an HTTP method or null")
    path = spec.get("path")
    if path is not None and not (isinstance(path, str) and path.startswith("/")):
        _fail(f"{where}.path", "must start with / or be null")
    if path is not None and path.startswith("/_sandbox"):
        _fail(f"{where}.path", "faults never apply to the control plane")
    count = spec.get("count")
    if count is not None and not (isinstance(count, int) and not isinstance(count, bool) and count >= 0):
        _fail(f"{where}.count", "must be a non-negative integer or null (unlimited)")
    prob = spec.get("probability", 1.0)
    if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
        _fail(f"{where}.probability", "must be a number between 0 and 1")
    params = _kind_params(kind, spec, where)
    return FaultRule(
        kind=kind,
        method=method.upper() if method else None,
        path=path,
        remaining=count,
        probability=float(prob),
        params=params,
    )


class FaultSet:
    """The active rules plus a seeded RNG, so probabilistic faults replay identically (no parameters)."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.seed: int | None = None
        self._rng = random.Random(0)

    @staticmethod
    def parse(spec: Any) -> tuple[int | None, list[FaultRule]]:
        """Validate a ``PUT /_sandbox/faults`` body: its seed and rules.

        :param spec: the body.
        """
        if not isinstance(spec, dict):
            raise FaultError("faults: body must be an object {seed?, rules: [...]}")
        unknown = sorted(set(spec) - {"seed", "rules"})
        if unknown:
            raise FaultError(f"faults: unknown field(s) {unknown}; allowed: ['rules', 'seed']")
        seed = spec.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise FaultError("faults.seed: must be an integer or null")
        rules = spec.get("rules", [])
        if not isinstance(rules, list):
            raise FaultError("faults.rules: must be a list")
        return seed, [parse_rule(r, f"rules[{i}]") for i, r in enumerate(rules)]

    def replace(self, seed: int | None, rules: list[FaultRule]) -> None:
        """Replace every rule and reseed the RNG.

        :param seed: the RNG seed (None: 0).
        :param rules: the new rules.
        """
        self.seed = seed
        self.rules = rules
        self._rng = random.Random(seed if seed is not None else 0)

    def clear(self) -> None:
        """Remove every rule."""
        self.replace(None, [])

    def pick(self, method: str, path: str) -> tuple[float, FaultRule | None]:
        """Latency to add (ms) and the first non-latency rule that fires, consuming counts.

        :param method: the request's method.
        :param path: the request's path.
        """
        latency = 0.0
        for rule in self.rules:
            if not rule.matches(method, path):
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            rule.applied += 1
            if rule.kind == "latency":
                latency += rule.params["latencyMs"]
                continue
            return latency, rule
        return latency, None

    def to_dict(self) -> dict[str, Any]:
        """The rules as ``GET /_sandbox/faults`` shows them."""
        return {"seed": self.seed, "rules": [r.to_dict() for r in self.rules]}
