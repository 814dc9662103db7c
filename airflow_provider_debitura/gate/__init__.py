"""The case gate without I/O: what a check reads, what the answers mean, and what a gate remembers.

Every way of running a gate (poke, reschedule, the trigger's own check, the shared poll) reads with the
calls built here, turns each answer (or error) into a :class:`Part` (:func:`part_from`,
:func:`part_from_error`: the one fatal/transient policy), and asks :meth:`GateSpec.verdict` what the
parts mean. The drivers only send. Design notes: ``docs/gates.md``.

- :mod:`.records`: tasks as a gate keeps them (tuples of strings) and the calls it sends;
- :mod:`.verdict`: the policy, the parts of an answer, the rule (:class:`GateSpec`), :class:`GateVerdict`;
- :mod:`.snapshot`: :class:`AccountSnapshot` (one round, for every gate) and :class:`DirectReads`;
- :mod:`.progress`: :class:`GateProgress` (checks, first blockers, the case's name), the XCom record,
  the backoff.
"""

from __future__ import annotations

from airflow_provider_debitura.gate.progress import GateProgress, next_interval, success_record, utc_now_iso
from airflow_provider_debitura.gate.records import (
    ACCOUNT_LEVEL_TYPES,
    CASE_ID,
    CASE_REFERENCE,
    COMPACT_FIELDS,
    ID,
    SOLUTION_URL,
    TITLE,
    TYPE,
    CompactTask,
    Listed,
    RecordBatch,
    TaskPageBatch,
    account_tasks_call,
    case_tasks_call,
    compact,
    compact_page_call,
    is_account_level,
    page_batch,
    read_records,
    read_task_page,
    record_batch,
    task_dict,
)
from airflow_provider_debitura.gate.snapshot import FAILED_READS_PER_ROUND, AccountSnapshot, DirectReads
from airflow_provider_debitura.gate.verdict import (
    SUMMARY_TASKS_PER_TYPE,
    GateSpec,
    GateState,
    GateVerdict,
    Part,
    check_gate_config,
    failure_message,
    is_fatal,
    is_transient,
    lookup_failure_message,
    part_from,
    part_from_error,
    unknown,
)

__all__ = [
    "ACCOUNT_LEVEL_TYPES",
    "CASE_ID",
    "CASE_REFERENCE",
    "COMPACT_FIELDS",
    "FAILED_READS_PER_ROUND",
    "ID",
    "SOLUTION_URL",
    "SUMMARY_TASKS_PER_TYPE",
    "TITLE",
    "TYPE",
    "AccountSnapshot",
    "CompactTask",
    "DirectReads",
    "GateProgress",
    "GateSpec",
    "GateState",
    "GateVerdict",
    "Listed",
    "Part",
    "RecordBatch",
    "TaskPageBatch",
    "account_tasks_call",
    "case_tasks_call",
    "check_gate_config",
    "compact",
    "compact_page_call",
    "failure_message",
    "is_account_level",
    "is_fatal",
    "is_transient",
    "lookup_failure_message",
    "next_interval",
    "page_batch",
    "part_from",
    "part_from_error",
    "read_records",
    "read_task_page",
    "record_batch",
    "success_record",
    "task_dict",
    "unknown",
    "utc_now_iso",
]
