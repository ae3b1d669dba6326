"""`siegeflow judges`: list the judges, validate a panel against human labels, train the
offline judge's head on a team's own labels.

Heavy imports (numpy, the MiniLM encoder, litellm for model judges) happen inside commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import output
from cli.app import bad_input, console
from cli.exits import EXIT_OK
from cli.panel import DEFAULT_JUDGES, judge_specs

judges_app = typer.Typer(
    help="Judges: list them, validate a panel against human labels, train the offline judge.",
    invoke_without_command=True, no_args_is_help=False,
)


@judges_app.callback()
def judges(ctx: typer.Context) -> None:
    """Registered judges and their options (subcommands: validate, train)."""
    if ctx.invoked_subcommand is None:
        from judges import list_judges

        output.print_registry(console, "Judges", list_judges())


LabelsOption = Annotated[list[Path], typer.Option(
    "--labels", help="Labelled answers; repeat for several files: generic .jsonl/.csv (id, "
    "goal, response, label, ...), HarmBench's text_behaviors_val_set.json, GPTFuzz's "
    "train/evaluate.csv, JAILJUDGE mini, XSTest completions.")]
FormatOption = Annotated[str | None, typer.Option(
    "--format", help="generic | harmbench | gptfuzz | jailjudge | xstest (default: detected "
    "from each file's header).")]
QuestionsOption = Annotated[Path | None, typer.Option(
    "--questions", help="GPTFuzz question list (default: question_list.csv next to the "
    "labels file).")]
BehavioursOption = Annotated[Path | None, typer.Option(
    "--behaviors", help="HarmBench behaviours CSV (default: harmbench_behaviors_text_all.csv "
    "next to the labels file).")]
SplitOption = Annotated[str | None, typer.Option(
    help="Only items of this split (HarmBench: standard or contextual; else the 'split' field).")]


@judges_app.command()
def validate(
    labels: LabelsOption,
    behaviors: BehavioursOption = None,
    label_format: FormatOption = None,
    questions: QuestionsOption = None,
    judge: Annotated[list[str] | None, typer.Option(
        help="Judge name or JSON spec; repeat for several (default: run's default panel).")] = None,
    judge_model: Annotated[str | None, typer.Option(help="litellm model for model judges.")] = None,
    judge_api_base: Annotated[str | None, typer.Option(help="Judge endpoint.")] = None,
    rule: Annotated[str, typer.Option(help="any | majority | all")] = "majority",
    split: SplitOption = None,
    include_training: Annotated[bool, typer.Option(
        help="Keep items a trained judge was fitted on (in-sample figures).")] = False,
    concurrency: Annotated[int, typer.Option(help="Concurrent judge calls.")] = 8,
    budget: Annotated[float | None, typer.Option(help="Stop judging past this many USD.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write figures + items.")] = None,
    show: Annotated[int, typer.Option(help="How many disagreements to print.")] = 10,
    store: Annotated[bool, typer.Option(help="Save as the panel's latest validation.")] = True,
    db: Annotated[str | None, typer.Option("--db", help="Tracking store URL.")] = None,
) -> None:
    """Measure a judge or panel against human labels: accuracy, precision, recall, F1, kappa."""
    from cli.validate_view import print_validation
    from judges import JudgeError, JudgePanel
    from judges.labels import LabelsFileError, load_many
    from judges.validation import run_validation

    try:
        label_set = load_many(labels, behaviors, fmt=label_format,
                              questions=questions).subset(split)
        specs = judge_specs(judge or list(DEFAULT_JUDGES), judge_model, judge_api_base)
        panel = JudgePanel(specs, rule)
    except (LabelsFileError, JudgeError, ValueError) as exc:
        raise bad_input(str(exc)) from None
    label_set, notes = _held_out(panel, label_set, include_training)
    console.print(f"Judging {len(label_set.items)} labelled answers from "
                  f"{output.escape(label_set.source)} with {len(panel.judges)} judge(s)...")
    import asyncio

    result = asyncio.run(run_validation(panel, label_set, decode=_decoder(),
                                        concurrency=concurrency, budget_usd=budget))
    result.notes.extend(notes)
    print_validation(console, result, show)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({**result.as_dict(), "items": result.items_json()},
                                       indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        console.print(f"Written: {output.escape(str(json_out))}")
    if store:
        _store(db, specs, rule, result)
    raise typer.Exit(EXIT_OK)


def _held_out(panel: Any, label_set: Any, include: bool) -> tuple[Any, list[str]]:
    """Leave out items a trained judge of the panel was fitted on (they would flatter it)."""
    from judges.labels import LabelSet

    trained: set[str] = set()  # file digest + id: unique across files
    for j in panel.judges:
        meta = getattr(getattr(j, "head", None), "meta", None) or {}
        trained |= set(meta.get("train_keys") or [])
        if meta.get("labels_sha256") == label_set.sha256:  # a head written before train_keys
            ids = set(meta.get("train_ids") or [])
            trained |= {i.key for i in label_set.items if i.id in ids}
    overlap = [i for i in label_set.items if i.key in trained]
    if not overlap:
        return label_set, []
    if include:
        return label_set, [f"{len(overlap)} item(s) were in a judge's training set: "
                           "those figures are in-sample"]
    kept = [i for i in label_set.items if i.key not in trained]
    if not kept:
        raise bad_input("every item is in the judge's training set: nothing held out to "
                         "validate on (--include-training to measure in-sample anyway)")
    note = (f"{len(overlap)} item(s) left out: a judge of the panel was trained on them "
            "(--include-training keeps them, in-sample)")
    return LabelSet(items=kept, source=f"{label_set.source}, held-out items",
                    sha256=label_set.sha256), [note]


def _decoder() -> Any:
    """Decode an item's response as a run would, by its technique and variant."""
    from attacks import AttackPrompt, TechniqueError, build_technique

    cache: dict[str, Any] = {}

    def decode(item: Any, response: str) -> str:
        if not item.technique:
            return response
        if item.technique not in cache:
            try:
                cache[item.technique] = build_technique(item.technique, {})
            except TechniqueError:
                cache[item.technique] = None  # e.g. HarmBench's method names: nothing to decode
        technique = cache[item.technique]
        if technique is None:
            return response
        from targets.messages import UserMessage

        prompt = AttackPrompt(technique=item.technique, variant=item.variant,
                              messages=[UserMessage(content=item.prompt)],
                              metadata={"encoding": item.variant} if item.variant else {})
        try:
            return technique.decode(prompt, response)
        except (ValueError, TechniqueError):
            return response

    return decode


