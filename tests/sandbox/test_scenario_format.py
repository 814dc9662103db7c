"""The scenario format: pydantic models give path-named errors; scripts/scenario_schema.py prints their schema."""

from __future__ import annotations

import runpy
from pathlib import Path

import jsonschema
import pytest

from airflow_provider_debitura.sandbox import SandboxState, ScenarioError
from airflow_provider_debitura.sandbox.scenario_models import json_schema, json_schema_text
from airflow_provider_debitura.sandbox.scenarios import BUNDLED_SCENARIOS, resolve_scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ({"bogus": 1}, "scenario: unknown field(s) ['bogus']; allowed: ['cases', 'chatSolveDelaySeconds', 'chats',"),
        ({"cases": [{"creditorReference": "A", "colour": "red"}]}, "cases[0]: unknown field(s) ['colour']; allowed: ["),
        ({"tasks": [{"type": "Bad Type"}]}, "tasks[0].type: must be a task type name, letters only (e.g. ReplyToChat)"),
        ({"tasks": [{}]}, "tasks[0].type: is required"),
        ({"tasks": [{"type": "Generic", "status": "Done"}]}, "tasks[0].status: Input should be 'Open' or 'Solved'"),
        ({"tasks": [{"type": "Generic", "minutesAgo": True}]}, "tasks[0].minutesAgo: must be a number"),
        ({"tasks": [{"type": "Generic", "dateCreated": "soon"}]}, "tasks[0].dateCreated: not an ISO-8601 date-time"),
        ({"tasks": [{"type": "Generic", "action": {"verb": "POST"}}]}, "tasks[0].action: unknown field(s) ['verb']"),
        ({"tasks": [{"type": "ReplyToChat"}]}, "tasks[0]: ReplyToChat is a case-level task: give caseId or"),
        ({"tasks": "x"}, "tasks: must be a list"),
        ({"users": [{"email": "nope"}]}, "users[0].email: must be an email address"),
        ({"cases": [{"creditorReference": " "}]}, "cases[0].creditorReference: must be a non-empty string"),
        ({"cases": [{"creditorReference": "A", "reference": "abc"}]}, "cases[0].reference: must be 8 chars A-Z0-9"),
        ({"cases": [{"creditorReference": "A", "daysOld": -1}]}, "cases[0].daysOld: must be >= 0"),
        ({"chats": [{"caseCreditorReference": "A", "message": "x"}]}, "chats[0].caseCreditorReference: no case with"),
        ({"events": [{"at": {"afterSeconds": 1}, "action": {"type": "solveTask"}}]},
         "events[0].action.taskId: is required"),
        ({"events": [{"at": {"afterSeconds": 1}, "action": {}}]}, "events[0].action: needs a type, one of"),
        ({"creditor": {"companyName": ""}}, "creditor.companyName: must be a non-empty string"),
        ([], "a scenario object"),
    ],
)  # fmt: skip
def test_errors_name_the_field_path(scenario: object, message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        SandboxState(scenario)  # type: ignore[arg-type]
    assert message in str(err.value), str(err.value)


def test_errors_never_echo_values_and_say_how_many_more() -> None:
    cases = [{"creditorReference": "A", "grossAmount": "hunter2"}] + [{"creditorReference": 7}] * 7
    with pytest.raises(ScenarioError) as err:
        SandboxState({"cases": cases})
    text = str(err.value)
    assert "hunter2" not in text and "cases[0].grossAmount: must be a number" in text
    assert text.endswith("; and 3 more")


def test_the_schema_is_printed_by_its_script_not_pasted_in_the_docs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    script = ROOT / "scripts" / "scenario_schema.py"
    monkeypatch.setattr("sys.argv", [str(script)])
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out == json_schema_text() + "\n"
    doc = (ROOT / "docs" / "sandbox.md").read_text(encoding="utf-8")
    assert "scripts/scenario_schema.py" in doc and '"$defs"' not in doc, "docs/sandbox.md names the script, no copy"


@pytest.mark.parametrize("name", [*BUNDLED_SCENARIOS, "large:120"])
def test_bundled_scenarios_follow_the_schema(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(json_schema())
    jsonschema.validate(resolve_scenario(name), json_schema())


@pytest.mark.parametrize(
    "scenario",
    [
        {"bogus": 1},
        {"tasks": [{"type": "Bad Type"}]},
        {"tasks": [{}]},
        {"cases": [{"creditorReference": "A", "daysOld": -1}]},
    ],
)
def test_schema_and_models_agree_on_shape_errors(scenario: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scenario, json_schema())
    with pytest.raises(ScenarioError):
        SandboxState(scenario)


def test_demo_ui_is_the_demo_with_re_arming() -> None:
    demo, ui = resolve_scenario("demo"), resolve_scenario("demo-ui")
    ui_rule = next(t for t in ui["tasks"] if t["type"] == "AssignBankAccount")["solveAfterChecked"]
    assert ui_rule == {"seconds": 5, "rearmAfterSeconds": 20}
    for scenario in (demo, ui):
        scenario.pop("name"), scenario.pop("description")
        next(t for t in scenario["tasks"] if t["type"] == "AssignBankAccount")["solveAfterChecked"].pop(
            "rearmAfterSeconds", None
        )
    assert demo == ui
