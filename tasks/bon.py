"""Step 2 of a Best-of-N run: sample, complete and judge in one streaming step (`tasks.bon_stream`).

Idempotent against the store like the other steps: each sample is an attempt keyed by its prompt
and index (`attacks.bon.sample_key`), written with its completion and verdicts in batches. A
retried task or a resumed run reads what is recorded first — goals already broken are skipped,
samples already recorded (answered or errored) are never re-requested — and only sends the
rest. Samples whose completion was recorded without its verdicts (a kill between two writes of a
batch) are left to the Evaluation step that follows.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from attacks import AttackPrompt, build_technique
from attacks.bon import BestOfN, sample_key
from attacks.spec import AttackSpec
from judges import JudgePanel, combine, rule_score
from judges.spec import JudgePanelSpec
from targets import TargetConfig, chat
from tasks.bon_stream import BestOfNStream, GoalStream, Judged, Sample
from tasks.budget import Budget
from tasks.buffer import WriteBuffer
from tasks.context import GoalRow, RunRef, StepResult, artifact_key, pipeline_task
from tasks.evaluation import _judge as judge_one
from tasks.progress import StepProgress
from tracking import NewAttempt
from tracking.store import SQLBackend
from tracking.store_pipeline import AttemptFilter

logger = logging.getLogger("siegeflow.tasks.bon")


class SampleSet:
    """The sample indices recorded for one goal, as a bitmap of N bits: 1.25 KB per goal at
    N=10,000 (a set of ints would be ~0.5 MB), so resuming 100 goals x 10,000 holds ~125 KB."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._bits = bytearray((n + 7) // 8)
        self.count = 0

    def add(self, index: int) -> None:
        if 0 <= index < self.n and index not in self:
            self._bits[index >> 3] |= 1 << (index & 7)
            self.count += 1

    def __contains__(self, index: object) -> bool:
        return (isinstance(index, int) and 0 <= index < self.n
                and bool(self._bits[index >> 3] & (1 << (index & 7))))


class Recorded:
    """What the store already holds for one goal's samples."""

    def __init__(self, n: int) -> None:
        self.indices = SampleSet(n)
        self.broken = False


def recorded_samples(backend: SQLBackend, run_id: str, panel: JudgePanel, n: int
                     ) -> dict[str, Recorded]:
    """Per result id: the sample indices recorded (below `n`), and whether one of them broke
    the goal. Read a page of samples at a time with that page's verdicts: memory is a page plus
    a bitmap per goal, never the run's samples."""
    keys = [j.label for j in panel.judges]
    out: dict[str, Recorded] = defaultdict(lambda: Recorded(n))
    pages = backend.iter_attempts(run_id, AttemptFilter(technique=BestOfN.name),
                                  columns=["result_id", "meta", "error"])
    for page in pages:
        verdicts: dict[int, dict[str, Any]] = defaultdict(dict)
        for j in backend.judgments_of([a.id for a in page if a.id is not None], keys):
            verdicts[j.attempt_id][j.judge] = j
        for attempt in page:
            index = (attempt.meta or {}).get("sample")
            if not isinstance(index, int):
                continue
            assert attempt.id is not None  # a stored attempt
            mine = out[attempt.result_id]
            mine.indices.add(index)
            stored = [verdicts[attempt.id][k] for k in keys if k in verdicts[attempt.id]]
            if len(stored) == len(keys) and attempt.error is None and not mine.broken:
                score = rule_score(stored, panel.rule)
                mine.broken = panel.is_successful(combine(stored, panel.rule), score)
    return out


def _todo(n: int, done: SampleSet) -> Iterator[int]:
    return (k for k in range(n) if k not in done)


class SampleWriter:
    """Stores finished samples from the step's writer thread (`tasks.buffer.WriteBuffer`).

    A sample (a paid completion and its paid verdicts) is in the store moments after it is
    judged, not when 63 more have followed; each batch is one transaction each for attempts,
    completions and verdicts.
    """

    def __init__(self, backend: SQLBackend, run_id: str, max_batch: int = 512) -> None:
        self.backend, self.run_id = backend, run_id
        self._buffer = WriteBuffer(lambda rows: self._write([s for _, s in rows]),
                                   max_batch=max_batch)

    async def add(self, sample: Sample) -> None:
        """Queue a sample; waits while the writer is `max_pending` samples behind."""
        await self._buffer.put(sample.index, sample)

    def flush(self) -> None:
        """Wait until every sample is stored (the step's end, also when it fails)."""
        self._buffer.flush()

    def _write(self, samples: list[Sample]) -> None:
        ids = self.backend.upsert_attempts(self.run_id, [_attempt_row(s) for s in samples])
        self.backend.record_completions([(i, s.completion) for i, s in zip(ids, samples, strict=True)])
        self.backend.record_verdicts(
            [(i, v) for i, s in zip(ids, samples, strict=True) if s.judged for v in s.judged.verdicts]
        )
        self.backend.record_decoded(  # what the judges read, beside the raw answer
            [(i, s.judged.decoded) for i, s in zip(ids, samples, strict=True)
             if s.judged and s.judged.decoded is not None]
        )


