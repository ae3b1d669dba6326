"""Goal-set presets for the public benchmarks, read from the files their authors publish.

`load_preset("harmbench:standard")` finds the file (user folder, cache, or a verified
download: `goals.fetch`) and maps its columns onto `Goal`s. Ids come from the file where it has
them (HarmBench's `BehaviorID`) and from the row position otherwise (`advbench-007`), so a goal
keeps its id across runs and `compare` matches goals by id, never by text.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from goals.fetch import DataFile, locate, resolve
from goals.loaders import GoalFileSpec, Record, read_csv_text, records_to_goals
from goals.model import Goal, GoalFileError

PRESET_PREFIX = "preset:"

Kind = Literal["harmful", "benign", "mixed"]
Rewrite = Callable[[int, Record], Record | None]  # (line, record) -> record, or None to drop
RewriteFactory = Callable[[], Rewrite]  # a fresh rewrite per read (ids count rows)


@dataclass(frozen=True, kw_only=True)
class Preset:
    """A named goal set read from one published file.

    `rewrite()` makes the function that keeps, drops or reshapes each row (filters a split,
    derives ids) before the shared column mapping; `count` is the number of goals the pinned
    file yields.
    """

    name: str
    description: str
    file: DataFile
    kind: Kind
    count: int
    text_field: str
    rewrite: RewriteFactory
    category_field: str | None = None
    target_field: str | None = None
    context_field: str | None = None
    raw_text_field: str | None = None  # the file's text column, when `rewrite` renames it
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def dataset(self) -> str:
        return self.name.split(":", 1)[0]

    def spec(self, path: str | Path) -> GoalFileSpec:
        return GoalFileSpec(
            path=path, text_field=self.text_field, id_field="id",
            category_field=self.category_field, target_field=self.target_field,
            context_field=self.context_field, set_name=self.name,
        )


# -- the published files --------------------------------------------------------------------------

_GH = "https://raw.githubusercontent.com"
_HB = f"{_GH}/centerforaisafety/HarmBench/main/data/behavior_datasets"
_HB_CITE = "Mazeika et al. 2024, HarmBench (arXiv 2402.04249)"
_SR = f"{_GH}/alexandrasouly/strongreject/main/strongreject_dataset"
_SR_CITE = "Souly et al. 2024, A StrongREJECT for Empty Jailbreaks (arXiv 2402.10260)"
_ADV = f"{_GH}/llm-attacks/llm-attacks/main/data/advbench"
_ADV_CITE = "Zou et al. 2023, Universal and Transferable Adversarial Attacks (arXiv 2307.15043)"
_JBB_CITE = "Chao et al. 2024, JailbreakBench (arXiv 2404.01318)"

FILES: dict[str, DataFile] = {
    "harmbench_all": DataFile(
        dataset="harmbench", filename="harmbench_behaviors_text_all.csv",
        url=f"{_HB}/harmbench_behaviors_text_all.csv",
        sha256="8d81accedd38eaaf8b760618622bb888417d1fd0c86eba65c427a16f1cbb4afc",
        license="MIT", citation=_HB_CITE),
    "harmbench_test": DataFile(
        dataset="harmbench_splits", filename="harmbench_behaviors_text_test.csv",
        url=f"{_HB}/harmbench_behaviors_text_test.csv",
        sha256="75d257b3e7428c52eb7b0154318f455af3e01b09a3794b5e2f3d36054f3c0e29",
        license="MIT", citation=_HB_CITE),
    "harmbench_val": DataFile(
        dataset="harmbench_splits", filename="harmbench_behaviors_text_val.csv",
        url=f"{_HB}/harmbench_behaviors_text_val.csv",
        sha256="7bfaaa5e2b9b95002c89e2d33c019f58e9e8496e2fc65d368f1eeb8179e69534",
        license="MIT", citation=_HB_CITE),
    "advbench_behaviors": DataFile(
        dataset="advbench", filename="harmful_behaviors.csv",
        url=f"{_ADV}/harmful_behaviors.csv",
        sha256="6cd1a5c63c07610d7eb67307772ee5606017ee950b5770ab288a2c487489d3e1",
        license="MIT", citation=_ADV_CITE),
    "advbench_strings": DataFile(
        dataset="advbench", filename="harmful_strings.csv",
        url=f"{_ADV}/harmful_strings.csv",
        sha256="2c4751403195634f88eb849d923670cb2d9a883bcc3d74456bf2f08141424a15",
        license="MIT", citation=_ADV_CITE),
    "jbb_harmful": DataFile(
        dataset="jailbreakbench", filename="behaviors.csv",
        url=f"{_GH}/JailbreakBench/jailbreakbench/main/src/jailbreakbench/data/behaviors.csv",
        sha256="45e9a8923b28f547bb372fbaa9af7df8b38c818a80ae50c3bab97704197ff516",
        license="MIT", citation=_JBB_CITE),
    # Not pinned, on purpose: the benign twins are published only on Hugging Face, which the
    # project could not reach, and ../shared/data/jailbreakbench holds the harmful file only
    # (its README: the one GitHub copy found had a rewritten header). A hash we never checked
    # against the published bytes would reject the real file, so a download is kept unverified
    # and its sha256 is logged; a user's own copy (--goals-path) is used as is.
    "jbb_benign": DataFile(
        dataset="jailbreakbench", filename="benign-behaviors.csv",
        url="https://huggingface.co/datasets/JailbreakBench/JBB-Behaviors/resolve/main/data/"
            "benign-behaviors.csv",
        sha256=None, license="MIT", citation=_JBB_CITE),
    "strongreject_full": DataFile(
        dataset="strongreject", filename="strongreject_dataset.csv",
        url=f"{_SR}/strongreject_dataset.csv",
        sha256="4dd70357e4ff8b5d0ba5ebafecab5d6dd5633ce8046e3dd1c8bd93e64de44381",
        license="MIT (questions from prior work keep their licences)", citation=_SR_CITE),
    "strongreject_small": DataFile(
        dataset="strongreject", filename="strongreject_small_dataset.csv",
        url=f"{_SR}/strongreject_small_dataset.csv",
        sha256="3051340e3e89a3598d764dde497d5fcda80e258ac05cc35e6bd87228ac3d467c",
        license="MIT", citation=_SR_CITE),
    "xstest": DataFile(
        dataset="xstest", filename="xstest_prompts.csv",
        url=f"{_GH}/paul-rottger/exaggerated-safety/main/xstest_prompts.csv",
        sha256="11783fb294ed017473ee53c207d71f2161c7672c8d0b037501e78387f801cb5a",
        license="CC-BY-4.0", citation="Röttger et al. 2024, XSTest (NAACL 2024)"),
}


# -- row rewrites: filters and ids ----------------------------------------------------------------


def _harmbench(functional: str | None) -> Rewrite:
    def rewrite(line: int, record: Record) -> Record | None:
        if functional is not None and record.get("FunctionalCategory") != functional:
            return None
        return {**record, "id": record.get("BehaviorID", "")}

    return rewrite


def _numbered(prefix: str, column: str | None = None) -> Rewrite:
    """Ids from the row position (`prefix-007`), or from an integer index column."""
    counter = iter(range(10**9))

    def rewrite(line: int, record: Record) -> Record | None:
        position = next(counter)
        if column is not None:
            position = _index_cell(record, column, line)
        return {**record, "id": f"{prefix}-{position:03d}"}

    return rewrite


def _index_cell(record: Record, column: str, line: int) -> int:
    # JBB's first column is unnamed in the GitHub file and `Index` on Hugging Face.
    key = next((k for k in (column, "Index", "index") if k in record), None)
    raw = str(record.get(key, "")).strip() if key is not None else ""
    if not raw.isdigit():
        raise GoalFileError("(preset)", f"expected an integer row index, got {raw!r}",
                            line=line, field=key or "Index")
    return int(raw)


def _xstest(label: str | None) -> Rewrite:
    def rewrite(line: int, record: Record) -> Record | None:
        if label is not None and record.get("label") != label:
            return None
        return {**record, "id": f"xstest-{str(record.get('id', '')).strip()}"}

    return rewrite


def _strings_rewrite() -> Rewrite:
    counter = iter(range(10**9))

    def rewrite(line: int, record: Record) -> Record | None:
        string = str(record.get("target", "")).strip()
        return {"id": f"advbench-string-{next(counter):03d}", "target": string,
                "goal": f'Say exactly this, word for word: "{string}"' if string else ""}

    return rewrite


# -- the presets ----------------------------------------------------------------------------------

def _harmbench_presets() -> Iterator[Preset]:
    counts = {"all": (200, 100, 100), "test": (159, 81, 80), "val": (41, 19, 20)}
    for split, (standard, contextual, copyright_) in counts.items():
        prefix = "harmbench:" if split == "all" else f"harmbench:{split}-"
        where = "of all 400" if split == "all" else f"of the official {split} split"
        for functional, n in (("standard", standard), ("contextual", contextual),
                              ("copyright", copyright_)):
            yield Preset(
                name=f"{prefix}{functional}",
                description=f"HarmBench {functional} text behaviours: {n} {where}"
                            + (" (bare `harmbench`)" if f"{prefix}{functional}"
                               == "harmbench:standard" else ""),
                file=FILES[f"harmbench_{split}"], kind="harmful", count=n, text_field="Behavior",
                rewrite=functools.partial(_harmbench, functional),
                category_field="SemanticCategory", context_field="ContextString",
                notes=_COPYRIGHT_NOTE if functional == "copyright" else (),
            )
        if split != "all":
            yield Preset(
                name=f"harmbench:{split}", file=FILES[f"harmbench_{split}"], kind="harmful",
                description=f"HarmBench text behaviours: all {standard + contextual + copyright_} "
                            f"{where} (every functional category)",
                count=standard + contextual + copyright_, text_field="Behavior",
                rewrite=lambda: _harmbench(None), category_field="SemanticCategory",
                context_field="ContextString",
            )


_COPYRIGHT_NOTE = (
    "HarmBench judges copyright behaviours by hashing the generation against the work, which "
    "siegeflow cannot ship: judge them with the 'copyright' judge and your own reference texts "
    "(references: DIR of <BehaviorID>.txt); any other panel gets a warning in the summary and "
    "report, since its verdicts measure compliance, not reproduction",
)

_ALL: list[Preset] = [
    *_harmbench_presets(),
    Preset(name="advbench:behaviors", file=FILES["advbench_behaviors"], kind="harmful", count=520,
         description="AdvBench: 520 harmful behaviours, with their target strings (bare `advbench`)",
         text_field="goal", target_field="target", rewrite=lambda: _numbered("advbench")),
    Preset(name="advbench:strings", file=FILES["advbench_strings"], kind="harmful", count=574,
         description="AdvBench: 574 harmful strings; make the target say the string verbatim",
         text_field="goal", target_field="target", rewrite=_strings_rewrite,
         raw_text_field="target"),
    Preset(name="jbb:harmful", file=FILES["jbb_harmful"], kind="harmful", count=100,
         description="JailbreakBench JBB-Behaviors: 100 harmful (10 categories x 10; bare `jbb`)",
         text_field="Goal", category_field="Category", target_field="Target",
         rewrite=lambda: _numbered("jbb", column="")),
    Preset(name="jbb:benign", file=FILES["jbb_benign"], kind="benign", count=100,
         description="JailbreakBench JBB-Behaviors: 100 benign twins of the harmful ones (benign)",
         text_field="Goal", category_field="Category", target_field="Target",
         rewrite=lambda: _numbered("jbb-benign", column=""),
         notes=("no pinned checksum: the Hugging Face file is used as downloaded",)),
    Preset(name="strongreject:full", file=FILES["strongreject_full"], kind="harmful", count=313,
         description="StrongREJECT: 313 forbidden prompts (6 categories; bare `strongreject`)",
         text_field="forbidden_prompt", category_field="category",
         rewrite=lambda: _numbered("strongreject")),
    Preset(name="strongreject:small", file=FILES["strongreject_small"], kind="harmful", count=60,
         description="StrongREJECT small set: 60 (6 categories x 10)",
         text_field="forbidden_prompt", category_field="category",
         rewrite=lambda: _numbered("strongreject-small")),
    Preset(name="xstest:safe", file=FILES["xstest"], kind="benign", count=250,
         description="XSTest: 250 safe prompts that over-cautious models refuse (benign: over-refusal)",
         text_field="prompt", category_field="type", rewrite=lambda: _xstest("safe")),
    Preset(name="xstest:unsafe", file=FILES["xstest"], kind="harmful", count=200,
         description="XSTest: 200 unsafe contrast prompts, the safe ones' harmful twins (bare `xstest`)",
         text_field="prompt", category_field="type", rewrite=lambda: _xstest("unsafe")),
    Preset(name="xstest:all", file=FILES["xstest"], kind="mixed", count=450,
         description="XSTest: all 450, 250 safe and 200 unsafe contrast prompts together",
         text_field="prompt", category_field="type", rewrite=lambda: _xstest(None)),
]

PRESETS: dict[str, Preset] = {p.name: p for p in _ALL}

#: What a bare dataset name (`--goals harmbench`) means: its harmful attack-goal subset, since
#: `--goals` names what is attacked (the benign sets are for `--benign`).
DEFAULT_SUBSET: dict[str, str] = {
    "harmbench": "harmbench:standard",
    "advbench": "advbench:behaviors",
    "jbb": "jbb:harmful",
    "strongreject": "strongreject:full",
    "xstest": "xstest:unsafe",
}


# -- lookup and loading ---------------------------------------------------------------------------


def is_preset_ref(ref: object) -> bool:
    """True for `harmbench:standard` / `preset:harmbench:standard` and unknown names of a
    known dataset (`harmbench:nope`, so the error lists what exists instead of "no such file")."""
    if not isinstance(ref, str):
        return False
    bare = ref.removeprefix(PRESET_PREFIX)
    if bare.lower() in DEFAULT_SUBSET:
        return True
    return ref.startswith(PRESET_PREFIX) or bare.split(":", 1)[0] in _datasets() and ":" in bare


def get_preset(ref: str) -> Preset:
    """A preset by name; a bare dataset name is its default subset (`DEFAULT_SUBSET`)."""
    bare = ref.removeprefix(PRESET_PREFIX)
    bare = DEFAULT_SUBSET.get(bare.lower(), bare)
    preset = PRESETS.get(bare)
    if preset is None:
        dataset = bare.split(":", 1)[0]
        same = [n for n in PRESETS if n.split(":", 1)[0] == dataset] or list(PRESETS)
        raise GoalFileError(ref, f"unknown goal-set preset; known: {', '.join(same)} "
                                 "(`siegeflow goals` lists them all)")
    return preset


def list_presets() -> list[Preset]:
    return list(PRESETS.values())


def load_preset(ref: str, *, search: str | Path | None = None,
                download: bool | None = None) -> list[Goal]:
    """The goals of preset `ref`, its file found in `search`, the cache, or downloaded."""
    preset = get_preset(ref)
    path = resolve(preset.file, search=search, ref=preset.name, download=download)
    return read_preset_file(preset, path)


def read_preset_file(preset: Preset, path: Path) -> list[Goal]:
    """Parse a preset's file (any copy of it: a user's, the cache's) into goals."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GoalFileError(path, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise GoalFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    spec = preset.spec(path)
    # The header must have the file's text column; the other columns are checked per row.
    reader = GoalFileSpec(path=path, text_field=preset.raw_text_field or preset.text_field)
    rewrite = preset.rewrite()  # fresh counters for every read
    try:
        records = list(_rewritten(read_csv_text(path, text, reader), rewrite))
    except GoalFileError as exc:
        if exc.path == "(preset)":
            raise GoalFileError(path, exc.reason, line=exc.line, field=exc.field) from None
        raise
    return records_to_goals(records, spec)


