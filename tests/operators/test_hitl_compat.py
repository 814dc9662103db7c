"""The one place the provider leans on Airflow internals for Human-in-the-loop: ``airflow dags test`` runs a
deferred task's trigger inline under the worker's in-process supervisor, whose channel answers a trigger's HITL
read or response with nothing; ``hitl.compat`` then makes the same Execution API call through that supervisor's
client (issue 23 item 6). The signal is the empty answer, not a class name; these tests fail loudly when Airflow
changes either side of it (the end-to-end tests under ``airflow dags test`` exercise the path for real).
"""

from __future__ import annotations

import inspect
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_debitura.hitl import compat

pytestmark = [
    pytest.mark.hitl,
    pytest.mark.skipif(not compat.HITL_AVAILABLE, reason=f"Human-in-the-loop: {compat.HITL_UNAVAILABLE_REASON}"),
]


class _Hitl:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def get_detail_response(self, ti_id):
        self.calls.append(("get", ti_id))
        return SimpleNamespace(response_received=False, chosen_options=None)

    def update_response(self, *, ti_id, chosen_options, params_input):
        self.calls.append(("update", (ti_id, chosen_options, params_input)))
        return SimpleNamespace(response_received=True, chosen_options=chosen_options)


@pytest.fixture
def silent_channel(monkeypatch):
    """A supervisor channel that answers the trigger's HITL calls with nothing, as ``dag.test()``'s does."""
    from airflow.sdk.execution_time import hitl as sdk_hitl

    monkeypatch.setattr(sdk_hitl, "get_hitl_detail_content_detail", lambda ti_id: None)
    monkeypatch.setattr(sdk_hitl, "update_hitl_detail_response", lambda **kwargs: None)


def test_an_unanswered_hitl_call_goes_through_the_supervisors_own_client(silent_channel, monkeypatch):
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms

    hitl = _Hitl()
    comms = InProcessSupervisorComms(supervisor=SimpleNamespace(client=SimpleNamespace(hitl=hitl)))
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    ti_id = uuid.uuid4()
    assert compat.read_response(ti_id).response_received is False
    assert compat.record_response(ti_id, chosen_options=["Done"], params_input={"note": "x"}).chosen_options == ["Done"]
    assert hitl.calls == [("get", ti_id), ("update", (ti_id, ["Done"], {"note": "x"}))]


def test_an_unanswered_hitl_call_with_no_client_behind_it_fails_clearly(silent_channel, monkeypatch):
    from airflow.sdk.execution_time import task_runner

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", SimpleNamespace(), raising=False)
    with pytest.raises(RuntimeError, match="answered the trigger's call to read the request's answer with nothing"):
        compat.read_response(uuid.uuid4())


def test_airflow_still_has_the_shape_the_fallback_relies_on():
    """Fails when Airflow renames or reshapes what ``compat._unrouted_client`` reaches: the in-process channel's
    ``supervisor``, the supervisor's ``client`` and the client's two HITL calls."""
    import attrs
    from airflow.sdk.api.client import HITLOperations
    from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms, InProcessTestSupervisor

    assert "supervisor" in attrs.fields_dict(InProcessSupervisorComms)
    assert "client" in attrs.fields_dict(InProcessTestSupervisor)
    assert list(inspect.signature(HITLOperations.get_detail_response).parameters) == ["self", "ti_id"]
    update = inspect.signature(HITLOperations.update_response).parameters
    assert {"ti_id", "chosen_options", "params_input"} <= set(update)


def test_the_workers_supervisor_still_leaves_a_triggers_hitl_calls_unanswered():
    """The reason for the fallback. When this fails, Airflow's worker supervisor routes a trigger's HITL read and
    response itself: ``compat._unrouted_client`` and this file can go."""
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    handled = inspect.getsource(ActivitySubprocess._handle_request)
    assert "CreateHITLDetailPayload" in handled  # the operator's write is routed ...
    assert "GetHITLDetailResponse" not in handled and "UpdateHITLDetail" not in handled  # ... the trigger's are not


def test_upsert_returns_the_text_airflow_keeps(monkeypatch):
    """The request message is Airflow's own (``CreateHITLDetailPayload``); its answer is the stored request."""
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import CreateHITLDetailPayload

    sent: list[Any] = []

    class Channel:
        def __init__(self, answer: Any) -> None:
            self.answer = answer

        def send(self, msg):
            sent.append(msg)
            return self.answer

    kwargs: dict[str, Any] = {
        "options": ["Done"],
        "subject": "new subject",
        "body": "new body",
        "defaults": None,
        "multiple": False,
        "params": {},
        "assigned_users": [{"id": "alice", "name": "Alice"}],
    }
    first = SimpleNamespace(subject="first subject", body="first body")
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Channel(first), raising=False)
    assert compat.upsert_request(uuid.uuid4(), **kwargs) == ("first subject", "first body")
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Channel(None), raising=False)
    assert compat.upsert_request(uuid.uuid4(), **kwargs) is None
    assert all(isinstance(m, CreateHITLDetailPayload) for m in sent)
    assert sent[0].subject == "new subject" and sent[0].assigned_users[0].name == "Alice"
