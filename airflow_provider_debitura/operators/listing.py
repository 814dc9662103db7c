"""The one place the operators read the queue (so a change of listing strategy touches one function)."""

from __future__ import annotations

from collections.abc import Sequence

from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.hooks.lookup import CaseLookup
from airflow_provider_debitura.models import Case, Records, RejectedRecord, Task, TaskType
from airflow_provider_debitura.validation import CaseSelector

__all__ = ["describe_rejected", "list_scope"]


def list_scope(
    hook: DebituraHook,
    selector: CaseSelector | None,
    *,
    status: str | None,
    types: Sequence[str] | None,
    with_account_level: bool = False,
) -> tuple[Case | None, Records[Task]]:
    """The tasks of the account (every page) or of one case, and the scope's case (None for the account).

    Records that could not be understood are in the result's ``rejected`` (the hook isolates them).

    :param hook: the connection.
    :param selector: one case, or None for the whole account.
    :param status: ``Open``, ``Solved`` or None.
    :param types: only these types (None: every type).
    :param with_account_level: with a case scope, also the account-level tasks (which block every case).
    """
    if selector is None:
        return None, hook.list_tasks(status=status, types=types)
    case = hook.exchange(CaseLookup(selector))
    own = hook.get_case_tasks(case.id, status=status, types=types)
    tasks, rejected = list(own), list(own.rejected)
    if with_account_level:
        account_types = [t for t in (types or sorted(TaskType.account_level())) if TaskType.is_account_level_type(t)]
        if account_types:
            account = hook.list_tasks(status=status, types=account_types)
            tasks += [t for t in account if t.is_account_level]
            rejected += [r for r in account.rejected if r.scope in ("account", "any")]
    return case, Records(tasks, rejected)


def describe_rejected(rejected: Sequence[RejectedRecord], limit: int = 10) -> str:
    """``3 task record(s) could not be read: id … (type …, case …): reason; …`` for a log line.

    :param rejected: the records set aside.
    :param limit: how many to name.
    """
    named = [
        f"{r.id or '(no id)'} (type {r.type or '?'}, case {r.case_id or '?'}): {r.reason}" for r in rejected[:limit]
    ]
    more = f"; and {len(rejected) - limit} more" if len(rejected) > limit else ""
    return f"{len(rejected)} task record(s) could not be read and are left out: {'; '.join(named)}{more}"
