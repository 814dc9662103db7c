"""The one place the operators read the queue (so a change of listing strategy touches one function)."""

from __future__ import annotations

from collections.abc import Sequence

from airflow_provider_debitura.hooks.debitura import DebituraHook, case_lookup
from airflow_provider_debitura.models import Case, Task, TaskType
from airflow_provider_debitura.validation import CaseSelector

__all__ = ["list_scope"]


def list_scope(
    hook: DebituraHook,
    selector: CaseSelector | None,
    *,
    status: str | None,
    types: Sequence[str] | None,
    with_account_level: bool = False,
) -> tuple[Case | None, list[Task]]:
    """The tasks of the account (every page) or of one case, and the scope's case (None for the account).

    :param hook: the connection.
    :param selector: one case, or None for the whole account.
    :param status: ``Open``, ``Solved`` or None.
    :param types: only these types (None: every type).
    :param with_account_level: with a case scope, also the account-level tasks (which block every case).
    """
    if selector is None:
        return None, _account(hook, status, types)
    case = hook.run(case_lookup(selector))
    tasks = hook.get_case_tasks(case.id, status=status, types=types)
    if with_account_level:
        account_types = [t for t in (types or sorted(TaskType.account_level())) if TaskType.is_account_level_type(t)]
        if account_types:
            tasks += [t for t in _account(hook, status, account_types) if t.is_account_level]
    return case, tasks


def _account(hook: DebituraHook, status: str | None, types: Sequence[str] | None) -> list[Task]:
    # Two passes that agree (confirm=True): see hooks.paging. The core listing replaces this call.
    return hook.list_tasks(status=status, types=types, confirm=True)
