"""Every error class lives in ``exceptions.py``; the old import paths still give the same classes."""

from __future__ import annotations

import pytest

from airflow_provider_debitura import exceptions
from airflow_provider_debitura.exceptions import (
    DebituraConfigError,
    DebituraError,
    DebituraReplyCasesFailedError,
    ReplyTemplateError,
)


def test_reply_errors_are_defined_in_exceptions_and_reexported_from_their_old_modules() -> None:
    from airflow_provider_debitura import replies
    from airflow_provider_debitura.replies import failures, templates

    assert ReplyTemplateError.__module__ == DebituraReplyCasesFailedError.__module__ == exceptions.__name__
    assert templates.ReplyTemplateError is replies.ReplyTemplateError is ReplyTemplateError
    assert failures.DebituraReplyCasesFailedError is replies.DebituraReplyCasesFailedError
    assert failures.DebituraReplyCasesFailedError is DebituraReplyCasesFailedError
    assert {"ReplyTemplateError", "DebituraReplyCasesFailedError"} <= set(exceptions.__all__)


def test_reply_errors_sit_in_the_one_hierarchy() -> None:
    assert issubclass(ReplyTemplateError, DebituraConfigError) and issubclass(ReplyTemplateError, ValueError)
    assert issubclass(DebituraReplyCasesFailedError, DebituraError)
    assert not ReplyTemplateError.transient and not DebituraReplyCasesFailedError.transient


def test_cases_failed_error_names_each_case_and_counts_the_rest() -> None:
    failed = [
        {"case_id": "1d8d5c67", "creditor_reference": "INV-1002", "reason": "case not found"},
        *({"case_id": f"c{i}", "creditor_reference": None, "reason": "refused"} for i in range(21)),
    ]
    with pytest.raises(DebituraReplyCasesFailedError) as err:
        raise DebituraReplyCasesFailedError(failed, replied_cases=3)
    message = str(err.value)
    assert message.startswith("22 case(s) could not be answered")
    assert "INV-1002 (1d8d5c67): case not found" in message and "c18: refused" in message
    assert "c19" not in message and "; and 2 more" in message and "(3 answered in this run)" in message
    assert err.value.failed == failed and err.value.replied_cases == 3
