"""Errors raised across the optimizer actor boundary.

They are few and specific so the controller can tell "the optimizer refused this event" from
"the channel is gone" from "the attacker ran out of money" without parsing messages.
"""

from __future__ import annotations


class ChannelError(RuntimeError):
    """Base of every failure that comes from the channel itself (not from the optimizer's logic)."""


class ChannelClosedError(ChannelError):
    """`send` after `close()`, or `receive` on a closed channel whose queue is drained."""


class ChannelPoisonedError(ChannelClosedError):
    """The controller (or the actor wrapper) called `set_error`; `__cause__` is that error.

    A subclass of ChannelClosedError because a poisoned channel is also closed: receivers stop.
    """


class InvalidResponseError(ChannelError, TypeError):
    """A response that does not answer its envelope's event (wrong type, wrong event, wrong controllable)."""


class EnvelopeAlreadyAnsweredError(ChannelError):
    """`respond`/`reject` called on an envelope the receiver already answered."""


class OptimizerFailedError(RuntimeError):
    """The optimizer actor raised (or did not stop in time); `__cause__` holds the original error."""


class OptimizerExitedError(ChannelError):
    """The optimizer's `run()` returned while events were still waiting for an answer."""


class BudgetExhaustedError(RuntimeError):
    """The LLMClient refused a call because the money already spent reached `max_cost`."""

    def __init__(self, *, spent_usd: float, max_cost_usd: float) -> None:
        super().__init__(
            f"LLM budget exhausted: spent ${spent_usd:.6f} of ${max_cost_usd:.6f}"
        )
        self.spent_usd = spent_usd
        self.max_cost_usd = max_cost_usd
