"""tools/conformance/guideline.py: the guideline's required tests, and how a run's
results are matched against them (by idempotent id; a class skipped or failed in its
setup counts for each of its tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "conformance"))

import guideline  # noqa: E402


def test_the_guideline_lists_228_required_tests_with_distinct_ids() -> None:
    rows = guideline.required()
    assert len(rows) == 228
    assert len({r[0] for r in rows}) == 228
    assert all(len(r[0]) == 36 and r[2].startswith("tempest.api.") for r in rows)
    assert sum(1 for r in rows if r[3]) == 11   # flagged


def test_check_matches_by_id_and_by_class(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    rows = guideline.required()
    def cls_of(row: tuple[str, str, str, bool]) -> str:
        return row[2].rsplit(".", 1)[0]
    skipped = cls_of(rows[0])
    others = [r for r in rows if cls_of(r) != skipped and not r[3]]
    passed, failed = others[0], others[-1]
    in_class = [r for r in rows if cls_of(r) == skipped]
    fake = [
        # renamed in this Tempest, same id: still that test
        {"test": f"tempest.api.moved.Elsewhere.test_x[id-{passed[0]},smoke]",
         "status": "success"},
        {"test": f"{failed[2]}[id-{failed[0]}]", "status": "fail"},
        {"test": f"setUpClass ({skipped})", "status": "skip"},
    ]
    monkeypatch.setattr(guideline, "results", lambda venv, ws: fake)
    summary, blocking = guideline.check(tmp_path)
    absent = len(rows) - 2 - len(in_class)
    assert summary.endswith(
        f"{len(rows)} required tests: {absent} absent, 1 fail, 1 pass, {len(in_class)} skip; "
        f"{blocking} not passed and not flagged")
    assert blocking == sum(1 for r in rows if not r[3]) - 1
