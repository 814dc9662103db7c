"""Airflow's Human-in-the-loop (HITL) surface, behind one version gate.

HITL exists from Airflow 3.1; this package needs ``apache-airflow-providers-standard`` >= 1.13 for it (the
``hitl`` extra). On older Airflow the
standard provider's ``hitl`` module raises at import, or is not installed at all (2.11). This module
imports it once and, where it is missing, puts a stand-in base class in its place whose constructor
fails with a message naming the version needed: a DAG that uses a HITL operator then fails at parse
time with that message, while everything else in the provider keeps working on 2.11 and 3.0.

The three request functions are the ones Airflow's own ``HITLOperator`` and ``HITLTrigger`` use: they go
through the task supervisor's channel to the Execution API (never to the metadata DB directly).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_debitura.exceptions import DebituraConfigError

__all__ = [
    "HITL_AVAILABLE",
    "HITL_UNAVAILABLE_REASON",
    "MIN_AIRFLOW",
    "HITLOperator",
    "refuse_fixed_args",
    "require_hitl",
]

MIN_AIRFLOW = "3.1"
"""The first Airflow release with Human-in-the-loop."""

if TYPE_CHECKING:
    from uuid import UUID

MIN_STANDARD_PROVIDER = "1.13.0"
"""The first apache-airflow-providers-standard with ``response_timeout`` on ``HITLOperator`` (Airflow 3.1.8's
own constraints pin 1.12.1): the ``hitl`` extra of this package asks for it."""


def _unavailable_reason() -> str | None:
    """Why Human-in-the-loop cannot work here, or None."""
    try:
        from airflow.providers.standard.operators.hitl import HITLOperator as Base
    except Exception as exc:  # ImportError (2.11: no standard provider) or AirflowOptionalProviderFeatureException
        return f"{type(exc).__name__}: {exc}"
    if "response_timeout" not in inspect.signature(Base.__init__).parameters:
        from importlib.metadata import version

        return (
            f"apache-airflow-providers-standard {version('apache-airflow-providers-standard')} has no "
            f"response_timeout; install 'airflow-provider-debitura[hitl]' (standard provider {MIN_STANDARD_PROVIDER}+)"
        )
    return None


HITL_UNAVAILABLE_REASON: str | None = _unavailable_reason()

if HITL_UNAVAILABLE_REASON is None:
    from airflow.providers.standard.operators.hitl import HITLOperator
else:

    class HITLOperator(BaseOperator):  # type: ignore[no-redef]
        """Stand-in for Airflow's ``HITLOperator`` where it does not exist: constructing one fails."""

        def __init__(self, **kwargs: Any) -> None:
            require_hitl(type(self).__name__)
            super().__init__(**kwargs)  # pragma: no cover

        @classmethod
        def partial(cls, **kwargs: Any) -> Any:
            """``.partial(...).expand(...)`` never calls the constructor at parse time: gate it here too."""
            require_hitl(cls.__name__)


HITL_AVAILABLE = HITL_UNAVAILABLE_REASON is None
"""True on Airflow 3.1+ with the standard provider's Human-in-the-loop module."""


def airflow_version() -> str:
    from airflow import __version__

    return __version__


def refuse_fixed_args(what: str, fixed: Iterable[str], kwargs: Mapping[str, object]) -> None:
    """Refuse HITLOperator arguments a Debitura operator sets itself (options, params, ...).

    :param what: the operator, for the message.
    :param fixed: the argument names it sets.
    :param kwargs: what the DAG passed.
    """
    for name in fixed:
        if name in kwargs:
            raise DebituraConfigError(f"{what} sets {name} itself; remove {name}=.")


def require_hitl(what: str) -> None:
    """Fail (at DAG parse time, when called from an operator's constructor) unless HITL is available.

    :param what: the operator or feature that needs it, for the message.
    """
    if HITL_AVAILABLE:
        return
    from airflow.exceptions import AirflowOptionalProviderFeatureException

    raise AirflowOptionalProviderFeatureException(
        f"{what} needs Airflow {MIN_AIRFLOW} or newer with apache-airflow-providers-standard {MIN_STANDARD_PROVIDER}+ "
        f"(Human-in-the-loop and the Required Actions page); this is "
        f"Airflow {airflow_version()} ({HITL_UNAVAILABLE_REASON}). Upgrade Airflow, or on this version hand tasks "
        "to people with DebituraListTasksOperator and a notifier (see example_debitura_task_triage)."
    )


