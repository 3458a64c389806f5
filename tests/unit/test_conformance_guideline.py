"""tools/conformance/guideline.py: the guideline's required tests, and how a run's
results are matched against them (by idempotent id; a class skipped or failed in its
setup counts for each of its tests), and how several runs are merged."""

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


def test_merging_runs_a_pass_beats_a_skip_and_a_failure_beats_a_pass(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The fake-driver run skips the tests that log in to guests; the real run with
    validation passes them. Merged, they pass; a test that failed in either run fails;
    a class whose setup failed in the real run fails its tests even though the fake run
    skipped them one by one."""
    rows = [r for r in guideline.required() if not r[3]]
    def cls_of(row: tuple[str, str, str, bool]) -> str:
        return row[2].rsplit(".", 1)[0]
    skipped_then_passed, passed_then_failed, only_fake = rows[0], rows[1], rows[2]
    broken = next(r for r in rows[3:] if cls_of(r) not in
                  {cls_of(x) for x in (skipped_then_passed, passed_then_failed, only_fake)})
    fake_ws, real_ws = tmp_path / "fake", tmp_path / "real"
    runs = {
        fake_ws: [
            {"test": f"{skipped_then_passed[2]}[id-{skipped_then_passed[0]}]",
             "status": "skip"},
            {"test": f"{passed_then_failed[2]}[id-{passed_then_failed[0]}]",
             "status": "success"},
            {"test": f"{only_fake[2]}[id-{only_fake[0]}]", "status": "success"},
            {"test": f"{broken[2]}[id-{broken[0]}]", "status": "skip"},
        ],
        real_ws: [
            {"test": f"{skipped_then_passed[2]}[id-{skipped_then_passed[0]}]",
             "status": "success"},
            {"test": f"{passed_then_failed[2]}[id-{passed_then_failed[0]}]",
             "status": "fail"},
            {"test": f"setUpClass ({cls_of(broken)})", "status": "fail"},
        ],
    }
    monkeypatch.setattr(guideline, "results", lambda venv, ws: runs[ws.parent])
    seen = guideline.merged_outcomes([fake_ws, real_ws])
    assert seen[skipped_then_passed[0]] == "pass"
    assert seen[passed_then_failed[0]] == "fail"
    assert seen[only_fake[0]] == "pass"
    # either order gives the same
    assert guideline.merged_outcomes([real_ws, fake_ws]) == seen
    summary, _ = guideline.check([fake_ws, real_ws])
    in_broken = sum(1 for r in guideline.required() if cls_of(r) == cls_of(broken))
    fails = 1 + in_broken
    assert f" {fails} fail, 2 pass;" in summary, summary
    # alone, the fake run counts the two skipped ones as skipped
    summary, _ = guideline.check(fake_ws)
    assert ", 2 pass, 2 skip;" in summary, summary