def _attempt_row(sample: Sample) -> NewAttempt:
    prompt = sample.prompt
    return NewAttempt(result_id=sample.result_id, technique=prompt.technique,
                      variant=prompt.variant, prompt=prompt.wire,
                      prompt_hash=sample_key(prompt.messages, sample.index),
                      metadata=prompt.metadata)


def panel_judge(panel: JudgePanel, technique: BestOfN) -> Any:
    """The judge the stream calls: the whole panel, each judge as the Evaluation step calls it
    (decoded answer, goal context), decided exactly as pipeline rows are."""

    async def judge(goal: Any, prompt: AttackPrompt, response: str) -> Judged:
        seen: dict[str, str] = {}
        verdicts = list(await asyncio.gather(*(
            judge_one(j, technique, goal.text, goal.context, prompt, response, goal.id, seen)
            for j in panel.judges
        )))
        score = rule_score(verdicts, panel.rule)
        decoded = seen.get("decoded")
        return Judged(verdicts=verdicts,
                      successful=panel.is_successful(combine(verdicts, panel.rule), score),
                      decoded=decoded if decoded != response else None)

    return judge


@pipeline_task("best-of-n")
async def best_of_n(
    ref: RunRef, target: TargetConfig, attack: AttackSpec, judges: JudgePanelSpec,
    goals: list[GoalRow], concurrency: int = 16, budget_usd: float | None = None,
    spent_usd: float = 0.0,
) -> StepResult:
    """Sample every goal until it is broken or has had N samples; return counts and spend."""
    backend, tracker = ref.backend(), ref.step_tracker()
    with tracker.track_step("Best-of-N", "STEP2_COMPLETE", input_data={"goals": len(goals)},
                            config={**attack.options, "concurrency": concurrency}):
        technique = build_technique(attack.name, attack.options)
        assert isinstance(technique, BestOfN), f"{attack.name!r} is not a Best-of-N technique"
        config, panel = technique.config, JudgePanel.from_config(judges)
        recorded = recorded_samples(backend, ref.run_id, panel, config.n)
        streams = [
            GoalStream(result_id=g.result_id, goal=g.to_goal(), broken=recorded[g.result_id].broken,
                       stop_when_broken=config.early_stop,
                       todo=_todo(config.n, recorded[g.result_id].indices))
            for g in goals
        ]
        progress = StepProgress("Best-of-N", artifact_key(ref.run_id, "best-of-n"), len(goals))
        await progress.start()
        writer = SampleWriter(backend, ref.run_id)

        async def send(prompt: AttackPrompt) -> Any:
            return await chat(target, prompt.messages, temperature=config.temperature)

        stream = BestOfNStream(
            streams, sample=technique.sample, send=send, judge=panel_judge(panel, technique),
            record=writer.add, concurrency=concurrency,
            budget=Budget(limit_usd=budget_usd, spent_usd=spent_usd),
            stop_after_errors=config.stop_after_errors, on_goal_done=progress.advance,
        )
        try:
            stats = await stream.run()
        finally:
            writer.flush()
        await progress.finish()
        result = {
            "requested": stats.requested, "errors": stats.errors, "judged": stats.judged,
            "goals_broken": stats.goals_broken, "goals_already_broken":
                sum(s.broken for s in streams) - stats.goals_broken,
            "goals_stopped_on_errors": stats.goals_stopped_on_errors,
            "cost_usd": stats.cost_usd, "n": config.n,
        }
        for key, value in result.items():
            tracker.add_step_metadata(key, value)
        return StepResult(spent_usd=stream.budget.spent_usd,
                          budget_exhausted=stats.budget_exhausted, requested=stats.requested,
                          counts=result)
