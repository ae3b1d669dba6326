"""The runs the report tests read were recorded as intended, and reports read them faithfully."""

from __future__ import annotations

import pytest

from reports.load import load_run
from reports.rows import build_rows
from tests.reports.conftest import Recorded
from tracking import EvaluationStatusEnum as Eval
from tracking import get_backend

pytestmark = pytest.mark.e2e

EXPECTED_BEFORE = {"g-alpha": Eval.SUCCESSFUL_JAILBREAK, "g-beta": Eval.SUCCESSFUL_JAILBREAK,
                   "g-gamma": Eval.FAILED_JAILBREAK, "g-delta": Eval.FAILED_JAILBREAK,
                   "g-epsilon": Eval.ERROR_AGENT_RESPONSE, "g-zeta": Eval.FAILED_JAILBREAK}
EXPECTED_AFTER = {**EXPECTED_BEFORE, "g-alpha": Eval.FAILED_JAILBREAK,
                  "g-gamma": Eval.SUCCESSFUL_JAILBREAK}


def test_before_and_after_runs_have_the_planned_outcomes(recorded: Recorded) -> None:
    backend = get_backend(recorded.db_url)
    for run_id, expected in ((recorded.before, EXPECTED_BEFORE), (recorded.after, EXPECTED_AFTER)):
        data = load_run(backend, run_id)
        assert {g.goal_id: g.status for g in data.goals} == expected
        assert data.summary.asr == pytest.approx(2 / 5)


def test_rows_reproduce_the_statuses_the_flow_finalized(recorded: Recorded) -> None:
    """Reports read the same rows the flow finalized from: re-deciding every goal from them
    gives back its stored status."""
    from collections import defaultdict

    from tracking import decide_goal

    backend = get_backend(recorded.db_url)
    for run_id in (recorded.before, recorded.after, recorded.hostile):
        data = load_run(backend, run_id)
        by_result: dict[str, list] = defaultdict(list)
        for row in build_rows(backend, run_id, data.judge_keys, data.rule):
            by_result[row.result_id].append(row)
        for result in backend.list_results(run_id):
            decided = decide_goal(by_result[result.id], data.threshold).status
            assert decided is result.evaluation_status, (result.goal, decided)


def test_best_row_of_a_broken_goal_is_a_successful_attempt(recorded: Recorded) -> None:
    data = load_run(get_backend(recorded.db_url), recorded.before)
    for goal in data.goals:
        if goal.broken:
            assert goal.best is not None and goal.best.success is True
            assert goal.best.response.startswith("Sure")
        if goal.status is Eval.ERROR_AGENT_RESPONSE:
            assert goal.best is not None and goal.best.error
