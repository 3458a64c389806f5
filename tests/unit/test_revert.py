from __future__ import annotations

import pytest

from onestack.common.revert import Reverter


def test_undoes_in_reverse_order_on_failure():
    done: list[str] = []
    with pytest.raises(RuntimeError):
        with Reverter() as revert:
            revert.add(done.append, "first")
            revert.add(done.append, "second")
            raise RuntimeError("step 3 failed")
    assert done == ["second", "first"]


def test_success_disarms_and_failing_undo_does_not_hide_error():
    done: list[str] = []
    with Reverter() as revert:
        revert.add(done.append, "x")
        revert.success()
    assert done == []

    def broken() -> None:
        raise OSError("undo failed")

    with pytest.raises(ValueError):
        with Reverter() as revert:
            revert.add(done.append, "y")
            revert.add(broken)
            raise ValueError("original")
    assert done == ["y"]
