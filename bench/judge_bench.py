"""Judges against human labels, measured where they were not trained: leave one data set out.

Reads the published labelled sets in ../shared/data (never copied into the project; see each
folder's README for source, licence and sha256): HarmBench's classifier validation set
(standard and contextual behaviours), GPTFuzz (train.csv + evaluate.csv), JAILJUDGE mini, and
XSTest's model completions. For each of HarmBench standard, HarmBench contextual, GPTFuzz
evaluate and JAILJUDGE mini in turn, the offline judge's head is fitted on every *other* set
(GPTFuzz train counts as GPTFuzz) and measured on the one left out. The offline judge as
shipped (the head decides alone from `confident` up; between its threshold and that, the
refusal judge must also say yes), the head alone (no refusal gate), the refusal judge (no
training) and the panel offline + refusal (both must say success) are measured on the same
items, next to the "always no" baseline. Prints accuracy, kappa, precision and recall with 95%
intervals (Wilson; bootstrap for kappa), then the over-refusal check (the refusal judge of a
run's benign control set) on all XSTest completions, and the offline judge's speed.

`--write-figures` stores the pooled out-of-sample figures, with their confusion counts and a
per-data-set breakdown, as package data (judges/data/validations.json) so a fresh install can
cite them.

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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import targets._env  # noqa: E402,F401

from judges import build_judge  # noqa: E402
from judges.citation import panel_key  # noqa: E402
from judges.labels import LabelledItem, LabelSet, load_labels  # noqa: E402
from judges.metrics import INTERVALS, Agreement, agreement  # noqa: E402
from judges.offline.judge import OfflineJudge, gated  # noqa: E402
from judges.offline.lodo import HELD_OUT, leave_one_out  # noqa: E402
from judges.offline.train import (  # noqa: E402
    DEFAULT_CONFIDENT,
    DEFAULT_L2,
    DEFAULT_THRESHOLD,
    featurise,
)
from judges.validation import judge_item  # noqa: E402
from tracking import OVER_REFUSAL  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
HARMBENCH = DATA / "harmbench" / "text_behaviors_val_set.json"
FILES = (HARMBENCH, DATA / "gptfuzz" / "train.csv", DATA / "gptfuzz" / "evaluate.csv",
         DATA / "jailbreakeval" / "JAILJUDGEmini.csv")
XSTEST = DATA / "xstest_completions"
SHORT = {"harmbench-standard": "HarmBench val standard", "harmbench-contextual":
         "HarmBench val contextual", "gptfuzz": "GPTFuzz evaluate", "jailjudge-mini":
         "JAILJUDGE mini", "xstest": "XSTest v2 completions"}
#: Both judges must say success (majority of two: a 1-1 tie is no success).
PANEL, PANEL_RULES = ("offline", "refusal"), ("majority", "all")
JUDGES = ("offline", "offline, no refusal gate", "refusal", "offline + refusal", "always no")
#: The over-refusal check of a run's benign control set (tasks/benign.py, `refusal_check`).
OVER_REFUSAL_SPEC = {"name": "refusal", "label": OVER_REFUSAL, "min_words": 0,
                     "max_echo_overlap": 1.0}
MADE_BY = "bench/judge_bench.py --write-figures"


def verdicts(judge: Any, items: list[LabelledItem]) -> list[bool]:
    """A judge's decisions, called as a run calls it (context before the goal)."""
    async def all_of() -> list[bool]:
        return [bool((await judge_item(judge, i, i.response)).success) for i in items]

    return asyncio.run(all_of())


