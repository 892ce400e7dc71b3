"""What writes check and lock before changing anything: key format, a reason where the
environment is protected, flag and state rows."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from controlplane.errors import Conflict, InvalidInput
from flags.models import KEY_VALIDATOR, Environment, Flag, FlagState


def check_key(key: str) -> None:
    """Hold keys to the model's format: the ORM does not run field validators on create()."""
    try:
        KEY_VALIDATOR(key)
    except ValidationError as exc:
        raise InvalidInput(
            f"'{key}' is not a valid key.", errors=[{"path": "key", "message": str(exc.message)}]
        ) from None


def require_reason(environment: Environment, reason: str) -> None:
    """A change to what a protected environment serves says why, for the audit entry."""
    if environment.protected and not reason.strip():
        raise InvalidInput(
            f"'{environment.key}' is a protected environment: give a reason for this change.",
            code="reason_required",
            errors=[{"path": "reason", "message": "Required for a change to a protected environment."}],
        )


def lock_flag(flag: Flag) -> Flag:
    return Flag.objects.select_for_update().get(pk=flag.pk)


def lock_state(flag: Flag, environment: Environment) -> FlagState:
    state, _ = FlagState.objects.select_for_update().get_or_create(flag=flag, environment=environment)
    return state


def lock_writable_flag(flag: Flag, *, consequence: str = "") -> Flag:
    """Lock the flag's row and refuse if it is archived: what every write to a flag does first.
    `consequence` completes the refusal (e.g. "it accepts no new versions")."""
    flag = lock_flag(flag)
    if flag.is_archived:
        detail = (
            f"Flag '{flag.key}' is archived; {consequence}."
            if consequence
            else f"Flag '{flag.key}' is archived."
        )
        raise Conflict(detail, code="flag_archived")
    return flag


def writable_state(flag: Flag, environment: Environment) -> FlagState:
    return lock_state(lock_writable_flag(flag), environment)
