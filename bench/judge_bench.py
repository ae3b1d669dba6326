"""Judges against human labels on HarmBench's classifier validation set, and the offline judge's
speed.

Reads ../shared/data/harmbench (never copied into the project; MIT, see its README). Prints,
with n and 95% intervals (Wilson for accuracy; bootstrap, seed 0, for kappa):
- offline judge: 5-fold CV on the *standard* behaviours (folds grouped by behaviour, synthetic
  echo negatives on the training side only) and the *contextual* behaviours held out (head
  fitted on all standard items), plus both pooled (every item predicted out of sample);
- the shipped head (judges/data/offline_judge.npz) on the contextual items (it never saw them);
- refusal (keyword) judge on the same splits;
- model judges: not run (they need a model server; none is started here) — listed as such;
  the classifiers whose verdicts HarmBench stored in the file are shown for comparison;
- offline judgments per second on this machine: one answer at a time, and as a run's evaluation
  step calls it (many concurrent calls, which the judge micro-batches).

`--write-figures` stores the pooled out-of-sample figures as package data
(judges/data/validations.json) so a fresh install can cite them.

    .venv/bin/python bench/judge_bench.py [--write-figures]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import targets._env  # noqa: E402,F401

from judges.citation import panel_key  # noqa: E402
from judges.labels import LabelSet, load_labels  # noqa: E402
from judges.metrics import INTERVALS, Agreement, agreement  # noqa: E402
from judges.offline.judge import OfflineJudge, shipped_weights  # noqa: E402
from judges.offline.synthetic import synthetic_items  # noqa: E402
from judges.offline.train import DEFAULT_L2, cross_validate, featurise  # noqa: E402
from judges.refusal import RefusalJudge  # noqa: E402
from judges.validation import judge_item  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "harmbench"
LABELS = DATA / "text_behaviors_val_set.json"
SHORT_SOURCE = "HarmBench val"
STORED = {"cls": "HarmBench-Llama-2-13b-cls", "GPTFuzz": "GPTFuzz RoBERTa",
          "llama_guard": "Llama Guard", "advbench": "refusal strings (HarmBench's)"}


def row(name: str, split: str, a: Agreement) -> str:
    return (f"{name:<34} {split:<26} {a.n:>4} {a.errors:>3}  {a.accuracy.text():<22} "
            f"{a.kappa.text(percent=False):<20} {a.f1.text(percent=False)}")


def refusal_figures(items: list) -> Agreement:
    judge = RefusalJudge()
    pairs = []
    for item in items:  # called as a run (and `judges validate`) calls it: context before goal
        verdict = asyncio.run(judge_item(judge, item, item.response))
        pairs.append((item.label, bool(verdict.success)))
    return agreement(pairs)


def stored_figures(items: list, key: str) -> Agreement:
    raw = json.loads(LABELS.read_text())
    by_id = {f"{b}#{i}": e for b, entries in raw.items() for i, e in enumerate(entries)}
    pairs = [(it.label, bool(int(by_id[it.id][key]))) for it in items]
    return agreement(pairs)


def offline_figures(labels: LabelSet) -> dict[str, Agreement]:
    import numpy as np

    from judges.offline.head import fit

    standard = [i for i in labels.items if i.split == "standard"]
    contextual = [i for i in labels.items if i.split == "contextual"]
    t0 = time.perf_counter()
    std, ctx = featurise(standard), featurise(contextual)
    synth = featurise(synthetic_items(standard))
    print(f"(features of {len(standard) + len(contextual) + len(synth.items)} answers in "
          f"{time.perf_counter() - t0:.0f} s)")
    cv, cv_probs = cross_validate(std, synth, k=5, l2=DEFAULT_L2)
    head = fit(np.vstack([std.matrix, synth.matrix]),
               np.concatenate([std.labels, synth.labels]), l2=DEFAULT_L2)
    ctx_probs = head.probability(ctx.matrix)
    held = agreement([(i.label, bool(p >= 0.5)) for i, p in zip(contextual, ctx_probs)])
    pooled = agreement([(i.label, bool(p >= 0.5)) for i, p in zip(standard, cv_probs)]
                       + [(i.label, bool(p >= 0.5)) for i, p in zip(contextual, ctx_probs)])
    figures = {"cv": cv, "held_out": held, "pooled": pooled}
    if shipped_weights().is_file():
        from judges.offline.head import Head

        shipped = Head.load(shipped_weights())
        rows = featurise(contextual, spec=shipped.embedding).matrix
        figures["shipped"] = agreement(
            [(i.label, bool(p >= shipped.threshold))
             for i, p in zip(contextual, shipped.probability(rows))])
    return figures


def speed(labels: LabelSet, count: int = 40, concurrent: int = 596, concurrency: int = 32,
          repeats: int = 3) -> dict[str, float]:
    """Judgments per second of the offline judge: one answer at a time, and as a run's
    evaluation step calls it (`concurrent` answers, at most `concurrency` in flight, each call
    awaiting its own verdict; median of `repeats`). Per wall second, and per second of this
    process's CPU: on a shared machine the wall figure mostly measures the other processes."""
    judge = OfflineJudge()
    items = labels.items[:count]

    async def one_at_a_time() -> None:
        for item in items:
            await judge.evaluate(item.goal, item.judge_prompt, item.response)

    asyncio.run(judge.evaluate("warm", "up", "the encoder"))
    t0 = time.perf_counter()
    asyncio.run(one_at_a_time())
    sequential = count / (time.perf_counter() - t0)

    run_items = (labels.items * (1 + concurrent // len(labels.items)))[:concurrent]

    async def as_a_run(judge: OfflineJudge) -> None:
        limit = asyncio.Semaphore(concurrency)

        async def one(item) -> None:
            async with limit:
                await judge_item(judge, item, item.response)

        await asyncio.gather(*(one(item) for item in run_items))

    walls, cpus = [], []
    for _ in range(repeats):  # a fresh judge each time: goal embeddings not cached yet
        judge = OfflineJudge()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        asyncio.run(as_a_run(judge))
        walls.append(len(run_items) / (time.perf_counter() - wall0))
        cpus.append(len(run_items) / (time.process_time() - cpu0))
    return {"sequential": sequential, "run": sorted(walls)[len(walls) // 2],
            "run_cpu": sorted(cpus)[len(cpus) // 2], "run_n": len(run_items),
            "concurrency": concurrency, "repeats": repeats}


def figure_entry(name: str, a: Agreement, source: str) -> dict:
    return {"panel_key": panel_key([name], "majority"), "judges": [name], "n": a.n,
            "accuracy": a.accuracy.value, "kappa": a.kappa.value, "f1": a.f1.value,
            "accuracy_ci": [a.accuracy.low, a.accuracy.high],
            "kappa_ci": [a.kappa.low, a.kappa.high], "short_source": SHORT_SOURCE,
            "source": source, "made_by": "bench/judge_bench.py --write-figures"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-figures", action="store_true")
    args = parser.parse_args()
    if not LABELS.is_file():
        sys.exit(f"{LABELS} not found: the bench reads ../shared/data/harmbench")
    labels = load_labels(LABELS)
    standard = [i for i in labels.items if i.split == "standard"]
    contextual = [i for i in labels.items if i.split == "contextual"]
    print(f"HarmBench classifier validation set: {len(labels.items)} items "
          f"({len(standard)} standard, {len(contextual)} contextual); human majority label")
    print(f"95% intervals: {INTERVALS}\n")
    print(f"{'judge':<34} {'split':<26} {'n':>4} {'err':>3}  {'accuracy [95% CI]':<22} "
          f"{'kappa [95% CI]':<20} F1 [95% CI]")
    off = offline_figures(labels)
    print(row("offline (trained here)", "standard, 5-fold CV", off["cv"]))
    print(row("offline (trained here)", "contextual, held out", off["held_out"]))
    print(row("offline (trained here)", "all, out of sample", off["pooled"]))
    if "shipped" in off:
        print(row("offline (shipped weights)", "contextual, held out", off["shipped"]))
    ref = {"standard": refusal_figures(standard), "contextual": refusal_figures(contextual),
           "all": refusal_figures(labels.items)}
    for split, a in ref.items():
        print(row("refusal (keywords)", split, a))
    for key, name in STORED.items():
        print(row(f"{name} [stored]", "contextual", stored_figures(contextual, key)))
    print(row(f"{STORED['cls']} [stored]", "all", stored_figures(labels.items, "cls")))
    print("\n[stored] = verdicts HarmBench recorded in the file, not run here.")
    print("harmbench, jailbreakbench, strongreject, pair (model judges): needs a model — no "
          "server is started by this bench, so they are not measured.")
    rates = speed(labels)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\noffline judge speed (MiniLM on CPU, one BLAS thread; load average {load}):")
    print(f"  {rates['sequential']:.1f} judgments/s one answer at a time")
    print(f"  {rates['run']:.1f} judgments/s as a run calls it ({rates['run_n']} answers, "
          f"{rates['concurrency']} concurrent calls micro-batched into encoder batches; median "
          f"of {rates['repeats']})")
    print(f"  {rates['run_cpu']:.1f} judgments per CPU-second of this process, as a run calls "
          f"it ({os.cpu_count()} cores: a quiet machine gives up to that many CPU-seconds per "
          "second)")
    if args.write_figures:
        source = ("HarmBench classifier validation set (MIT), human majority; offline: "
                  "5-fold grouped CV on standard + held-out contextual, out of sample")
        entries = [figure_entry("offline", off["pooled"], source),
                   figure_entry("refusal", ref["all"], "HarmBench classifier validation set "
                                "(MIT), human majority")]
        out = ROOT / "judges" / "data" / "validations.json"
        out.write_text(json.dumps({"validations": entries}, indent=1) + "\n")
        print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
