"""siegeflow tracking: runs, per-goal results and ordered traces, on a SQLModel store.

Entry points: ``TrackingCoordinator`` (spec 000) for an attack, ``StepTracker`` (spec 001)
for a pipeline step, ``SQLBackend`` / ``get_backend`` for the store (SQLite file by default,
PostgreSQL by URL), ``redact`` for secret scrubbing. Each module's docstring records the
choices made where the specs are silent.
"""

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
