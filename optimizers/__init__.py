"""The optimizer actor interface (spec 004): the attacker side of a red-teaming run.

Importing this package is cheap: litellm is only imported when an LLMClient makes a call.
"""

from optimizers.base import Optimizer
from optimizers.channel import EventChannel, EventEnvelope
from optimizers.controller import OptimizerSession, run_optimizer_actor
from optimizers.domains import Controllable, Domain, Observable, Scope, SecurityDomain
from optimizers.errors import (
    BudgetExhaustedError,
    ChannelClosedError,
    ChannelError,
    ChannelPoisonedError,
    EnvelopeAlreadyAnsweredError,
    InvalidResponseError,
    OptimizerExitedError,
    OptimizerFailedError,
)
from optimizers.events import (
    ControllableInjection,
    ControllableNoInjection,
    ControllablePostCallEvent,
    ControllablePreCallEvent,
    Evaluation,
    Event,
    EventResponse,
    ObservableEvent,
    RunEndEvent,
    RunEndResponse,
    RunStartEvent,
)
from optimizers.llm import LLMClient, LLMUsage
from optimizers.middleware import Middleware, Send, compose, recording, scoped
from optimizers.trajectory import (
    FilteredTrajectory,
    ReadableTrajectory,
    Trajectory,
    TrajectoryEntry,
)

__all__ = [
    "BudgetExhaustedError", "ChannelClosedError", "ChannelError", "ChannelPoisonedError",
    "Controllable", "ControllableInjection", "ControllableNoInjection",
    "ControllablePostCallEvent", "ControllablePreCallEvent", "Domain",
    "EnvelopeAlreadyAnsweredError", "Evaluation", "Event", "EventChannel", "EventEnvelope",
    "EventResponse", "FilteredTrajectory", "InvalidResponseError", "LLMClient", "LLMUsage",
    "Middleware", "Observable", "ObservableEvent", "Optimizer", "OptimizerExitedError",
    "OptimizerFailedError", "OptimizerSession", "ReadableTrajectory", "RunEndEvent",
    "RunEndResponse", "RunStartEvent", "Scope", "SecurityDomain", "Send", "Trajectory",
    "TrajectoryEntry", "compose", "recording", "run_optimizer_actor", "scoped",
]
