"""The official OpenAPI spec as JSON Schemas that hypothesis-jsonschema can generate from.

The spec is read from ``$DEBITURA_OPENAPI_SPEC`` or ``<project root>/../shared/`` (never copied into the
project); without it a test skips with the reason, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC_NAME = "debitura-customer-api.openapi.json"
REF_PREFIX = "#/components/schemas/"
SCHEMA_PREFIX = "Debitura.Web.ExternalApi.Contracts.V1."

_DROPPED = {"nullable", "example", "deprecated", "readOnly", "writeOnly", "description", "xml", "externalDocs"}
_STRING_FORMATS = {"date-time", "uuid"}


def spec_path() -> Path:
    env = os.environ.get("DEBITURA_OPENAPI_SPEC")
    return Path(env) if env else ROOT.parent / "shared" / SPEC_NAME


def load_spec() -> dict[str, Any]:
    """The spec, or a skip (a failure under CI) naming where it was looked for."""
    path = spec_path()
    if not path.is_file():
        reason = f"OpenAPI spec not found at {path} (set DEBITURA_OPENAPI_SPEC to its path)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return json.loads(path.read_text(encoding="utf-8"))


def schema_for(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """JSON Schema of ``components.schemas[name]`` with every ``$ref`` inlined.

    OpenAPI 3.0's ``nullable: true`` becomes a ``null`` alternative; a property that is a bare ``$ref`` may
    also be null (Swashbuckle cannot say "nullable" on a reference, and the API sends e.g. ``action: null``).
    Non-string formats (``int32``, ``double``) are dropped: they only describe the wire type.
    """
    schemas = spec["components"]["schemas"]
    return _convert(schemas[name], schemas, ())


def _convert(node: Any, schemas: dict[str, Any], stack: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_convert(x, schemas, stack) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"][len(REF_PREFIX) :]
        if name in stack:
            raise ValueError(f"recursive schema {name}")
        return _convert(schemas[name], schemas, (*stack, name))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {
                prop: {"anyOf": [_convert(sub, schemas, stack), {"type": "null"}]}
                if set(sub) == {"$ref"}
                else _convert(sub, schemas, stack)
                for prop, sub in value.items()
            }
        elif key == "format" and (node.get("type") != "string" or value not in _STRING_FORMATS):
            continue
        else:
            out[key] = _convert(value, schemas, stack)
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out
