"""Check a conformance run against the interoperability guideline's required tests.

``python tools/conformance/guideline.py [WORKSPACE]`` reads the last Tempest run in
WORKSPACE (default ``build/conformance``, as ``make conformance`` leaves it) and prints,
for every test the "OpenStack Powered Compute" program requires
(``guideline-2020.06.txt``), whether it passed, failed, was skipped or did not run.
Tests are matched by their idempotent id, since Tempest moves and renames tests between
releases; a required test whose id no longer exists in this Tempest is "absent".
The exit status is 0 when every required test that is not flagged passed.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import TEMPEST_VENV, WORKSPACE, results  # noqa: E402

GUIDELINE = HERE / "guideline-2020.06.txt"
ID = re.compile(r"\bid-([0-9a-f-]{36})\b")


def required(path: Path = GUIDELINE) -> list[tuple[str, str, str, bool]]:
    """(idempotent id, capability, test, flagged) of every required test."""
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        rows.append((parts[0], parts[1], parts[2], parts[-1] == "flagged"))
    return rows


def outcomes(workspace: Path) -> dict[str, str]:
    """Idempotent id (or, for a class that failed or was skipped in setUpClass and so
    has no rows for its tests, ``class:<name>``) -> pass/fail/skip of the run in
    ``workspace``."""
    seen: dict[str, str] = {}
    for row in results(TEMPEST_VENV, workspace / "ws"):
        status = {"success": "pass", "failure": "fail", "fail": "fail"}.get(
            row["status"], row["status"])
        test = row["test"]
        if test.startswith("setUpClass ("):
            seen["class:" + test.split("(", 1)[1].rstrip(")")] = status
            continue
        m = ID.search(test)
        if m:
            seen[m.group(1)] = status
    return seen


def check(workspace: Path, show_all: bool = False) -> tuple[str, int]:
    """Print the required tests that did not pass (all with ``show_all``); return the
    summary line and how many of them block (not passed, not flagged)."""
    seen = outcomes(workspace)
    counts: collections.Counter[str] = collections.Counter()
    blocking = 0
    for test_id, capability, test, flagged in required():
        status = seen.get(test_id)
        if status is None:
            status = seen.get("class:" + test.rsplit(".", 1)[0], "absent")
        counts[status] += 1
        if status != "pass" and not flagged:
            blocking += 1
        if status != "pass" or show_all:
            mark = " (flagged)" if flagged else ""
            print(f"{status:<6} {capability:<38} {test}{mark}")
    total = sum(counts.values())
    summary = (f"guideline 2020.06, OpenStack Powered Compute: {total} required tests: "
               + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
               + f"; {blocking} not passed and not flagged")
    return summary, blocking


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workspace", nargs="?", type=Path, default=WORKSPACE)
    parser.add_argument("--all", action="store_true", help="list passing tests too")
    args = parser.parse_args()
    summary, blocking = check(args.workspace.resolve(), args.all)
    print("\n" + summary)
    return 0 if blocking == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
