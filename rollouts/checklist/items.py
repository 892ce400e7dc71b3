"""The checklist's registry: every item, computed or attested, in the order pages show them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from flags.models import ConfigVersion, Environment, Flag


class Kind(StrEnum):
    COMPUTED = "computed"
    ATTESTED = "attested"


class Status(StrEnum):
    PASS = "pass"  # noqa: S105  (a check's outcome, not a password)
    FAIL = "fail"
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True, slots=True)
class Subject:
    """What a checklist is about: a flag × environment about to serve `candidates` (one for a
    rollout, up to three for an experiment) next to `baseline`, the version it serves now."""

    flag: Flag
    environment: Environment
    baseline: ConfigVersion | None
    candidates: tuple[ConfigVersion, ...]
    now: datetime


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    detail: str

    @property
    def green(self) -> bool:
        return self.status != Status.FAIL


def passed(detail: str) -> Verdict:
    return Verdict(Status.PASS, detail)


def failed(detail: str) -> Verdict:
    return Verdict(Status.FAIL, detail)


def not_applicable(detail: str) -> Verdict:
    return Verdict(Status.NOT_APPLICABLE, detail)


Check = Callable[[Subject], Verdict]


@dataclass(frozen=True, slots=True)
class Item:
    key: str
    label: str
    kind: Kind
    check: Check | None = None  # computed items only
    hint: str = ""  # attested items: what the person vouches for


ITEMS: dict[str, Item] = {}


def register(item: Item) -> Item:
    """Add (or replace) an item; computed items carry their check."""
    if (item.kind == Kind.COMPUTED) != (item.check is not None):
        raise ValueError(f"checklist item {item.key}: a computed item has a check, an attested one none")
    ITEMS[item.key] = item
    return item


def computed(key: str, label: str) -> Callable[[Check], Check]:
    """Register the decorated function as the check of a computed item."""

    def decorate(check: Check) -> Check:
        register(Item(key=key, label=label, kind=Kind.COMPUTED, check=check))
        return check

    return decorate


def attested(key: str, label: str, hint: str) -> Item:
    return register(Item(key=key, label=label, kind=Kind.ATTESTED, hint=hint))
