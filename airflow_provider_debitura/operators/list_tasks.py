"""``DebituraListTasksOperator``: list Debitura tasks into XCom, in a shape fit for XCom and mapping."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.links import push_solution_url
from airflow_provider_debitura.models import Task, TaskType
from airflow_provider_debitura.operators.base import DebituraTaskOperatorBase, scope_label
from airflow_provider_debitura.operators.list_counts import CountPlan, TaskCounts, count_plan, counts_digest
from airflow_provider_debitura.operators.list_output import (
    COUNTS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_XCOM_BYTES,
    batch_size,
    by_case_groups,
    digest_size_error,
    mapping_error,
    max_xcom_bytes,
    shape_of,
    valid_shape,
    xcom_size_error,
)
from airflow_provider_debitura.operators.listing import describe_rejected, list_scope
from airflow_provider_debitura.validation import as_bool, task_status, task_types

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["DebituraListTasksOperator", "digest_table", "summary_table"]


class DebituraListTasksOperator(DebituraTaskOperatorBase):
    """List Debitura tasks (every page) into XCom, as compact records by default.

    ``shape`` picks the XCom value's shape (bytes per task measured in docs/operators.md): ``records`` (default;
    id, type, title, caseId, caseReference, dateCreated, deadline, solutionUrl), ``full`` (the API's own
    dicts), ``ids``, ``by_case`` (one item per case), ``batches`` (lists of ``batch_size`` records) or
    ``summary`` (counts by type and the oldest 20 records: one small dict at any queue size, from every page) or
    ``counts`` (the same digest from the API's totals: on the account scope a fixed few requests at any queue
    size, ``cases`` None; see ``operators.list_counts``). When a
    downstream task maps over a list with more items than ``[core] max_map_length``, the task fails
    before pushing, with an error that says how to group. A value over ``max_xcom_bytes`` (default 1 MB) is
    refused before anything is pushed, with an error naming the shapes and filters that fit
    (docs/list-xcom-size.md).

    :param debitura_conn_id: Airflow connection to use.
    :param case_id: Limit to one case by Debitura GUID (or ``creditor_reference`` / ``case_reference``;
        at most one of the three). None of them: the whole account.
    :param creditor_reference: Limit to the case with your own reference.
    :param case_reference: Limit to the case with Debitura's 8-character reference.
    :param task_types: Only these types (list or comma-separated string).
    :param status: ``Open`` (default) or ``Solved``.
    :param api_resolvable_only: Only tasks an integration can clear itself (the chat-driven types).
    :param needs_human_only: Only tasks no API call resolves (every type but the chat-driven ones,
        new types included).
    :param include_account_level: With a case scope, also return the account-level tasks
        (``SignContract``, ``AssignBankAccount``), which block every case but which
        ``GET /cases/{id}/tasks`` never lists. Ignored for the account scope, which always includes them.
    :param shape: The XCom shape (see above).
    :param batch_size: Records per batch with ``shape="batches"`` (default 100).
    :param max_xcom_bytes: The largest value to push, in JSON bytes (default 1,000,000); raise it only for an
        XCom backend that stores large values.
    """

    template_fields: Sequence[str] = (
        *DebituraTaskOperatorBase.template_fields,
        "status",
        "api_resolvable_only",
        "needs_human_only",
        "include_account_level",
        "shape",
        "batch_size",
        "max_xcom_bytes",
    )

    def __init__(
        self,
        *,
        status: str = "Open",
        api_resolvable_only: bool | str = False,
        needs_human_only: bool | str = False,
        include_account_level: bool | str = False,
        shape: str = "records",
        batch_size: int | str = DEFAULT_BATCH_SIZE,
        max_xcom_bytes: int | str = DEFAULT_MAX_XCOM_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.status = status
        self.api_resolvable_only = api_resolvable_only
        self.needs_human_only = needs_human_only
        self.include_account_level = include_account_level
        self.shape = shape
        self.batch_size = batch_size
        self.max_xcom_bytes = max_xcom_bytes

    def _query_types(self) -> tuple[list[str] | None, bool, bool]:
        types = task_types("task_types", self.task_types)
        resolvable_only = as_bool("api_resolvable_only", self.api_resolvable_only)
        human_only = as_bool("needs_human_only", self.needs_human_only)
        if resolvable_only and human_only:
            raise DebituraConfigError(
                "api_resolvable_only=True and needs_human_only=True exclude each other (a task is one or the "
                "other). Keep one."
            )
        chat = TaskType.chat_driven()
        if resolvable_only and types is not None and not any(t in chat for t in types):
            raise DebituraConfigError(
                f"api_resolvable_only=True with task_types={types} can never match: none of those types can "
                f"be resolved through the API ({', '.join(sorted(chat))}). Drop one of the two."
            )
        if human_only and types is not None and all(t in chat for t in types):
            raise DebituraConfigError(
                f"needs_human_only=True with task_types={types} can never match: those types are all resolved "
                "through the API. Drop one of the two."
            )
        if resolvable_only and types is None:
            types = sorted(chat)
        return types, resolvable_only, human_only

    def execute(self, context: Context) -> Any:
        """List the tasks and return them in the ``shape`` asked for.

        :param context: the Airflow task context.
        """
        selector = self._selector()
        types, resolvable_only, human_only = self._query_types()
        status = task_status("status", self.status)
        with_account = as_bool("include_account_level", self.include_account_level)
        shape = valid_shape(self.shape)
        per_batch = batch_size(self.batch_size)
        size_limit = max_xcom_bytes(self.max_xcom_bytes)
        if shape == COUNTS and selector is None:
            return self._counts(context, count_plan(status, types, resolvable_only, human_only), size_limit)
        with self._hook() as hook:
            # The budget preflight: the requests known before the first answer (the account's size is learned
            # from page 1; the hook checks the rest of the listing against the budget right after it).
            known = 1 if selector is None else 2 + with_account
            hook.budget.require(known, what=f"listing the {status} tasks of {scope_label(selector)}")
            _, listed = list_scope(hook, selector, status=status, types=types, with_account_level=with_account)
        if listed.rejected:
            self.log.warning("%s", describe_rejected(listed.rejected))
        tasks: list[Task] = list(listed)
        if resolvable_only:
            tasks = [t for t in tasks if t.is_api_resolvable]
        if human_only:
            tasks = [t for t in tasks if not t.is_api_resolvable]
        self.log.info("%s", summary_table(tasks, f"{status} tasks in {scope_label(selector)}"))
        if self.do_xcom_push:  # before anything is pushed (the link, the value)
            by_kind = not (resolvable_only or human_only)
            if (too_large := xcom_size_error(tasks, shape, per_batch, size_limit, by_kind=by_kind)) is not None:
                raise too_large
        first_human = next((t for t in tasks if not t.is_api_resolvable and t.solution_url), None)
        push_solution_url(context, first_human.solution_url if first_human else None)
        value = shape_of(tasks, shape, per_batch)
        self._check_mappable(shape, value, tasks)
        return value

    def _counts(self, context: Context, plan: CountPlan, size_limit: int) -> dict[str, Any]:
        """``shape="counts"`` on the account scope: the digest from the API's totals, ``plan.requests`` requests.

        :param context: the Airflow task context.
        :param plan: the requests (``list_counts.count_plan``).
        :param size_limit: ``max_xcom_bytes``.
        """
        with self._hook() as hook:
            hook.budget.require(
                plan.requests, what=f"counting the {plan.status} tasks of the whole account from the API's totals"
            )
            counted = hook.exchange(TaskCounts(plan))
        if counted.rejected:
            self.log.warning("%s", describe_rejected(counted.rejected))
        value = counts_digest(counted)
        title = f"{plan.status} tasks in the whole account"
        if counted.whole is not None:
            note = f"counted from one page that held every {plan.status} task (1 request)"
        else:
            note = f"counted from the API's totals ({counted.requests} requests); tasks come and go between requests"
        self.log.info("%s", digest_table(value, title, note=note))
        if self.do_xcom_push and (too_large := digest_size_error(value, size_limit)) is not None:
            raise too_large
        chat = TaskType.chat_driven()
        first_human = next((r for r in value["oldest"] if r["type"] not in chat and r["solutionUrl"]), None)
        push_solution_url(context, first_human["solutionUrl"] if first_human else None)
        return value

    def _check_mappable(self, shape: str, value: Any, tasks: Sequence[Task]) -> None:
        if not isinstance(value, list) or not self._maps_downstream():
            return
        limit = conf.getint("core", "max_map_length", fallback=1024)
        error = mapping_error(shape, len(value), limit, len(tasks), by_case_groups(tasks))
        if error is not None:
            raise error

    def _maps_downstream(self) -> bool:
        try:
            return next(iter(self.iter_mapped_dependants()), None) is not None
        except Exception:  # not in a DAG (a direct execute() call): nothing maps over it
            return False


def summary_table(tasks: Sequence[Task], title: str) -> str:
    """The log table of a listing: count by type, API-resolvable and account-level totals.

    :param tasks: the listed tasks.
    :param title: the first line.
    """
    by_type = Counter(t.type or "(none)" for t in tasks)
    resolvable = sum(1 for t in tasks if t.is_api_resolvable)
    account = sum(1 for t in tasks if t.is_account_level)
    value = {"total": len(tasks), "by_type": by_type, "api_resolvable": resolvable, "account_level": account}
    return digest_table(value, title)


def digest_table(value: dict[str, Any], title: str, *, note: str | None = None) -> str:
    """The log table of a digest (``shape="summary"`` or ``"counts"``): count by type, API-resolvable and
    account-level totals.

    :param value: the digest (``total``, ``by_type``, ``api_resolvable``, ``account_level``).
    :param title: the first line, after the total.
    :param note: a last line (e.g. that the counts are from the API's totals).
    """
    by_type: dict[str, int] = dict(value["by_type"])
    width = max([len("API-resolvable"), *(len(k) for k in by_type)])
    lines = [f"{value['total']} {title}", f"  {'type':<{width}}  count"]
    lines += [f"  {name:<{width}}  {count:>5}" for name, count in sorted(by_type.items())]
    lines += [
        f"  {'-' * width}  -----",
        f"  {'API-resolvable':<{width}}  {value['api_resolvable']:>5}",
        f"  {'account-level':<{width}}  {value['account_level']:>5}",
    ]
    if note:
        lines.append(f"  ({note})")
    return "\n".join(lines)
