"""Model promotion: a candidate replaces the current model only if it is not worse."""

from __future__ import annotations

import pytest

from pipeline.promote import decide


def card(version: str, cv: float, dev: float | None = None, refs: str = "r1") -> dict:
    dev_set = (
        {"status": "scored", "refs_sha256": refs, "macro_f1": dev}
        if dev is not None
        else {"status": "skipped", "reason": "no shared_dir given"}
    )
    return {"version": version, "cross_validation": {"macro_f1": cv}, "dev_set": dev_set}


def test_decide_promotes_the_first_model() -> None:
    decision = decide(card("1.0-a", 0.5), None)
    assert decision.promote and decision.reason == "no current model"


@pytest.mark.parametrize(
    ("new", "old", "action"),
    [(0.81, 0.80, "promote"), (0.80, 0.80, "promote"), (0.79, 0.80, "reject")],
)
def test_decide_promotes_only_when_not_worse(new: float, old: float, action: str) -> None:
    decision = decide(card("1.0-new", new), card("1.0-old", old))
    assert decision.action == action
    assert decision.metric == "cross_validation.macro_f1"
    assert (decision.candidate_score, decision.current_score) == (new, old)


def test_decide_prefers_the_dev_set_when_both_scored_the_same_one() -> None:
    better_cv_worse_dev = decide(card("1.0-new", 0.9, dev=0.6), card("1.0-old", 0.8, dev=0.7))
    assert better_cv_worse_dev.action == "reject"
    assert better_cv_worse_dev.metric == "dev_set.macro_f1"
    other_refs = decide(card("1.0-new", 0.9, dev=0.6), card("1.0-old", 0.8, dev=0.7, refs="r2"))
    assert other_refs.action == "promote"
    assert other_refs.metric == "cross_validation.macro_f1"


def test_decide_same_version_is_unchanged() -> None:
    assert decide(card("1.0-a", 0.8), card("1.0-a", 0.8)).action == "unchanged"
