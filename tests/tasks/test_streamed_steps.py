"""The steps streamed (issue 23): a fixed pool over paged reads, every attempt exactly once,
concurrency respected, in-flight results recorded before a failure, memory bounded by the pool.

The steps run as plain functions (`Task.fn`) against a real store (SQLite and PostgreSQL) and a
fake in-process target; the Prefect progress artifact is left out (no API in these tests).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

import attacks.bon as bon_technique
import tracking.store_pipeline as store_pipeline
from attacks.spec import AttackSpec
from judges import JudgePanel, Verdict
from judges.spec import JudgePanelSpec
from targets import TargetConfig
from targets.completion import Completion
from tasks import bon as bon_module
from tasks import completions as completions_module
from tasks import evaluation as evaluation_module
from tasks.bon import SampleSet, _todo, recorded_samples
from tasks.completions import completions
from tasks.context import GoalRow, RunRef
from tasks.evaluation import evaluation
from tasks.generation import generation
from tasks.progress import StepProgress
from tracking import NewResult, get_backend
from tracking.store_pipeline import AttemptFilter

TARGET = TargetConfig(model="openai/fake")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'steps.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture(autouse=True)
def no_prefect_artifacts(monkeypatch: pytest.MonkeyPatch) -> None:
    async def start(self: StepProgress) -> None:  # the artifact needs a Prefect API
        return None

    monkeypatch.setattr(StepProgress, "start", start)


def make_run(db_url: str, goals: int, per_goal: int, technique: str = "templates",
             meta: dict[str, Any] | None = None) -> RunRef:
    backend = get_backend(db_url)
    run_id = backend.create_run(attack_type="test", target_description="fake")
    results = backend.create_results(
        run_id, [NewResult(goal=f"goal {i}", goal_index=i) for i in range(goals)])
    rows = [{"result_id": r.id, "prompt_hash": f"{r.goal_index}-{k}", "technique": technique,
             "prompt": [{"role": "user", "content": f"{r.goal_index}-{k}"}],
             "metadata": {**(meta or {}), "sample": k}}
            for r in results for k in range(per_goal)]
    for start in range(0, len(rows), 5000):
        backend.upsert_attempts(run_id, rows[start : start + 5000])
    return RunRef(db_url=db_url, run_id=run_id)


class FakeTarget:
    """Counts calls per prompt and the calls in flight; answers after `delay_s`."""

    def __init__(self, delay_s: float = 0.0, fail: str | None = None) -> None:
        self.delay_s, self.fail = delay_s, fail
        self.calls: Counter[str] = Counter()
        self.returned: list[str] = []
        self.in_flight = self.max_in_flight = self.max_tasks = 0

    async def chat(self, target: Any, messages: list[Any], **_: Any) -> Completion:
        key = str(messages[-1].content)
        self.calls[key] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.max_tasks = max(self.max_tasks, len(asyncio.all_tasks()))
        try:
            await asyncio.sleep(self.delay_s / 2 if key == self.fail else self.delay_s)
            if key == self.fail:
                raise RuntimeError("a bug in the target adapter")
        finally:
            self.in_flight -= 1
        self.returned.append(key)
        return Completion(text=f"answer to {key}", cost_usd=0.0)


def run_completions(monkeypatch: pytest.MonkeyPatch, ref: RunRef, fake: FakeTarget,
                    concurrency: int) -> Any:
    monkeypatch.setattr(completions_module, "chat", fake.chat)
    return asyncio.run(completions.fn(ref, TARGET, concurrency=concurrency))


def test_completions_over_many_pages_sends_each_attempt_once_at_full_concurrency(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_pipeline, "PAGE_SIZE", 40)
    ref = make_run(db_url, goals=25, per_goal=13)  # 325 attempts: 9 pages
    fake = FakeTarget(delay_s=0.002)
    result = run_completions(monkeypatch, ref, fake, concurrency=8)
    assert len(fake.calls) == 325 and set(fake.calls.values()) == {1}
    assert fake.max_in_flight == 8
    assert result.requested == 325 and result.counts["errors"] == 0
    backend = get_backend(db_url)
    assert backend.count_attempts(ref.run_id, AttemptFilter(pending=True)) == 0
    again = FakeTarget()
    assert run_completions(monkeypatch, ref, again, concurrency=8).requested == 0
    assert not again.calls  # idempotent: nothing recorded is sent again


def test_a_failure_mid_step_records_every_in_flight_answer_first(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_pipeline, "PAGE_SIZE", 16)
    ref = make_run(db_url, goals=10, per_goal=10)
    fake = FakeTarget(delay_s=0.02, fail="3-0")
    with pytest.raises(RuntimeError, match="target adapter"):
        run_completions(monkeypatch, ref, fake, concurrency=6)
    backend = get_backend(db_url)
    answered = {a.prompt_hash for a in backend.list_attempts(ref.run_id)
                if a.completed_at is not None}
    assert answered == set(fake.returned)  # every answer that came back is stored
    assert len(fake.returned) < 99  # nothing new was started once the failure was seen
    assert len(fake.calls) == len(fake.returned) + 1
    retry = FakeTarget()
    run_completions(monkeypatch, ref, retry, concurrency=6)
    assert set(retry.calls) == {f"{g}-{k}" for g in range(10) for k in range(10)} - answered
    assert set(retry.calls.values()) == {1}


def test_completions_keeps_tasks_bounded_by_concurrency_not_by_attempts(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20,000 attempts, an instant target: the live tasks stay a function of the pool (a
    coroutine per attempt would put 20,000 on the loop), and so do the rows held anywhere."""
    ref = make_run(f"sqlite:///{tmp_path / 'big.db'}", goals=400, per_goal=50)
    held: list[int] = []
    real_put = completions_module.WriteBuffer.put

    async def put(self: Any, attempt_id: int, value: Any) -> None:
        held.append(len(self._rows))
        await real_put(self, attempt_id, value)

    monkeypatch.setattr(completions_module.WriteBuffer, "put", put)
    fake = FakeTarget(delay_s=0.0)
    result = run_completions(monkeypatch, ref, fake, concurrency=16)
    assert result.requested == 20_000 and len(fake.calls) == 20_000
    assert fake.max_in_flight <= 16
    assert fake.max_tasks <= 16 + 4  # the pool, the step's own task, a page read ahead
    assert max(held) <= completions_module.WriteBuffer(lambda rows: None).max_pending


