"""Check a conformance run against the interoperability guideline's required tests.

``python tools/conformance/guideline.py [WORKSPACE ...]`` reads the last Tempest run in
each WORKSPACE (default ``build/conformance``, as ``make conformance`` leaves it) and prints,
for every test the "OpenStack Powered Compute" program requires
(``guideline-2020.06.txt``), whether it passed, failed, was skipped or did not run.
Tests are matched by their idempotent id, since Tempest moves and renames tests between
releases; a required test whose id no longer exists in this Tempest is "absent".
The exit status is 0 when every required test that is not flagged passed.

Several workspaces are merged, e.g. the fake-driver full run and a ``--real
--validation`` run of the tests that log in to guests (skipped in the first): a test
counts as what it did where it ran, a failure anywhere wins over a pass elsewhere, and
a pass over a skip (so a test skipped in one run and passed in the other passes; one
that passed in one and failed in the other fails).
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import TEMPEST_VENV, WORKSPACE, results  # noqa: E402

GUIDELINE = HERE / "guideline-2020.06.txt"
ID = re.compile(r"\bid-([0-9a-f-]{36})\b")
#: Merging runs: the outcome that wins when a test has different ones (higher wins).
PRECEDENCE = {"fail": 3, "pass": 2, "skip": 1}


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


def merged_outcomes(workspaces: Sequence[Path]) -> dict[str, str]:
    """``outcomes`` of several runs, by ``PRECEDENCE`` where they differ."""
    seen: dict[str, str] = {}
    for workspace in workspaces:
        for key, status in outcomes(workspace).items():
            old = seen.get(key)
            if old is None or PRECEDENCE.get(status, 0) > PRECEDENCE.get(old, 0):
                seen[key] = status
    return seen


def check(workspace: Path | Sequence[Path], show_all: bool = False) -> tuple[str, int]:
    """Print the required tests that did not pass (all with ``show_all``); return the
    summary line and how many of them block (not passed, not flagged). Several
    workspaces are merged (``merged_outcomes``)."""
    seen = merged_outcomes([workspace] if isinstance(workspace, Path) else workspace)
    counts: collections.Counter[str] = collections.Counter()
    blocking = 0
    for test_id, capability, test, flagged in required():
        # its own row, or its class's when the class failed or was skipped in setUpClass
        # (a merged run can have both: the one that wins by PRECEDENCE counts)
        found = [s for s in (seen.get(test_id), seen.get("class:" + test.rsplit(".", 1)[0]))
                 if s is not None]
        status = max(found, key=lambda s: PRECEDENCE.get(s, 0)) if found else "absent"
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
    parser.add_argument("workspace", nargs="*", type=Path, default=[WORKSPACE],
                        help="one or more runs' workspaces, merged (default "
                             "build/conformance)")
    parser.add_argument("--all", action="store_true", help="list passing tests too")
    args = parser.parse_args()
    for workspace in args.workspace:
        if not (workspace / "ws").is_dir():
            parser.error(f"{workspace}: no Tempest run there (no ws/)")
    summary, blocking = check([w.resolve() for w in args.workspace], args.all)
    print("\n" + summary)
    return 0 if blocking == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
