"""Run the churn test and print its table for docs/reliability.md.

    .venv/bin/python tests/reliability/render_churn.py            # runs pytest, then prints
    .venv/bin/python tests/reliability/render_churn.py FILE.json  # prints an earlier run's JSON

Exit status: pytest's (non-zero when a listing missed or repeated a task).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def run() -> tuple[int, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "churn.json"
        env = {**os.environ, "DEBITURA_CHURN_JSON": str(out)}
        cmd = [sys.executable, "-m", "pytest", str(HERE / "test_churn.py"), "-q", "-p", "no:warnings"]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        sys.stderr.write(proc.stdout[-3000:])
        return proc.returncode, json.loads(out.read_text())


def render(record: dict) -> str:
    lines = [
        f"| Churn ({record['open_tasks']:,} open tasks, {record['listings']} listings in a row) | completed | "
        "requests per listing | tasks missed | duplicates | verified | changes while listing | repeats dropped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, row in record["rows"].items():
        listings = row["listings"]
        requests = [x["requests"] for x in listings]
        lines.append(
            f"| {label} | {len(listings)}/{len(listings)} | {', '.join(map(str, requests))} | "
            f"{sum(x['missed'] for x in listings)} | {sum(x['duplicates'] for x in listings)} | "
            f"{sum(x['verified'] for x in listings)}/{len(listings)} | {row['fired']} | "
            f"{sum(x['repeats_dropped'] for x in listings)} |"
        )
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1:
        code, record = 0, json.loads(Path(sys.argv[1]).read_text())
    else:
        code, record = run()
    print(render(record))
    return code


if __name__ == "__main__":
    sys.exit(main())
