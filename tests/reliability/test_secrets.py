"""Secrets and safety: the key never shows anywhere, TLS stays verified, templates stay sandboxed.

Already covered elsewhere (not repeated here): redirects are never followed with the key
(tests/hooks/test_hook_transport.py::test_redirects_are_not_followed_with_the_key), the hook's log
lines (tests/hooks/test_hook_sandbox.py::test_secret_never_logged), the reply report
(tests/operators/test_operator_reply.py::test_api_key_never_in_report_or_logs), the classic Jinja
escapes ``''.__class__.__mro__``, ``cycler.__init__.__globals__``, ``task.__init__.__globals__``,
``'{0.__class__}'.format``, resource bombs (tests/operators/test_operator_replies.py) and partner text
with ``{{ }}``/``{% raw %}`` inserted literally (tests/operators/test_operator_reply.py).
"""

from __future__ import annotations

import json
import sqlite3
import ssl
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.reliability import REL_KEY, load_world, set_faults, use_conn

from airflow_provider_debitura.exceptions import DebituraAuthError, DebituraServerError, DebituraTransportError
from airflow_provider_debitura.hooks import debitura as hook_module
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook, DebituraHook
from airflow_provider_debitura.hooks.settings import ConnectionSettings
from airflow_provider_debitura.operators import DebituraListTasksOperator, DebituraReplyToChatTasksOperator
from airflow_provider_debitura.replies import ReplyTemplateError, compile_template, render_reply, template_context
from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor
from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger

CANARY = {"api_key": "DEBITURA-KEY-CANARY-4f9a1c7e2b", "bearer": "DEBITURA-BEARER-CANARY-8d3b6e0f5a"}


# ------------------------------------------------------------------------------------ a real DAG run


def _prepare(sb: Any) -> None:
    """Demo world; the gate's account-level blocker clears 3 s after the gate's first check (so the
    sensor really defers); GET /users always answers 500 (the failing task's error path)."""
    text = resources.files("airflow_provider_debitura.sandbox").joinpath("scenarios/demo.json").read_text()
    scenario = json.loads(text)
    for task in scenario["tasks"]:
        task.pop("solveAfterSeconds", None)
    assert sb.control("POST", "/scenario", json=scenario).status_code == 200
    account_task = next(t for t in sb.state.list_tasks("Open") if t["type"] == "AssignBankAccount")
    event = {
        "at": {"afterRequests": {"method": "GET", "path": "/cases/{id}/tasks", "count": 1}},
        "action": {"type": "solveTask", "taskId": account_task["id"], "afterSeconds": 3},
    }
    assert sb.control("POST", "/events", json=event).status_code == 201
    set_faults(sb, [{"kind": "status", "status": 500, "path": "/users"}])


def _files_containing(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.e2e
@pytest.mark.timeout(400)
@pytest.mark.parametrize("auth", ["api_key", "bearer"])
def test_key_never_in_logs_xcom_rendered_fields_db_or_request_log(airflow_env, auth) -> None:
    from airflow_provider_debitura.sandbox import SandboxServer

    key = CANARY[auth]
    dag_id = f"reliability_secrets_{auth}"
    with SandboxServer(scenario="demo", api_key=key) as sb:
        _prepare(sb)
        conn = json.loads(sb.conn_json())
        conn["extra"] |= {"auth_type": auth, "max_attempts": 2}
        result = airflow_env.run_dag(dag_id, conn_json=json.dumps(conn), timeout=300)
        request_log = sb.control("GET", "/requests").json()

    states = result.states
    assert states.get("hook_calls") == "success", result.explain()
    assert states.get("gate") == "success", result.explain()
    assert states.get("list_tasks") == "success" and states.get("reply") == "success", result.explain()
    assert states.get("failing_call") == "failed", result.explain()
    assert len(result.xcom("reply")["replied"]) == 3
    assert any(r["path"] == "/users" and r["status"] == 500 for r in request_log)  # the error path ran
    assert any(r["path"].endswith("/tasks") for r in request_log)

    # `airflow dags test` runs tasks in-process: their log lines go to its output (and, where written,
    # to log files under AIRFLOW_HOME/logs, which the file scan below covers).
    logs = result.output + airflow_env.task_logs(dag_id)
    assert "HTTP 500" in logs and "GET /users" in logs, "the failing call's error must be in the task log"
    assert ("deferr" in logs.lower() or "trigger" in logs.lower()) and "unblocked" in logs

    # Everything Airflow wrote: every log file, airflow.cfg, the SQLite metadata DB (XCom, rendered
    # template fields, trigger kwargs, task instances, the log table) and its journal files.
    assert _files_containing(airflow_env.home, key.encode()) == []
    assert key not in json.dumps({str(k): v for k, v in result.xcoms.items()}, default=str)
    assert key not in json.dumps(request_log)
    assert key not in result.output  # `airflow dags test` stdout/stderr
    with closing(sqlite3.connect(airflow_env.db)) as db:
        rendered = db.execute(
            "SELECT task_id, rendered_fields FROM rendered_task_instance_fields WHERE dag_id=?", (dag_id,)
        ).fetchall()
    assert {"gate", "list_tasks", "reply"} <= {row[0] for row in rendered}  # the check looked at real rows
    assert all(key not in str(row[1]) for row in rendered)


# ------------------------------------------------------------------------------------ unit checks


def test_errors_and_reprs_never_contain_the_key(rel_sb, monkeypatch) -> None:
    load_world(rel_sb, {"name": "demo"})
    wrong = "WRONG-KEY-CANARY-0b7e4d1c9a"
    use_conn(monkeypatch, rel_sb, max_attempts=1)
    hook = DebituraHook()
    settings = hook.settings
    seen: list[str] = [repr(hook), repr(settings), str(settings), repr(DebituraAsyncHook())]
    set_faults(rel_sb, [{"kind": "status", "status": 503, "path": "/tasks"}, {"kind": "drop", "path": "/users"}])
    for call, cls in ((hook.list_tasks, DebituraServerError), (hook.list_users, DebituraTransportError)):
        with pytest.raises(cls) as err:
            call()
        seen += [str(err.value), repr(err.value), repr(err.value.args)]
    hook.close()
    set_faults(rel_sb, [])
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(json.loads(rel_sb.conn_json()) | {"password": wrong})
    )
    with pytest.raises(DebituraAuthError) as err:
        DebituraHook().list_tasks()
    seen += [str(err.value), repr(err.value), repr(vars(err.value))]
    seen.append(str(DebituraHook().test_connection()))
    for op in (
        DebituraCaseUnblockedSensor(task_id="gate", creditor_reference="INV-1001", poke_interval=1, timeout=10),
        DebituraListTasksOperator(task_id="list"),
        DebituraReplyToChatTasksOperator(task_id="reply", reply_template="x"),
    ):
        seen += [repr(op), str(op)]
    seen.append(repr(DebituraCaseUnblockedTrigger("c", poll_interval=1).serialize()))
    blob = "\n".join(seen)
    assert REL_KEY not in blob and wrong not in blob
    assert "api_key=" not in repr(settings)  # the field is left out of the repr, not just blanked
    assert "HTTP 401" in blob and "HTTP 503" in blob  # the messages looked at are the real errors


