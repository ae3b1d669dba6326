"""The CLI's judge panel from flags: shared by `run` (cli.runner) and `judges validate`, so
neither imports the other's module."""

from __future__ import annotations

import json
from typing import Any

#: The panel of `run`, `demo` and `judges validate` when no `--judge` is given: the offline
#: judge (its head, with the refusal judge's check for answers the head is less sure of;
#: docs/judges.md).
DEFAULT_JUDGES: tuple[str, ...] = ("offline",)


def judge_specs(names: list[str], judge_model: str | None = None,
                judge_api_base: str | None = None) -> list[dict[str, Any]]:
    """`--judge` values as specs: a name, or a JSON spec (`{"name": "offline", "weights": ...}`);
    `--judge-model` (and `--judge-api-base`) goes to the judges that need a model."""
    from judges import get_judge

    model = None
    if judge_model:
        model = {"model": judge_model, "temperature": 0.0}
        if judge_api_base:
            model["api_base"] = judge_api_base
    specs = []
    for text in names:
        spec: dict[str, Any]
        if text.lstrip().startswith("{"):
            try:
                spec = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"--judge {text!r}: not a JSON judge spec ({exc.msg})") from None
            if not isinstance(spec, dict) or "name" not in spec:
                raise ValueError(f"--judge {text!r}: a JSON judge spec needs a 'name'")
        else:
            spec = {"name": text}
        if model and "model" not in spec and get_judge(str(spec["name"])).needs_model:
            spec["model"] = model
        specs.append(spec)
    return specs