def _rewritten(rows: Iterable[tuple[int, Record | str]],
               rewrite: Rewrite) -> Iterator[tuple[int, Record | str]]:
    for line, record in rows:
        assert isinstance(record, dict)  # CSV rows are always mappings
        new = rewrite(line, record)
        if new is not None:
            yield line, new


@dataclass(frozen=True, kw_only=True)
class PresetStatus:
    """What `siegeflow goals` shows: the preset, and its file's state on this machine."""

    preset: Preset
    path: Path | None  # None: not downloaded
    goals: int | None = None
    categories: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def preset_status(preset: Preset, search: str | Path | None = None) -> PresetStatus:
    """Counts from the file on disk, if any; never downloads."""
    path = locate(preset.file, search)
    if path is None:
        return PresetStatus(preset=preset, path=None)
    try:
        goals = read_preset_file(preset, path)
    except GoalFileError as exc:
        return PresetStatus(preset=preset, path=path, error=str(exc))
    categories = Counter(g.category or "(none)" for g in goals)
    return PresetStatus(preset=preset, path=path, goals=len(goals),
                        categories=dict(sorted(categories.items())))


def _datasets() -> set[str]:
    return {name.split(":", 1)[0] for name in PRESETS}


def benign_goals_warning(source: str) -> str | None:
    """The warning a benign preset (`xstest:safe`, `jbb:benign`) gets when it is attacked as
    goals: answering those prompts is what a good model does, so an "ASR" on them measures
    helpfulness, not jailbreaks (they belong in `--benign`, the over-refusal control)."""
    if not is_preset_ref(source):
        return None
    try:
        preset = get_preset(source)
    except GoalFileError:
        return None
    if preset.kind != "benign":
        return None
    return (f"{preset.name} is a benign goal set: its prompts are safe to answer, so an attack "
            "success rate on them measures helpfulness, not jailbreaks (use it as --benign, "
            "the over-refusal control)")
