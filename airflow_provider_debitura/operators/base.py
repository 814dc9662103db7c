"""What both Debitura task operators share: the connection, the case scope, the type filter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.links import DebituraResolveLink
from airflow_provider_debitura.validation import CaseSelector, case_selector, connection_id

__all__ = ["DebituraTaskOperatorBase", "scope_label"]


def scope_label(selector: CaseSelector | None) -> str:
    """``the whole account`` or ``creditor_reference='INV-1'``, for log lines.

    :param selector: the case scope, or None for the account.
    """
    return "the whole account" if selector is None else selector.description


class DebituraTaskOperatorBase(BaseOperator):
    """Base of the Debitura task operators: connection, case scope and type filter (all templated).

    :param debitura_conn_id: Airflow connection to use.
    :param case_id: Limit to one case by Debitura GUID (or use ``creditor_reference`` / ``case_reference``;
        at most one of the three). None of them: the whole account.
    :param creditor_reference: Limit to the case with your own reference.
    :param case_reference: Limit to the case with Debitura's 8-character reference.
    :param task_types: Only these types (list or comma-separated string).
    """

    operator_extra_links = (DebituraResolveLink(),)
    ui_color = "#e8f1fb"
    template_fields: Sequence[str] = (
        "debitura_conn_id",
        "case_id",
        "creditor_reference",
        "case_reference",
        "task_types",
    )

    def __init__(
        self,
        *,
        debitura_conn_id: str = DebituraHook.default_conn_name,
        case_id: str | None = None,
        creditor_reference: str | None = None,
        case_reference: str | None = None,
        task_types: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.debitura_conn_id = debitura_conn_id
        self.case_id = case_id
        self.creditor_reference = creditor_reference
        self.case_reference = case_reference
        self.task_types = task_types

    def _selector(self) -> CaseSelector | None:
        return case_selector(self.case_id, self.creditor_reference, self.case_reference, required=False)

    def _hook(self) -> DebituraHook:
        return DebituraHook(debitura_conn_id=connection_id(self.debitura_conn_id))
