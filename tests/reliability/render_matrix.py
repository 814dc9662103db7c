"""Run the fault matrix and print it as the Markdown table of docs/reliability.md.

    .venv/bin/python tests/reliability/render_matrix.py            # runs pytest, then prints
    .venv/bin/python tests/reliability/render_matrix.py FILE.json  # prints an earlier run's JSON

Exit status: pytest's (non-zero when a cell did not behave as expected).
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


def run_matrix() -> tuple[int, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fault_matrix.json"
        env = {**os.environ, "DEBITURA_MATRIX_JSON": str(out)}
        cmd = [sys.executable, "-m", "pytest", str(HERE / "test_fault_matrix.py"), "-q", "-p", "no:warnings"]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        sys.stderr.write(proc.stdout[-3000:])
        return proc.returncode, json.loads(out.read_text())


def render(record: dict) -> str:
    cells = record["cells"]
    components = record["components"]
    lines = [
        "| Fault | " + " | ".join(components.values()) + " |",
        "|---|" + "---|" * len(components),
    ]
    for fault, label in record["faults"].items():
        row = []
        for comp in components:
            cell = cells.get(f"{fault}|{comp}")
            if cell is None:
                row.append("not run")
            elif cell["status"] == "n/a":
                row.append("N/A")
            else:
                mark = "✓" if cell["status"] == "pass" else "✗"
                row.append(f"{mark} {cell['text']}")
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    ran = [c for c in cells.values() if c["status"] != "n/a"]
    totals = {
        key: sum(int(c.get(key, 0) or 0) for c in ran)
        for key in ("wrong_unblocked", "duplicates", "lost", "stray", "crash", "cautious", "faults_applied")
    }
    lines += [
        "",
        f"{len(ran)} cells run, {sum(c['status'] == 'pass' for c in ran)} as expected, "
        f"{sum(c['status'] != 'pass' for c in ran)} not; {len(cells) - len(ran)} N/A. "
        f'Faults injected: {totals["faults_applied"]}. Wrong "unblocked": {totals["wrong_unblocked"]}. '
        f"Duplicate replies: {totals['duplicates']}. Lost replies: {totals['lost']}. "
        f"Posts to refused cases: {totals['stray']}. Trigger crashes: {totals['crash']}. "
        f"Cautious (blocked while the read failed): {totals['cautious']}. "
        f"Matrix time: {record.get('seconds', '?')} s.",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv:
        code, record = 0, json.loads(Path(argv[0]).read_text())
    else:
        code, record = run_matrix()
    print(render(record))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