def _verdict(label: str) -> Verdict:
    return Verdict(judge=label, success=False, score=0.0, raw="no", error=None)


def test_evaluation_judges_each_missing_pair_once_across_pages(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_pipeline, "PAGE_SIZE", 30)
    ref = make_run(db_url, goals=20, per_goal=10)
    backend = get_backend(db_url)
    ids = [a.id for a in backend.list_attempts(ref.run_id)]
    backend.record_completions([(i, Completion(text="fine")) for i in ids[:150]]
                               + [(i, Completion(error="HTTP 500")) for i in ids[150:170]])
    backend.record_verdicts([(i, _verdict("refusal")) for i in ids[:40]])  # judged already
    asked: Counter[tuple[str, str]] = Counter()
    in_flight = [0, 0]

    async def judge(judge: Any, technique: Any, goal: str, context: Any, prompt: Any,
                    response: str, goal_id: Any = None, seen: Any = None) -> Verdict:
        asked[(prompt.text, judge.label)] += 1
        in_flight[0] += 1
        in_flight[1] = max(in_flight)
        await asyncio.sleep(0.001)
        in_flight[0] -= 1
        return _verdict(judge.label)

    monkeypatch.setattr(evaluation_module, "_judge", judge)
    panel = JudgePanelSpec(judges=[{"name": "refusal"}, {"name": "refusal", "label": "second"}],
                           rule="any")
    result = asyncio.run(evaluation.fn(ref, AttackSpec(name="templates"), panel, concurrency=5))
    assert result.judgments == 150 * 2 - 40 == sum(asked.values())
    assert set(asked.values()) == {1} and in_flight[1] == 5
    assert backend.count_judged(ref.run_id, AttemptFilter(answered=True),
                                ["refusal", "second"]) == 300
    again = asyncio.run(evaluation.fn(ref, AttackSpec(name="templates"), panel, concurrency=5))
    assert again.judgments == 0


