"""Changes to a protected environment: a confirmation page that asks for a reason first.

A write form posted for a protected environment without `confirmed` comes back as a page that
says what is about to change and where, with the form's fields carried along and a reason to
give; posting that page makes the change, and the service records the reason in the audit
entry. The service itself refuses a protected change without a reason, whatever the caller.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from flags.models import Environment, Flag

CARRIED_OVER_EXCLUDED = frozenset({"csrfmiddlewaretoken", "confirmed", "reason"})


def reason_of(request: HttpRequest) -> str:
    return request.POST.get("reason", "").strip()


def missing_reason(environment: Environment, reason: str, doing: str) -> str | None:
    """For a page whose form carries its reason field (no confirmation page): the words that
    refuse a change to a protected environment made without a reason, e.g. "'production' is
    protected: say why you roll back.", or None when it may go ahead."""
    if environment.protected and not reason:
        return f"'{environment.key}' is protected: say why you {doing}."
    return None


def confirmation(
    request: HttpRequest, flag: Flag, environment: Environment, change: str
) -> HttpResponse | None:
    """The confirmation page for `change`, or None when the change may go ahead now."""
    if not environment.protected:
        return None
    confirmed = request.POST.get("confirmed") == "1"
    if confirmed and reason_of(request):
        return None
    carried = [
        (name, value)
        for name in request.POST
        if name not in CARRIED_OVER_EXCLUDED
        for value in request.POST.getlist(name)
    ]
    context = {
        "flag": flag,
        "environment": environment,
        "change": change,
        "action": request.path,
        "carried": carried,
        "reason": request.POST.get("reason", ""),
        "reason_missing": confirmed,
    }
    return render(request, "flags/confirm.html", context)
