"""How a run names its judges: the panel plus its latest validated agreement with human labels.

Every headline ASR cites the panel that decided it, e.g. "offline: 84% agreement with human
labels (κ 0.66), n=596, HarmBench val", or says "not validated". The figure comes from the
tracking store (`siegeflow judges validate` saves the latest one per panel) or, failing that,
from the figures shipped with siegeflow for its own judges (`judges/data/validations.json`,
made by `bench/judge_bench.py`). A panel of refusal-type judges only is flagged: its ASR
measures non-refusal, not harm.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracking.store import SQLBackend

Lookup = Callable[[str], Any]
REFUSAL_ONLY_NOTE = "the panel only detects refusals: this ASR measures non-refusal, not harm"


def _spec_dict(spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"name": spec, "label": None, "options": {}}
    data = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else dict(spec)
    flat = {k: v for k, v in data.items() if k not in ("name", "label", "options")}
    return {"name": data.get("name"), "label": data.get("label"),
            "options": {**(data.get("options") or {}), **flat}}


def panel_key(judges: Sequence[Any], rule: str) -> str:
    """The canonical key of a panel: its judge specs (name, label, options — model configs
    name env vars, never hold keys) sorted, and its rule (irrelevant, so dropped, for one
    judge). Every run with the same panel shares the key, so one validation serves them all."""
    specs = sorted((_spec_dict(s) for s in judges), key=lambda s: s["label"] or s["name"] or "")
    return json.dumps({"judges": specs, "rule": rule if len(specs) > 1 else "single"},
                      sort_keys=True, separators=(",", ":"))


def panel_digest(key: str) -> str:
    """The store's key for a panel: a sha256 prefix of its canonical key."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def panel_name(judges: Sequence[Any], rule: str) -> str:
    names = [s["label"] or s["name"] for s in map(_spec_dict, judges)]
    return " + ".join(names) + (f" ({rule})" if len(names) > 1 else "")


#: `Judge.measures` of each shipped judge, so citing a stored run's panel (`runs list`, `runs
#: show`) does not import every judge and `targets`; a test holds it equal to the registry.
SHIPPED_MEASURES: dict[str, str] = {
    "copyright": "harm", "harmbench": "harm", "jailbreakbench": "harm", "offline": "harm",
    "pair_rating": "harm", "refusal": "non-refusal", "strongreject": "harm", "template": "harm",
}


def measures(name: str) -> str:
    """What the judge `name` measures: "harm", "non-refusal", or "unknown" for no such judge."""
    if name in SHIPPED_MEASURES:
        return SHIPPED_MEASURES[name]
    from judges.registry import JudgeError, get_judge

    try:
        return get_judge(name).measures
    except JudgeError:
        return "unknown"


def refusal_only(judges: Sequence[Any]) -> bool:
    """True when every judge of the panel only detects refusals (no judgement of harm)."""
    kinds = [measures(str(spec["name"])) for spec in map(_spec_dict, judges)]
    return bool(kinds) and all(kind == "non-refusal" for kind in kinds)


@dataclass(frozen=True, kw_only=True)
class Citation:
    """The panel's name and, when validated, its agreement with human labels."""

    panel: str
    n: int | None = None
    accuracy: float | None = None
    kappa: float | None = None
    source: str | None = None
    origin: str | None = None  # "this store" or "shipped with siegeflow"
    refusal_only: bool = False

    @property
    def validated(self) -> bool:
        return self.n is not None and self.accuracy is not None

    def text(self) -> str:
        if self.validated:
            kappa = "" if self.kappa is None else f" (κ {self.kappa:.2f})"
            where = f", {self.source}" if self.source else ""
            out = (f"{self.panel}: {self.accuracy:.0%} agreement with human labels{kappa}, "
                   f"n={self.n}{where}")
        else:
            out = f"{self.panel}: not validated against human labels"
        return out + (f" — {REFUSAL_ONLY_NOTE}" if self.refusal_only else "")

    def as_dict(self) -> dict[str, Any]:
        return {"panel": self.panel, "validated": self.validated, "n": self.n,
                "accuracy": self.accuracy, "kappa": self.kappa, "source": self.source,
                "origin": self.origin, "refusal_only": self.refusal_only, "text": self.text()}


def cite(judges: Sequence[Any], rule: str = "majority", lookup: Lookup | None = None) -> Citation:
    """The citation of a panel; `lookup(digest)` reads the store (e.g.
    `SQLBackend.get_validation`), then the shipped figures are tried."""
    key = panel_key(judges, rule)
    panel, refusal = panel_name(judges, rule), refusal_only(judges)
    record = lookup(panel_digest(key)) if lookup is not None else None
    if record is not None:
        return Citation(n=_get(record, "n"), accuracy=_get(record, "accuracy"),
                        kappa=_get(record, "kappa"), source=_get(record, "source"),
                        origin="this store", panel=panel, refusal_only=refusal)
    shipped = shipped_validations().get(key)
    if shipped is not None:
        return Citation(n=shipped["n"], accuracy=shipped["accuracy"], kappa=shipped["kappa"],
                        source=shipped["short_source"], origin="shipped with siegeflow",
                        panel=panel, refusal_only=refusal)
    return Citation(panel=panel, refusal_only=refusal)


def cite_run(parameters: Mapping[str, Any] | None, lookup: Lookup | None = None) -> Citation:
    """The citation of a recorded run's panel, from its stored parameters."""
    panel = (parameters or {}).get("judges") or {}
    judges = panel.get("judges") or ["refusal"]
    return cite(judges, panel.get("rule", "majority"), lookup)


def store_lookup(backend: SQLBackend | None) -> Lookup | None:
    """`backend.get_validation` when the store has it (none, or a test's fake, may not)."""
    return getattr(backend, "get_validation", None)


def _get(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)


@lru_cache(maxsize=1)
def shipped_validations() -> dict[str, dict[str, Any]]:
    """Canonical panel key -> the shipped figure (bench/judge_bench.py wrote the file)."""
    try:
        text = resources.files("judges").joinpath("data/validations.json").read_text("utf-8")
    except FileNotFoundError:
        return {}
    return {entry["panel_key"]: entry for entry in json.loads(text)["validations"]}
