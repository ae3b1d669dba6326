"""Security domains, the points an optimizer may touch, and the scope that bounds it.

Every controllable and observable point of a target carries a domain tag. The controller grants
the optimizer a `Scope`: the domains it may inject into, plus domains it may only read. Anything
else never reaches the optimizer, neither as an event nor in its trajectory view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class SecurityDomain(StrEnum):
    """Well-known domain tags. Plain strings are accepted too, for target-specific domains."""

    USER_INPUT = "user_input"
    SYSTEM = "system"
    TOOL_INPUT = "tool_input"
    TOOL_OUTPUT = "tool_output"
    RETRIEVED_DOCUMENT = "retrieved_document"
    MODEL_OUTPUT = "model_output"
    MEMORY = "memory"


Domain = SecurityDomain | str


def domain_name(domain: Domain) -> str:
    """The plain string of a domain tag (so enum members and strings compare the same)."""
    return domain.value if isinstance(domain, SecurityDomain) else str(domain)


@dataclass(frozen=True, kw_only=True)
class Controllable:
    """A point of the target whose value the optimizer may replace (user turn, tool output, ...).

    `read_only=True` marks a point the target never lets anyone overwrite, whatever the scope.
    """

    name: str
    domain: Domain
    description: str = ""
    read_only: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a controllable needs a name")
        object.__setattr__(self, "domain", domain_name(self.domain))


@dataclass(frozen=True, kw_only=True)
class Observable:
    """A point of the target the optimizer may read but never change (model reply, tool call, ...)."""

    name: str
    domain: Domain
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an observable needs a name")
        object.__setattr__(self, "domain", domain_name(self.domain))


def _names(domains: Iterable[Domain]) -> frozenset[str]:
    if isinstance(domains, str):  # a lone "user_input" would otherwise become its characters
        domains = (domains,)
    return frozenset(domain_name(d) for d in domains)


@dataclass(frozen=True, kw_only=True)
class Scope:
    """What the optimizer may touch: `domains` (inject and read) and `read_only` (read only).

    The default scope is empty on purpose: an optimizer sees nothing unless granted.
    """

    domains: frozenset[str] = field(default_factory=frozenset)
    read_only: frozenset[str] = field(default_factory=frozenset)
    unrestricted: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", _names(self.domains))
        object.__setattr__(self, "read_only", _names(self.read_only) - self.domains)

    @classmethod
    def of(cls, *domains: Domain, read_only: Iterable[Domain] = ()) -> Scope:
        return cls(domains=frozenset(domain_name(d) for d in domains), read_only=_names(read_only))

    @classmethod
    def everything(cls) -> Scope:
        """Every domain writable: for trusted, single-domain targets and tests."""
        return cls(unrestricted=True)

    def may_read(self, domain: Domain) -> bool:
        name = domain_name(domain)
        return self.unrestricted or name in self.domains or name in self.read_only

    def may_inject(self, controllable: Controllable) -> bool:
        if controllable.read_only:
            return False
        return self.unrestricted or domain_name(controllable.domain) in self.domains
