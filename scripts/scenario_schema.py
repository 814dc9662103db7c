"""Print the JSON Schema of a sandbox scenario (draft 2020-12), generated from the pydantic models.

The schema is not kept in the docs: this prints it from ``airflow_provider_debitura/sandbox/scenario_models.py``,
so it always matches the sandbox that loads the scenario. Usage::

    .venv/bin/python scripts/scenario_schema.py > scenario.schema.json
    .venv/bin/python scripts/scenario_schema.py --indent 2    # plain indented JSON instead of the compact layout

``POST /_sandbox/tasks`` takes the schema's ``TaskSpec``, ``POST /_sandbox/events`` its ``EventSpec``.
"""

from __future__ import annotations

import argparse
import json

from airflow_provider_debitura.sandbox.scenario_models import json_schema, json_schema_text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--indent", type=int, help="indent every level by this many spaces (default: compact)")
    args = parser.parse_args(argv)
    print(json_schema_text() if args.indent is None else json.dumps(json_schema(), indent=args.indent))


if __name__ == "__main__":
    main()