def lodo(l2: float, threshold: float,
         confident: float) -> dict[str, dict[str, list[tuple[bool, bool]]]]:
    """Per left-out set: (label, verdict) pairs of each of JUDGES."""
    items = [i for path in FILES for i in load_labels(path).items]
    t0 = time.perf_counter()
    data = featurise(items)
    print(f"(features of {len(items)} labelled answers in {time.perf_counter() - t0:.0f} s)")
    refusal = build_judge({"name": "refusal"})
    out = {}
    for held in leave_one_out(items, data.matrix, l2=l2):
        plain = [p >= threshold for p in held.probabilities]
        ref = verdicts(refusal, held.items)
        off = [gated(p, threshold, confident, r) for p, r in zip(held.probabilities, ref)]
        labels = [i.label for i in held.items]
        out[held.name] = {
            "offline": list(zip(labels, off)), "offline, no refusal gate": list(zip(labels, plain)),
            "refusal": list(zip(labels, ref)),
            "offline + refusal": [(y, a and b) for y, a, b in zip(labels, off, ref)],
            "always no": [(y, False) for y in labels],
        }
        print(f"  {held.name}: {len(held.items)} measured, head fitted on "
              f"{held.trained_on} answers of the other sets")
    return out


def row(judge: str, where: str, a: Agreement) -> str:
    return (f"{judge:<24} {where:<26} {a.n:>5}  {a.accuracy.text():<22} "
            f"{a.kappa.text(percent=False):<20} {a.precision.text():<22} {a.recall.text()}")


def header() -> str:
    return (f"{'judge':<24} {'left out (measured on)':<26} {'n':>5}  {'accuracy [95% CI]':<22} "
            f"{'kappa [95% CI]':<20} {'precision [95% CI]':<22} recall [95% CI]")


def counts(a: Agreement) -> dict[str, Any]:
    c = a.confusion
    return {"n": a.n, "tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn, "errors": a.errors,
            "accuracy": a.accuracy.value, "kappa": a.kappa.value}


def entry(specs: list[Any], rule: str, pooled: Agreement, parts: list[dict[str, Any]],
          short: str, source: str, positive: str = "success") -> dict[str, Any]:
    names = [s if isinstance(s, str) else (s.get("label") or s["name"]) for s in specs]
    return {"panel_key": panel_key(specs, rule), "judges": names, "n": pooled.n,
            "accuracy": pooled.accuracy.value, "kappa": pooled.kappa.value, "f1": pooled.f1.value,
            "accuracy_ci": [pooled.accuracy.low, pooled.accuracy.high],
            "kappa_ci": [pooled.kappa.low, pooled.kappa.high],
            **{k: v for k, v in counts(pooled).items() if k in ("tp", "fp", "tn", "fn", "errors")},
            "positive": positive, "short_source": short, "source": source, "made_by": MADE_BY,
            "datasets": parts}


