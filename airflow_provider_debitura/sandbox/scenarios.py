"""Where scenarios come from: bundled names, ``large:N``, and (from the command line and Python only) files.

The format itself is described by :mod:`.scenario_models` (pydantic) and compiled by :mod:`.world`;
the names below are re-exported so ``from airflow_provider_debitura.sandbox.scenarios import
case_id_for`` keeps working.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

from airflow_provider_debitura.sandbox.ids import (
    SANDBOX_NAMESPACE,
    case_id_for,
    is_guid,
    normalize_guid,
    reference_for,
    stable_id,
    user_id_for,
)
from airflow_provider_debitura.sandbox.scenario_models import (
    GUID_RE,
    REFERENCE_RE,
    TYPE_NAME_RE,
    ScenarioError,
    parse_timestamp,
)
from airflow_provider_debitura.sandbox.world import (
    APP_URL,
    CHAT_ACTION_PATH,
    PARTNER_USER,
    World,
    build_partner_chat,
    build_task,
    build_world,
    check_event,
    user_relation,
)

__all__ = [
    "APP_URL",
    "BUNDLED_SCENARIOS",
    "CHAT_ACTION_PATH",
    "GUID_RE",
    "MAX_LARGE",
    "PARTNER_USER",
    "REFERENCE_RE",
    "SANDBOX_NAMESPACE",
    "TYPE_NAME_RE",
    "ScenarioError",
    "World",
    "build_partner_chat",
    "build_task",
    "build_world",
    "case_id_for",
    "check_event",
    "generate_large",
    "is_guid",
    "normalize_guid",
    "parse_timestamp",
    "reference_for",
    "resolve_scenario",
    "stable_id",
    "user_id_for",
    "user_relation",
]

BUNDLED_SCENARIOS = ("demo", "demo-ui", "empty")
MAX_LARGE = 200_000
ScenarioSource = str | Path | dict[str, Any] | None


def bundled_names() -> str:
    """The names the control plane accepts, for messages."""
    return ", ".join(BUNDLED_SCENARIOS) + ", large:N"


def resolve_scenario(spec: ScenarioSource, *, allow_files: bool = True) -> Any:
    """Turn ``demo`` / ``empty`` / ``large:N`` / a path / a dict into raw scenario JSON (a dict, unless a
    file holds something else: :func:`~.world.build_world` then says it must be an object).

    :param spec: a bundled name, ``large:N``, a scenario dict, or (with ``allow_files``) a file path.
    :param allow_files: read files for a :class:`~pathlib.Path` or a string that names no bundled
        scenario. The command line and the Python API allow it; the control plane never does, so a
        remote caller cannot read host files or learn whether a path exists.
    """
    if spec is None:
        spec = "empty"
    if isinstance(spec, dict):
        return copy.deepcopy(spec)
    if isinstance(spec, Path) and allow_files:
        return _load_file(spec)
    if not isinstance(spec, str):
        raise ScenarioError(f"scenario must be a bundled name ({bundled_names()}) or a scenario object")
    if spec.startswith("large:"):
        count = spec.split(":", 1)[1]
        if not count.isdigit() or not 0 < int(count) <= MAX_LARGE:
            raise ScenarioError(f"'{spec}': large:N needs an integer N between 1 and {MAX_LARGE}")
        return generate_large(int(count))
    if spec in BUNDLED_SCENARIOS:
        text = resources.files("airflow_provider_debitura.sandbox").joinpath(f"scenarios/{spec}.json")
        return json.loads(text.read_text(encoding="utf-8"))
    if allow_files:
        path = Path(spec).expanduser()
        if path.is_file():
            return _load_file(path)
        raise ScenarioError(f"unknown scenario '{spec}': not a bundled name ({bundled_names()}) and no such file")
    raise ScenarioError(
        f"unknown scenario name (bundled: {bundled_names()}). The control plane takes a bundled name or a scenario "
        "object; load a file with --scenario PATH on the command line or SandboxServer(scenario=Path(...))."
    )


def _load_file(path: Path) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read scenario file {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"scenario file {path} is not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return data


_LARGE_CYCLE = (
    "ReplyToChat",
    "ReplyToChat",
    "ClientInputRequired",
    "MoreInfoNeeded",
    "ReplyToChat",
    "ReviewPartner",
    "CaseValidationNeedsInfo",
    "Generic",
    "SelectQuoteWinner",
    "MoreInfoNeeded",
)


def generate_large(count: int) -> dict[str, Any]:
    """``count`` open tasks over ``max(1, count // 5)`` cases; deterministic, built for speed.

    A realistic mix: mostly chat-driven, some needing a human, every 50th account-level.

    :param count: the number of open tasks.
    """
    n_cases = max(1, count // 5)
    cases = [
        {
            "creditorReference": f"LRG-{i + 1:06d}",
            "grossAmount": float(500 + (i * 37) % 9500),
            "currency": ("EUR", "DKK", "USD", "GBP")[i % 4],
        }
        for i in range(n_cases)
    ]
    tasks: list[dict[str, Any]] = []
    for i in range(count):
        if i % 50 == 49:
            tasks.append({"type": "AssignBankAccount" if (i // 50) % 2 == 0 else "SignContract"})
        else:
            kind = _LARGE_CYCLE[(i * 7) % len(_LARGE_CYCLE)]
            tasks.append({"type": kind, "caseCreditorReference": f"LRG-{i % n_cases + 1:06d}"})
    return {"name": f"large:{count}", "cases": cases, "tasks": tasks}
