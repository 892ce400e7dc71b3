"""What must hold before a version reaches traffic, as the apps above flags declare it.

flags never imports those apps (evals decides whether a version passed its eval gate), so they
register a check here from their AppConfig.ready. Publishing a version, and starting a split
with it as the candidate, ask every registered check inside their transaction and refuse with
the first unmet check's code, naming everything that is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controlplane.errors import Conflict
from flags.models import ConfigVersion, Environment, Flag


@dataclass(frozen=True, slots=True)
class ServingChange:
    """A version about to reach traffic: `publish` serves it to everyone, `split` to a share."""

    flag: Flag
    environment: Environment | None  # None: where the version stands, shown on its pages
    version: ConfigVersion
    action: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """One check's answer; `detail` says why in words a product owner understands."""

    name: str
    met: bool
    detail: str
    code: str = "precondition_unmet"
    missing: list[str] = field(default_factory=list)
    summary: str = ""  # a badge's words: "passed", "overridden", "no verdict"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "met": self.met, "detail": self.detail, "missing": self.missing}


Check = Callable[[ServingChange], Outcome]

_checks: dict[str, Check] = {}


def register(name: str, check: Check) -> None:
    """Register (or replace) the check called `name`; ready() may run more than once."""
    _checks[name] = check


def evaluate(change: ServingChange) -> list[Outcome]:
    return [check(change) for check in _checks.values()]


def describe(*, flag: Flag, version: ConfigVersion) -> list[Outcome]:
    """Where `version` stands with every check, for the pages that show a version."""
    return evaluate(ServingChange(flag=flag, environment=None, version=version, action="show"))


def require(change: ServingChange) -> list[Outcome]:
    """Every check's outcome, for the audit entry; Conflict when one is unmet."""
    outcomes = evaluate(change)
    unmet = [outcome for outcome in outcomes if not outcome.met]
    if unmet:
        raise Conflict(
            " ".join(outcome.detail for outcome in unmet),
            code=unmet[0].code,
            extra={"missing": [item for outcome in unmet for item in outcome.missing]},
        )
    return outcomes