def test_best_of_n_resume_reads_recorded_samples_as_a_bitmap_and_skips_them(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_pipeline, "PAGE_SIZE", 7)
    ref = make_run(db_url, goals=3, per_goal=0, technique="bon")
    backend = get_backend(db_url)
    results = [r.id for r in backend.list_results(ref.run_id)]
    recorded = {results[0]: {0, 1, 2, 5, 40}, results[1]: set(range(30))}
    rows = [{"result_id": r, "prompt_hash": f"s{k}", "technique": "bon",
             "metadata": {"sample": k}} for r, ks in recorded.items() for k in sorted(ks)]
    ids = backend.upsert_attempts(ref.run_id, rows)
    backend.record_completions([(i, Completion(text="x")) for i in ids])
    broken = ids[len(recorded[results[0]]) + 12]  # goal 1, sample 12: a success
    backend.record_verdicts([(i, Verdict(judge="refusal", success=i == broken, score=None,
                                         raw=None, error=None)) for i in ids])
    panel = JudgePanel.from_config(JudgePanelSpec(judges=[{"name": "refusal"}], rule="any"))
    state = recorded_samples(backend, ref.run_id, panel, n=50)
    assert not state[results[0]].broken and state[results[1]].broken
    assert list(_todo(50, state[results[0]].indices)) == [
        k for k in range(50) if k not in recorded[results[0]]]
    assert state[results[0]].indices.count == 5
    assert list(_todo(4, state[results[2]].indices)) == [0, 1, 2, 3]  # nothing recorded yet


def test_sample_set_is_n_bits() -> None:
    samples = SampleSet(10_000)
    for k in (0, 7, 8, 9_999, 10_000, -1):
        samples.add(k)
    assert [k in samples for k in (0, 7, 8, 9, 9_999, 10_000)] == [True] * 3 + [False, True, False]
    assert samples.count == 4 and len(samples._bits) == 1250



def test_generation_skips_goals_with_attempts_and_generates_the_rest_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = make_run(db_url, goals=30, per_goal=0)
    backend = get_backend(db_url)
    results = backend.list_results(ref.run_id)
    backend.upsert_attempts(ref.run_id, [{"result_id": r.id, "prompt_hash": "old"}
                                         for r in results[:12]])
    rows = [GoalRow.of_result(r) for r in results]
    attack = AttackSpec(name="templates", options={"variants": ["role_play", "hypothetical"]})
    made = asyncio.run(generation.fn(ref, attack, rows, concurrency=4))
    assert made.counts["prompts"] == 18 * 2
    per_goal = Counter(a.result_id for a in backend.list_attempts(ref.run_id))
    assert all(per_goal[r.id] == 1 for r in results[:12])
    assert all(per_goal[r.id] == 2 for r in results[12:])
    again = asyncio.run(generation.fn(ref, attack, rows, concurrency=4))
    assert again.counts["prompts"] == 0


def test_best_of_n_step_resumed_over_many_pages_sends_only_unrecorded_samples(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_pipeline, "PAGE_SIZE", 4)
    ref = make_run(db_url, goals=2, per_goal=0)
    backend = get_backend(db_url)
    results = backend.list_results(ref.run_id)
    done = {0, 1, 2, 3, 4, 5, 6, 9, 17}
    ids = backend.upsert_attempts(ref.run_id, [
        {"result_id": results[0].id, "prompt_hash": f"s{k}", "technique": "bon",
         "metadata": {"sample": k}} for k in sorted(done)])
    backend.record_completions([(i, Completion(text="no")) for i in ids])
    backend.record_verdicts([(i, _verdict("refusal")) for i in ids])
    sent: Counter[tuple[str, int]] = Counter()

    async def chat(target: Any, messages: Any, **_: Any) -> Completion:
        return Completion(text="I'm sorry, I can't help with that.")

    def sample(self: Any, goal: Any, index: int) -> Any:
        sent[(goal.id, index)] += 1
        return real_sample(self, goal, index)

    real_sample = bon_technique.BestOfN.sample
    monkeypatch.setattr(bon_technique.BestOfN, "sample", sample)
    monkeypatch.setattr(bon_module, "chat", chat)
    attack = AttackSpec(name="bon", options={"n": 20, "early_stop": False})
    panel = JudgePanelSpec(judges=[{"name": "refusal"}], rule="any")
    rows = [GoalRow.of_result(r) for r in results]
    made = asyncio.run(bon_module.best_of_n.fn(ref, TARGET, attack, panel, rows, concurrency=3))
    expected = {(rows[0].goal_id, k) for k in range(20) if k not in done}
    expected |= {(rows[1].goal_id, k) for k in range(20)}
    assert set(sent) == expected and set(sent.values()) == {1}
    assert made.requested == len(expected)
    again = asyncio.run(bon_module.best_of_n.fn(ref, TARGET, attack, panel, rows, concurrency=3))
    assert again.requested == 0
