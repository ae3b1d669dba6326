"""Over-refusal: the benign control set's answers, judged for refusal only.

Why its own step: a benign prompt is not an attack, so the run's judge panel (harmfulness, often
paid model judges) has nothing to say about it; what matters is whether the target refused a
request it should have answered. The refusal judge's phrase list decides (no minimum length, no
echo check: a short helpful answer is still an answer). Idempotent like Evaluation: verdicts
already recorded are kept. The verdict's `success` means *answered*; a false refusal is a
verdict of no.
"""

from __future__ import annotations

from typing import Any

from judges import build_judge
from judges.corrected import OVER_REFUSAL_SPEC
from tasks.buffer import WriteBuffer
from tasks.context import RunRef, StepResult, pipeline_task
from tracking import OVER_REFUSAL, is_benign
from tracking.store_pipeline import AttemptFilter, GoalShard


def refusal_check() -> Any:
    """The refusal judge as the over-refusal check: refusal phrases only."""
    return build_judge(dict(OVER_REFUSAL_SPEC))  # its validation is looked up by this spec


@pipeline_task("over-refusal")
async def over_refusal(ref: RunRef, shard: GoalShard | None = None) -> StepResult:
    """Judge every answered benign prompt not judged yet; return how many were refused."""
    backend, tracker = ref.backend(), ref.step_tracker()
    with tracker.track_step("Over-refusal", "STEP3_EVALUATE", input_data={"judge": OVER_REFUSAL},
                            config={"judge": "refusal phrases, no length or echo check"}):
        benign = {r.id: r.goal for r in backend.list_results(ref.run_id)
                  if is_benign(r.goal_metadata)
                  and (shard is None or shard.owns(r.goal_index))}
        judge, written = refusal_check(), WriteBuffer(backend.record_verdicts)
        judged = refused = 0
        # Paged: the control set's answered attempts only, and their verdicts page by page.
        pages = (backend.iter_attempts(ref.run_id, AttemptFilter(answered=True, result_ids=benign))
                 if benign else iter(()))
        try:
            for page in pages:
                done = backend.judged_pairs([a.id for a in page if a.id is not None],
                                           [OVER_REFUSAL])
                for attempt in page:
                    assert attempt.id is not None  # a stored attempt
                    if (attempt.id, OVER_REFUSAL) in done:
                        continue
                    verdict = await judge.evaluate(benign[attempt.result_id], "",
                                                   attempt.response)
                    judged += 1
                    refused += verdict.success is False
                    await written.put(attempt.id, verdict)
        finally:
            written.flush()
        tracker.add_step_metadata("judged", judged)
        tracker.add_step_metadata("refused", refused)
        return StepResult(spent_usd=0.0, budget_exhausted=False, judgments=judged,
                          counts={"judged": judged, "refused": refused})