def summary(operator: Any) -> dict[str, Any]:
    """The dict a HITL operator adds its own entries to for the task's summary: ``hitl_summary_extra`` in the
    standard provider 1.19+, ``hitl_summary`` itself before (1.13-1.18, as on Airflow 3.2.2's constraints).

    :param operator: the running HITL operator.
    """
    extra = getattr(operator, "hitl_summary_extra", None)
    if isinstance(extra, dict):
        return extra
    found = getattr(operator, "hitl_summary", None)
    return found if isinstance(found, dict) else {}


def upsert_request(
    ti_id: UUID,
    *,
    options: list[str],
    subject: str,
    body: str | None,
    defaults: list[str] | None,
    multiple: bool,
    params: dict[str, Any],
    assigned_users: list[Any] | None,
) -> tuple[str, str | None] | None:
    """Create the task instance's HITL request, or re-open it (an earlier answer is cleared), and return the
    ``(subject, body)`` Airflow keeps: the message Airflow's own ``upsert_hitl_detail`` sends (as
    ``HITLOperator.execute`` calls it), whose answer that function drops. On a request that exists Airflow keeps
    its first subject, body and form, also on a later try of the task instance; None if the channel does not say.

    :param ti_id: the task instance id.
    :param options: the answers offered.
    :param subject: the headline.
    :param body: Markdown details.
    :param defaults: options taken at the timeout.
    :param multiple: whether several options may be chosen.
    :param params: serialized form fields.
    :param assigned_users: who may answer.
    """
    from airflow.sdk.api.datamodels._generated import HITLUser as ApiHITLUser
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import CreateHITLDetailPayload

    kept: Any = task_runner.SUPERVISOR_COMMS.send(
        msg=CreateHITLDetailPayload(
            ti_id=ti_id,
            options=options,
            subject=subject,
            body=body,
            defaults=defaults,
            params=params,
            multiple=multiple,
            assigned_users=[ApiHITLUser(id=user["id"], name=user["name"]) for user in assigned_users or []],
        )
    )
    if not isinstance(getattr(kept, "subject", None), str):
        return None
    return kept.subject, kept.body


def read_response(ti_id: UUID) -> Any:
    """The request's response part (``response_received``, ``chosen_options``, ...): as ``HITLTrigger`` reads it.

    :param ti_id: the task instance id.
    """
    from airflow.sdk.execution_time.hitl import get_hitl_detail_content_detail

    response = get_hitl_detail_content_detail(ti_id=ti_id)
    if response is None:
        response = _unrouted_client("read the request's answer").hitl.get_detail_response(ti_id)
    return response


def record_response(ti_id: UUID, *, chosen_options: list[str], params_input: dict[str, Any]) -> Any:
    """Answer the request on Airflow's side, as ``HITLTrigger`` records a timeout default. Airflow refuses
    (409) when a person has answered first; the caller then reads that answer.

    :param ti_id: the task instance id.
    :param chosen_options: the options recorded.
    :param params_input: the form values recorded.
    """
    from airflow.sdk.execution_time.hitl import update_hitl_detail_response

    response = update_hitl_detail_response(ti_id=ti_id, chosen_options=chosen_options, params_input=params_input)
    if response is None:
        client = _unrouted_client("record an answer")
        response = client.hitl.update_response(ti_id=ti_id, chosen_options=chosen_options, params_input=params_input)
    return response


def _unrouted_client(what: str) -> Any:
    """The Execution API client behind a supervisor channel that answered a trigger's HITL call with nothing.

    The signal is the answer itself, not a class name: the triggerer's channel answers these calls (or raises),
    and only ``airflow dags test`` (``dag.test()``, Airflow 3.1-3.3) runs a deferred task's trigger inline under
    the *worker's* in-process supervisor, which routes an operator's HITL write but answers a trigger's HITL read
    or response with ``None``. The same Execution API call is then made through that supervisor's own client
    (``SUPERVISOR_COMMS.supervisor.client``), which is what the triggerer would have done.
    tests/operators/test_hitl_compat.py fails loudly when Airflow changes either side of this.

    :param what: the call, for the error when no such client is there.
    """
    from airflow.sdk.execution_time import task_runner

    supervisor = getattr(getattr(task_runner, "SUPERVISOR_COMMS", None), "supervisor", None)
    client = getattr(supervisor, "client", None)
    if client is None or not hasattr(client, "hitl"):
        raise RuntimeError(
            f"Airflow's supervisor channel answered the trigger's call to {what} with nothing, and no Execution API "
            f"client is reachable behind it ({type(supervisor).__name__}); this Airflow "
            f"{airflow_version()} routes Human-in-the-loop calls differently from 3.1-3.3: report it."
        )
    return client