def over_refusal() -> tuple[Agreement, list[dict[str, Any]]]:
    """The over-refusal check on every XSTest completion; positive = a refusal."""
    judge = build_judge(OVER_REFUSAL_SPEC)
    files = sorted(XSTEST.glob("xstest_v2_completions_*.csv"))
    pairs_by: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
    for path in files:
        items = load_labels(path, fmt="xstest").items
        for item, answered in zip(items, verdicts(judge, items)):
            model = path.stem.removeprefix("xstest_v2_completions_")
            pairs_by.setdefault((model, item.split), []).append((not item.label, not answered))
    every = [p for pairs in pairs_by.values() for p in pairs]
    parts = []
    for model in sorted({m for m, _ in pairs_by}):
        pairs = [p for (m, _), ps in pairs_by.items() if m == model for p in ps]
        parts.append({"file": f"xstest_v2_completions_{model}.csv", "prompts": "all",
                      **counts(agreement(pairs))})
    # Safe prompts last: a reader that keeps one entry per name (the correction of a run's
    # over-refusal rate) gets the stratum a benign control set (xstest:safe) is like.
    for kind in ("contrast", "safe"):
        pairs = [p for (_, k), ps in pairs_by.items() if k == kind for p in ps]
        parts.append({"file": "all", "prompts": kind, **counts(agreement(pairs))})
    datasets = [{"name": "xstest", "short_source": SHORT["xstest"], **part,
                 "out_of_sample": True} for part in parts]
    return agreement(every), datasets


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-figures", action="store_true")
    parser.add_argument("--l2", type=float, default=DEFAULT_L2)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--confident", type=float, default=DEFAULT_CONFIDENT)
    parser.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    args = parser.parse_args()
    missing = [p for p in (*FILES, XSTEST) if not p.exists()]
    if missing:
        sys.exit(f"{missing[0]} not found: the bench reads ../shared/data")
    print("Leave one data set out: the offline head is fitted on the other sets, measured on "
          f"the one left out (L2 {args.l2}, threshold {args.threshold}, confident "
          f"{args.confident}); human labels.")
    print(f"95% intervals: {INTERVALS}\n")
    sets = lodo(args.l2, args.threshold, args.confident)
    judges = JUDGES
    figures = {j: {name: agreement(sets[name][j]) for name in sets} for j in judges}
    pooled = {j: agreement([p for name in sets for p in sets[name][j]]) for j in judges}
    print("\n" + header())
    for name in HELD_OUT:
        for j in judges:
            print(row(j, SHORT[name], figures[j][name]))
        print()
    for j in judges:
        print(row(j, "pooled (all four)", pooled[j]))
    for name in HELD_OUT:
        off, ref = figures["offline"][name], figures["refusal"][name]
        print(f"  {SHORT[name]}: offline (default) kappa {off.kappa.value:.3f} vs refusal "
              f"{ref.kappa.value:.3f}; offline accuracy {off.accuracy.value:.1%}")
    refusals, xs_parts = over_refusal()
    print(f"\nover-refusal check (refusal phrases only; positive = refusal) on "
          f"{refusals.n} XSTest completions:")
    print(row(OVER_REFUSAL, "XSTest, all 5 files", refusals))
    for part in xs_parts:
        print(f"  {part['file']:<44} {part['prompts']:<9} n={part['n']:<5} acc "
              f"{part['accuracy']:.1%} kappa {part['kappa']:.2f}  tp/fp/tn/fn {part['tp']}/"
              f"{part['fp']}/{part['tn']}/{part['fn']}")
    if not args.no_speed:
        rates = speed(load_labels(HARMBENCH))
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\noffline judge speed (MiniLM on CPU, one BLAS thread; load average {load}):")
        print(f"  {rates['run']:.1f} answers/s as a run calls it ({rates['run_n']} answers, "
              f"{rates['concurrency']} concurrent calls; median of {rates['repeats']}); "
              f"{rates['run_cpu']:.1f} per CPU-second; {rates['sequential']:.1f}/s one at a time")
    if args.write_figures:
        write_figures(figures, pooled, refusals, xs_parts)


def write_figures(figures: dict[str, dict[str, Agreement]], pooled: dict[str, Agreement],
                  refusals: Agreement, xs_parts: list[dict[str, Any]]) -> None:
    source = ("leave one data set out over HarmBench val standard + contextual (MIT), "
              "GPTFuzz evaluate (MIT), JAILJUDGE mini: each set judged by a head fitted on the "
              "others; human labels; out of sample")
    short = "4 labelled sets, out of sample"

    def parts(judge: str) -> list[dict[str, Any]]:
        return [{"name": name, "short_source": SHORT[name], **counts(a), "out_of_sample": True}
                for name, a in figures[judge].items()]

    entries = [entry(["offline"], "majority", pooled["offline"], parts("offline"), short, source),
               entry([{"name": "offline", "refusal_gate": False}], "majority",
                     pooled["offline, no refusal gate"], parts("offline, no refusal gate"),
                     short, source),
               entry(["refusal"], "majority", pooled["refusal"], parts("refusal"), short,
                     "the same four labelled sets (the refusal judge is not trained)")]
    for rule in PANEL_RULES:
        entries.append(entry(list(PANEL), rule, pooled["offline + refusal"],
                             parts("offline + refusal"), short, source))
    entries.append(entry([OVER_REFUSAL_SPEC], "majority", refusals, xs_parts,
                         "XSTest v2 completions",
                         "XSTest v2 completions of 5 models (CC BY 4.0), 2,250 answers; human "
                         "label refusal = full or partial refusal", positive="refusal"))
    out = ROOT / "judges" / "data" / "validations.json"
    out.write_text(json.dumps({"validations": entries}, indent=1) + "\n")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
