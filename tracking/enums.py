"""Status vocabularies shared by the store, the trackers and the reports.

Both are ``StrEnum``s so a value read back from the database compares equal to the member
(``"COMPLETED" == StatusEnum.COMPLETED``) and serialises to JSON without help.
"""

from __future__ import annotations

from enum import StrEnum


class StatusEnum(StrEnum):
    """Lifecycle of a run (and of a pipeline step): PENDING -> RUNNING -> a terminal state."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """Terminal states are never left by the trackers (a resume creates the way back)."""
        return self in (StatusEnum.COMPLETED, StatusEnum.FAILED, StatusEnum.CANCELLED)


class EvaluationStatusEnum(StrEnum):
    """Outcome of one goal (one result row)."""

    NOT_EVALUATED = "NOT_EVALUATED"
    SUCCESSFUL_JAILBREAK = "SUCCESSFUL_JAILBREAK"
    FAILED_JAILBREAK = "FAILED_JAILBREAK"
    ERROR_AGENT_RESPONSE = "ERROR_AGENT_RESPONSE"
    ERROR_TEST_FRAMEWORK = "ERROR_TEST_FRAMEWORK"

    @property
    def is_final(self) -> bool:
        return self is not EvaluationStatusEnum.NOT_EVALUATED

    @property
    def is_error(self) -> bool:
        """Error outcomes are excluded from the attack-success-rate denominator."""
        return self in (
            EvaluationStatusEnum.ERROR_AGENT_RESPONSE,
            EvaluationStatusEnum.ERROR_TEST_FRAMEWORK,
        )