def test_bearer_token_is_only_in_the_header(rel_sb, monkeypatch) -> None:
    use_conn(monkeypatch, rel_sb, auth_type="bearer")
    settings = DebituraHook().settings
    assert settings.auth_headers == {"Authorization": f"Bearer {REL_KEY}"}
    assert REL_KEY not in repr(settings)


def test_tls_verification_stays_on_whatever_the_extras_say(monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEBITURA_DEFAULT",
        json.dumps({"conn_type": "debitura", "password": "k-1234567890", "extra": {"verify": False, "verify_ssl": 0}}),
    )
    hook = DebituraHook()
    kwargs = hook_module._client_kwargs(hook.settings)
    context = kwargs["verify"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert kwargs["follow_redirects"] is False  # behaviour tested in tests/hooks/test_hook_transport.py
    client = hook.get_conn()
    assert isinstance(client, httpx.Client) and str(client.base_url).startswith("https://")
    hook.close()


def test_settings_repr_hides_the_key_for_any_field_value() -> None:
    settings = ConnectionSettings.from_connection_fields("c", host=None, password="  spaced-secret-42  ", extra={})
    assert "spaced-secret-42" not in repr(settings)


# ------------------------------------------------------------------------------------ reply templates

TASK = {"id": "t-1", "type": "ReplyToChat", "caseId": "c-1", "title": "Question"}


def _airflow_like_context() -> dict[str, Any]:
    class DagRun:
        run_id = "manual__1"
        conf = {"team": "ops"}

        def get_task_instances(self) -> list:  # a live method that must not be reachable
            raise AssertionError("reached")

    class TI:
        dag_id, task_id, try_number = "d", "reply", 1

        def xcom_pull(self, *a: Any, **k: Any) -> Any:
            raise AssertionError("reached")

    return {
        "ds": "2026-11-27",
        "params": {"team": "ops"},
        "dag_run": DagRun(),
        "ti": TI(),
        "conn": object(),
        "var": object(),
        "macros": object(),
        "task": object(),
    }


def _render(source: str, partner: str | None = "Hi") -> str:
    return render_reply(
        compile_template("reply_template", source),
        template_name="reply_template",
        task=TASK,
        case=None,
        partner_message=partner,
        context=template_context(_airflow_like_context()),
    )


@pytest.mark.parametrize(
    "source",
    [
        "{{ self._TemplateReference__context }}",
        "{{ self.__init__ }}",
        "{{ dag_run.__class__ }}",
        "{{ dag_run | attr('__class__') }}",
        "{{ dag_run.conf.__class__.__base__ }}",
        "{{ dag_run.get_task_instances() }}",
        "{{ ti.xcom_pull(task_ids='x') }}",
        "{{ conn.debitura_default.password }}",
        "{{ var.value.secret }}",
        "{{ macros }}",
        "{{ lipsum.__globals__ }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__ }}",
        "{{ range.__self__ }}",
    ],
)
def test_templates_cannot_reach_python_or_airflow_internals(source: str) -> None:
    with pytest.raises(ReplyTemplateError, match="forbids|undefined"):
        _render(source)


def test_self_renders_as_an_inert_reference_and_params_writes_stay_local() -> None:
    assert _render("{{ self }}") == "<TemplateReference None>"
    context = _airflow_like_context()
    plain = template_context(context)
    render_reply(
        compile_template("reply_template", "{{ params.update({'team': 'x'}) }}ok"),
        template_name="reply_template",
        task=TASK,
        case=None,
        partner_message=None,
        context=plain,
    )
    assert context["params"] == {"team": "ops"}  # the template only saw a copy


@pytest.mark.parametrize(
    "partner",
    ["{{ 7*7 }}", "{% for i in range(10**9) %}x{% endfor %}", "{{ cycler.__init__.__globals__.os.system('id') }}"],
)
def test_partner_text_is_data_never_code(partner: str) -> None:
    assert _render("You wrote: {{ partner_message }}", partner) == f"You wrote: {partner}"
