"""The case gate without I/O: what a check reads, what the answers mean, and what a gate remembers.

Every way of running a gate (poke, reschedule, the trigger's own check, the shared poll) reads with the
calls built here, turns each answer (or error) into a :class:`Part` (:func:`part_from`,
:func:`part_from_error`: the one fatal/transient policy), and asks :meth:`GateSpec.verdict` what the
parts mean. The drivers only send. Design notes: ``docs/gates.md``.

- :mod:`.records`: tasks as a read keeps them (:data:`PackedTask`, a plain tuple of strings), as a verdict
  reads them (:class:`CompactTask`, the same as a named tuple) and the calls a gate sends;
- :mod:`.verdict`: the policy, the parts of an answer, the rule (:class:`GateSpec`), :class:`GateVerdict`;
- :mod:`.snapshot`: :class:`AccountSnapshot` (one round, for every gate);
- :mod:`.direct_reads`: :class:`DirectReads` (one round of direct reads, an exchange of ``hooks.exchange``);
- :mod:`.progress`: :class:`GateProgress` (checks, first blockers, the case's name), the XCom record,
  the backoff.
"""

from __future__ import annotations

from airflow_provider_debitura.gate.direct_reads import FAILED_READS_PER_ROUND, DirectReads
from airflow_provider_debitura.gate.progress import (
    BACKOFF_SHARE,
    DEFAULT_MAX_WAIT,
    GateProgress,
    aligned_wait,
    backoff_interval,
    next_interval,
    success_record,
    utc_now_iso,
)
from airflow_provider_debitura.gate.records import (
    ACCOUNT_LEVEL_TYPES,
    CASE_ID,
    COMPACT_FIELDS,
    DOCUMENTED_TYPES,
    NEW_TYPES,
    TASK_ID,
    TASK_TYPE,
    CompactTask,
    PackedTask,
    RecordBatch,
    TaskPageBatch,
    account_tasks_call,
    case_tasks_call,
    compact,
    compact_page_call,
    count_call,
    forget_learned_types,
    is_account_level,
    is_new_type,
    learned_types,
    page_batch,
    read_records,
    read_task_page,
    record_batch,
    task_dict,
    view,
)
from airflow_provider_debitura.gate.snapshot import AccountSnapshot
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
    new_type_advice,
    part_from,
    part_from_error,
    unknown,
)

__all__ = [
    "ACCOUNT_LEVEL_TYPES",
    "BACKOFF_SHARE",
    "CASE_ID",
    "COMPACT_FIELDS",
    "DEFAULT_MAX_WAIT",
    "DOCUMENTED_TYPES",
    "FAILED_READS_PER_ROUND",
    "NEW_TYPES",
    "SUMMARY_TASKS_PER_TYPE",
    "TASK_ID",
    "TASK_TYPE",
    "AccountSnapshot",
    "CompactTask",
    "DirectReads",
    "GateProgress",
    "GateSpec",
    "GateState",
    "GateVerdict",
    "PackedTask",
    "Part",
    "RecordBatch",
    "TaskPageBatch",
    "account_tasks_call",
    "aligned_wait",
    "backoff_interval",
    "case_tasks_call",
    "check_gate_config",
    "compact",
    "compact_page_call",
    "count_call",
    "failure_message",
    "forget_learned_types",
    "is_account_level",
    "is_fatal",
    "is_new_type",
    "is_transient",
    "learned_types",
    "lookup_failure_message",
    "new_type_advice",
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
    "view",
]
