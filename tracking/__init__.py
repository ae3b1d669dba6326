"""siegeflow tracking: runs, per-goal results and ordered traces, on a SQLModel store.

Entry points: ``TrackingCoordinator`` (spec 000) for an attack, ``StepTracker`` (spec 001)
for a pipeline step, ``SQLBackend`` / ``get_backend`` for the store (SQLite file by default,
PostgreSQL by URL), ``redact`` for secret scrubbing. Each module's docstring records the
choices made where the specs are silent.

The names below load on first use (PEP 562): `runs list` or `export` need the store, not the
coordinator, step tracker or writer, and `from tracking.rows import ...` should not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracking.categories import CategoryClassifier
    from tracking.context import Context, GoalSpec, TrackingContext
    from tracking.coordinator import TrackingCoordinator
    from tracking.engine import DB_URL_ENV, StoreUrlError, check_store_url, default_db_url
    from tracking.enums import EvaluationStatusEnum, StatusEnum
    from tracking.guard import EventPublisher, TrackingErrors
    from tracking.models import (
        AttemptRecord,
        JudgeValidationRecord,
        JudgmentRecord,
        ResultRecord,
        RunRecord,
        TraceRecord,
    )
    from tracking.redaction import RedactingFilter, redact, redact_json, redact_text
    from tracking.rows import JudgeCell, NewAttempt, NewResult, PipelineRow, ResultUpdate
    from tracking.step import StepRecord, StepTracker
    from tracking.store import SQLBackend, StoreUnavailableError, check_store, get_backend, open_store
    from tracking.success import (
        attack_success_rate,
        classify_row,
        decide_goal,
        is_successful,
        row_verdict,
    )
    from tracking.summary import (
        BENIGN,
        OVER_REFUSAL,
        BestOfNSummary,
        CorrectedRate,
        GoalCounts,
        JudgeCorrection,
        OverRefusal,
        RunSummary,
        StepSummary,
        TechniqueFigures,
        is_benign,
        technique_figures,
    )
    from tracking.tracker import Tracker
    from tracking.writer import TraceWriteError, WriteFailure

_HOMES: dict[str, str] = {  # exported name -> the module defining it
    "CategoryClassifier": "tracking.categories",
    "Context": "tracking.context",
    "GoalSpec": "tracking.context",
    "TrackingContext": "tracking.context",
    "TrackingCoordinator": "tracking.coordinator",
    "DB_URL_ENV": "tracking.engine",
    "StoreUrlError": "tracking.engine",
    "check_store_url": "tracking.engine",
    "default_db_url": "tracking.engine",
    "EvaluationStatusEnum": "tracking.enums",
    "StatusEnum": "tracking.enums",
    "EventPublisher": "tracking.guard",
    "TrackingErrors": "tracking.guard",
    "AttemptRecord": "tracking.models",
    "JudgeValidationRecord": "tracking.models",
    "JudgmentRecord": "tracking.models",
    "ResultRecord": "tracking.models",
    "RunRecord": "tracking.models",
    "TraceRecord": "tracking.models",
    "RedactingFilter": "tracking.redaction",
    "redact": "tracking.redaction",
    "redact_json": "tracking.redaction",
    "redact_text": "tracking.redaction",
    "JudgeCell": "tracking.rows",
    "NewAttempt": "tracking.rows",
    "NewResult": "tracking.rows",
    "PipelineRow": "tracking.rows",
    "ResultUpdate": "tracking.rows",
    "StepRecord": "tracking.step",
    "StepTracker": "tracking.step",
    "SQLBackend": "tracking.store",
    "StoreUnavailableError": "tracking.store",
    "check_store": "tracking.store",
    "get_backend": "tracking.store",
    "open_store": "tracking.store",
    "attack_success_rate": "tracking.success",
    "classify_row": "tracking.success",
    "decide_goal": "tracking.success",
    "is_successful": "tracking.success",
    "row_verdict": "tracking.success",
    "BENIGN": "tracking.summary",
    "OVER_REFUSAL": "tracking.summary",
    "BestOfNSummary": "tracking.summary",
    "CorrectedRate": "tracking.summary",
    "GoalCounts": "tracking.summary",
    "JudgeCorrection": "tracking.summary",
    "OverRefusal": "tracking.summary",
    "RunSummary": "tracking.summary",
    "StepSummary": "tracking.summary",
    "TechniqueFigures": "tracking.summary",
    "is_benign": "tracking.summary",
    "technique_figures": "tracking.summary",
    "Tracker": "tracking.tracker",
    "TraceWriteError": "tracking.writer",
    "WriteFailure": "tracking.writer",
}

__all__ = [
    "BENIGN",
    "TechniqueFigures",
    "technique_figures",
    "BestOfNSummary",
    "CorrectedRate",
    "OVER_REFUSAL",
    "is_benign",
    "DB_URL_ENV",
    "AttemptRecord",
    "CategoryClassifier",
    "Context",
    "EvaluationStatusEnum",
    "EventPublisher",
    "GoalCounts",
    "JudgeCorrection",
    "GoalSpec",
    "JudgeValidationRecord",
    "JudgmentRecord",
    "JudgeCell",
    "NewAttempt",
    "NewResult",
    "PipelineRow",
    "RedactingFilter",
    "ResultRecord",
    "ResultUpdate",
    "OverRefusal",
    "RunRecord",
    "RunSummary",
    "SQLBackend",
    "StoreUnavailableError",
    "StoreUrlError",
    "check_store",
    "open_store",
    "StatusEnum",
    "StepRecord",
    "StepSummary",
    "StepTracker",
    "TraceRecord",
    "TraceWriteError",
    "Tracker",
    "TrackingContext",
    "TrackingCoordinator",
    "TrackingErrors",
    "WriteFailure",
    "attack_success_rate",
    "check_store_url",
    "classify_row",
    "is_successful",
    "decide_goal",
    "default_db_url",
    "get_backend",
    "redact",
    "redact_json",
    "redact_text",
    "row_verdict",
]


if not TYPE_CHECKING:  # hidden from mypy, so it checks each `from tracking import X` above

    def __getattr__(name: str) -> object:
        """Import the module defining an exported name on first access, then keep the name."""
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module 'tracking' has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
