"""The target side's guard around an optimizer session: tells optimizer failures apart.

Every send to the optimizer can fail in ways that are the optimizer's doing (it raised, answered
badly, vanished, never answered) or run out of attacker budget; a target harness can also fail on
its own. `GuardedSession` wraps only the former in `OptimizerFault`, so the optimize flow can end
that goal as an optimizer error (or a budget stop) while a bug elsewhere still surfaces as itself.
"""

from __future__ import annotations

from typing import Any

from optimizers.controller import OptimizerSession
from optimizers.domains import Controllable, Observable
from optimizers.errors import BudgetExhaustedError, ChannelPoisonedError
from optimizers.library.harness import TargetHarness


class OptimizerFault(Exception):
    """A send to the optimizer failed (it raised, answered badly, vanished or timed out)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


class GuardedSession:
    """The session as `RunHooks`, with every failure of the optimizer side wrapped in
    OptimizerFault, so it cannot be mistaken for a failure of the target or our own code."""

    def __init__(self, session: OptimizerSession, harness: TargetHarness) -> None:
        self.session = session
        self._controllables = set(harness.controllables)
        self._observables = set(harness.observables)

    async def _send(self, call: Any) -> Any:
        try:
            return await call
        except (Exception, BaseExceptionGroup) as exc:  # re-raised, typed: see OptimizerFault
            raise OptimizerFault(exc) from exc

    async def run_start(self) -> Any:
        return await self._send(self.session.run_start())

    async def run_end(self, evaluation: Any) -> bool:
        return bool(await self._send(self.session.run_end(evaluation)))

    def _declared(self, point: Any, declared: set[Any]) -> None:
        if point not in declared:  # the harness's bug, not the optimizer's: raise it as is
            raise ValueError(f"{point!r} is not declared by the harness")

    async def pre_call(self, controllable: Controllable, request: Any) -> Any | None:
        self._declared(controllable, self._controllables)
        return await self._send(self.session.pre_call(controllable, request))

    async def post_call(
        self, controllable: Controllable, request: Any, response: Any
    ) -> Any | None:
        self._declared(controllable, self._controllables)
        return await self._send(self.session.post_call(controllable, request, response))

    async def observe(self, observable: Observable, value: Any) -> None:
        self._declared(observable, self._observables)
        await self._send(self.session.observe(observable, value))


def classify_fault(fault: OptimizerFault) -> tuple[str, str | None, BaseException]:
    """(stop_reason, error_kind, root cause) of a failed send; error_kind None: not an error."""
    root = fault.cause
    if isinstance(root, ChannelPoisonedError) and root.__cause__ is not None:
        root = root.__cause__  # what the optimizer raised, not "the channel is poisoned"
    if isinstance(root, BaseExceptionGroup) and root.exceptions:
        root = root.exceptions[0]
    if isinstance(root, BudgetExhaustedError):
        return "attacker_budget", None, root
    if isinstance(fault.cause, TimeoutError):
        return "optimizer_timeout", "optimizer_timeout", root
    return "optimizer_error", "optimizer_error", root
