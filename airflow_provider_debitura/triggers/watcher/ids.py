"""Task ids and creation times as a watcher stores them: canonical GUIDs, ``dateCreated`` as POSIX seconds,
and the compact base64 encoding of a set of ids (16 raw bytes each)."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

from pydantic import TypeAdapter, ValidationError

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")

TaskJson = Mapping[str, object]
"""One task as the API returns it (camelCase JSON object)."""


def canonical_guid(value: object) -> str | None:
    """The lower-case 8-4-4-4-12 form of a GUID (braces and hyphens optional), or None when ``value`` is not one.

    :param value: a task's ``id`` as the API sent it.
    """
    if not isinstance(value, str):
        return None
    text = value.strip().strip("{}").lower()
    if _GUID.match(text):
        return text
    if _HEX32.match(text):
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return None


def created_epoch(value: object) -> float | None:
    """``dateCreated`` as POSIX seconds (naive means UTC, as elsewhere in this provider); None if unusable.

    :param value: a task's ``dateCreated`` as the API sent it.
    """
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        stamp = datetime.fromisoformat(text)  # the common case: fast, and what the models emit
    except ValueError:
        try:  # what Python 3.10's parser refuses but the API may send (e.g. .NET's 7 fractional digits)
            stamp = _datetime_parser().validate_python(value)
        except ValidationError:
            return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


@functools.cache
def _datetime_parser() -> TypeAdapter[datetime]:
    return TypeAdapter(datetime)


def encode_ids(ids: Iterable[str]) -> str:
    """Sorted GUIDs as base64 of their 16 raw bytes each (21.3 characters per id).

    :param ids: canonical GUIDs (see :func:`canonical_guid`).
    """
    raw = b"".join(sorted(bytes.fromhex(task_id.replace("-", "")) for task_id in ids))
    return base64.b64encode(raw).decode("ascii")


def decode_ids(text: object) -> list[str]:
    """The inverse of :func:`encode_ids`; raises ValueError for anything it did not write.

    :param text: what :func:`encode_ids` returned.
    """
    if not isinstance(text, str):
        raise ValueError("stored ids are not a string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"stored ids are not base64: {exc}") from None
    if len(raw) % 16:
        raise ValueError("stored ids are not a whole number of GUIDs")
    h = raw.hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, len(h), 32)
    ]