def _store(db: str | None, specs: list[dict[str, Any]], rule: str, result: Any) -> None:
    from judges.citation import panel_digest, panel_key
    from judges.corrected import dataset_counts
    from judges.validation import PANEL
    from tracking import default_db_url, get_backend

    key = panel_key(specs, rule)
    figures = result.figures[PANEL]
    get_backend(db or default_db_url()).save_validation(
        panel_key=panel_digest(key), panel=json.loads(key), source=result.source,
        labels_sha256=result.sha256, n=figures.n, errors=figures.errors,
        accuracy=figures.accuracy.value, kappa=figures.kappa.value, figures=result.as_dict(),
        counts={"tp": figures.confusion.tp, "fp": figures.confusion.fp,
                "tn": figures.confusion.tn, "fn": figures.confusion.fn},
        positive="success", datasets=dataset_counts(result),
    )
    console.print("Saved as this panel's latest validation: runs and reports using it cite it.")


@judges_app.command()
def train(
    labels: LabelsOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the head (.npz).")],
    behaviors: BehavioursOption = None,
    label_format: FormatOption = None,
    questions: QuestionsOption = None,
    split: SplitOption = None,
    l2: Annotated[float | None, typer.Option(help="L2 penalty of the logistic head.")] = None,
    folds: Annotated[int, typer.Option(help="Grouped CV folds to report (0: none).")] = 5,
    synthetic: Annotated[bool, typer.Option(
        help="Add siegeflow's echo/restatement negatives for the training goals.")] = False,
    threshold: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="P(success) above which the head says success.")] = None,
    confident: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="P(success) from which the head decides alone; below it a "
        "success also needs the refusal judge's yes (default 0.7).")] = None,
    refusal_gate: Annotated[bool, typer.Option(
        help="Store a refusal gate in the head (--no-refusal-gate: the threshold alone).")] = True,
    response_tokens: Annotated[int, typer.Option(
        min=8, max=256, help="Tokens of each answer embedded (more: slower judging).")] = 32,
    prompt_tokens: Annotated[int, typer.Option(
        min=0, max=256, help="Tokens of the attack prompt embedded for a response-prompt "
                             "cosine (0: none; any other value costs a second encoding).")] = 0,
) -> None:
    """Fit the offline judge's head to your labels; use it with `{"name": "offline",
    "weights": "OUT"}`."""
    from judges.labels import LabelsFileError, load_many
    from judges.offline.features import EmbeddingSpec
    from judges.offline.train import DEFAULT_CONFIDENT, DEFAULT_L2, DEFAULT_THRESHOLD, train_head
    from targets.minilm import EncoderUnavailable

    try:
        label_set = load_many(labels, behaviors, fmt=label_format, questions=questions)
        head = train_head(label_set, split=split, l2=l2 if l2 is not None else DEFAULT_L2,
                          use_synthetic=synthetic, folds=folds,
                          log=lambda m: console.print(output.escape(m)),
                          spec=EmbeddingSpec(response_tokens=response_tokens,
                                             prompt_tokens=prompt_tokens),
                          threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
                          confident=(None if not refusal_gate else DEFAULT_CONFIDENT
                                     if confident is None else confident))
    except (LabelsFileError, EncoderUnavailable, ValueError) as exc:
        raise bad_input(str(exc)) from None
    cv = head.meta.get("cv")
    if cv:
        console.print(f"{cv['folds']}-fold grouped CV: accuracy {cv['accuracy']:.1%} "
                      f"[{cv['accuracy_ci'][0]:.1%}–{cv['accuracy_ci'][1]:.1%}], kappa "
                      f"{cv['kappa']:.2f} [{cv['kappa_ci'][0]:.2f}–{cv['kappa_ci'][1]:.2f}], "
                      f"n={cv['n']}")
    head.save(out)
    console.print(f"Head written to {output.escape(str(out))}; use it with --judge "
                  f"'{{\"name\": \"offline\", \"weights\": \"{output.escape(str(out))}\"}}'")
    raise typer.Exit(EXIT_OK)
