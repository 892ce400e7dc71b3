"""Targeting: a flag's section per environment and its actions on rules, the split and a tried context."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError, NotFound
from controlplane.web import HtmxHttpRequest, add_domain_error, ui_actor
from flags import services
from flags.forms import RuleEditForm, RuleForm, RuleMoveForm, SplitForm, TryContextForm
from flags.lookups import get_environment, get_flag
from flags.models import ConfigVersion, Environment, Flag, FlagState, Segment, Split
from flags.targeting import control_band, rules_tag, try_context
from flags.views.access import can_write, writable_flag
from flags.views.constraints import describe_constraint
from flags.views.protected import confirmation, reason_of

# Targeting: per environment, the rules, the split and "try a context" form one section, shown
# on the flag page and, alone, on its own page (without JavaScript) or as the htmx response of
# every action in it. Segments have their own pages.


def _percent(weight: int) -> str:
    return f"{weight / 100:g} %"


def _split_box(split: Split | None, serving: int | None) -> dict[str, Any] | None:
    if split is None:
        return None
    if split.candidate is None:
        return {
            "split": split,
            "arms": [
                {"name": arm.name, "version": arm.version.number, "percent": _percent(arm.weight)}
                for arm in split.arms.all()
            ],
            "seed_prefix": split.seed[:6],
        }
    band = control_band(split.weight)
    return {
        "split": split,
        "candidate": split.candidate.number,
        "percent": _percent(split.weight),
        "seed_prefix": split.seed[:6],
        "control": f"control: next {_percent(band[1] - band[0])}, served v{serving}" if band else None,
    }


def _targeting_section(
    flag: Flag,
    environment: Environment,
    state: FlagState | None,
    split: Split | None,
    versions: list[int],
    segments: list[str],
    **parts: Any,
) -> dict[str, Any]:
    serving = state.serving_version.number if state and state.serving_version else None
    rules = state.rules if state else []
    split_initial = (
        {"candidate": split.candidate.number, "percent": Decimal(split.weight) / 100}
        if split and split.candidate
        else {}
    )
    ids = _form_ids(environment)
    return {
        "environment": environment,
        # A protected environment's forms post as pages: the change goes through a confirmation.
        "live": not environment.protected,
        "serving": serving,
        "enabled": bool(state and state.enabled),
        "rules_tag": rules_tag(rules),
        "rules": [
            {
                **rule,
                "index": index,
                "described": [describe_constraint(c) for c in rule.get("constraints", [])],
            }
            for index, rule in enumerate(rules)
        ],
        "split": _split_box(split, serving),
        "rule_form": parts.get("rule_form") or RuleForm(versions=versions, segments=segments, auto_id=ids),
        "split_form": parts.get("split_form")
        or SplitForm(versions=versions, serving=serving, initial=split_initial, auto_id=ids),
        "try_form": parts.get("try_form") or TryContextForm(auto_id=ids),
        "tried": parts.get("tried"),
        "notice": parts.get("notice"),
        "notice_is_error": parts.get("notice_is_error", False),
    }


def targeting_sections(flag: Flag, states: dict[int, FlagState]) -> list[dict[str, Any]]:
    """Every environment's targeting section of the flag page, in a fixed number of queries."""
    splits = {
        split.environment_id: split
        for split in Split.objects.active().filter(flag=flag).select_related("candidate")
    }
    versions, segments = _version_numbers(flag), _segment_keys()
    return [
        _targeting_section(flag, env, states.get(env.pk), splits.get(env.pk), versions, segments)
        for env in Environment.objects.by_key()
    ]


def _form_ids(environment: Environment) -> str:
    """Element ids per environment: the flag page holds one set of these forms per environment."""
    return f"id_{environment.key}_%s"


def _version_numbers(flag: Flag) -> list[int]:
    return list(ConfigVersion.objects.for_flag(flag).values_list("number", flat=True))


def _segment_keys() -> list[str]:
    return list(Segment.objects.order_by("key").values_list("key", flat=True))


def _targeting_response(
    request: HtmxHttpRequest, flag: Flag, environment: Environment, **parts: Any
) -> HttpResponse:
    """The section alone for htmx, else the targeting page around it."""
    state = FlagState.objects.current(flag, environment)
    split = Split.objects.active_for(flag, environment)
    section = _targeting_section(
        flag, environment, state, split, _version_numbers(flag), _segment_keys(), **parts
    )
    context = {"flag": flag, "can_write": can_write(request, flag), "t": section}
    return render(request, "flags/_targeting.html" if request.htmx else "flags/targeting.html", context)


def _targeting_done(
    request: HtmxHttpRequest, flag: Flag, environment: Environment, notice: str, *, error: bool = False
) -> HttpResponse:
    """After an action: the refreshed section for htmx, else back to the flag page with a message."""
    if request.htmx:
        return _targeting_response(request, flag, environment, notice=notice, notice_is_error=error)
    (messages.error if error else messages.success)(request, notice)
    return redirect(reverse("flags:detail", args=[flag.key]) + f"#targeting-{environment.key}")


def _shown_rules(request: HtmxHttpRequest) -> str | None:
    """The tag of the rules the page showed when the form was posted: rule buttons address rules
    by position, so a change must not land on a list someone else has changed meanwhile."""
    return request.POST.get("rules_tag") or None


def _change_rules(
    request: HtmxHttpRequest,
    flag: Flag,
    environment: Environment,
    change: Callable[..., FlagState],
    notice: str,
    *,
    described: str,
    **fields: Any,
) -> HttpResponse:
    """One change to the rules the page showed (`described` on the confirmation page of a
    protected environment), then the section with `notice` or the refusal."""
    if page := confirmation(request, flag, environment, described):
        return page
    try:
        change(
            flag=flag,
            environment=environment,
            actor=ui_actor(request),
            expected_rules=_shown_rules(request),
            reason=reason_of(request),
            **fields,
        )
    except DomainError as error:
        return _targeting_done(request, flag, environment, error.detail, error=True)
    return _targeting_done(request, flag, environment, notice)


@login_required
def targeting(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    return _targeting_response(request, get_flag(key), get_environment(env))


@login_required
@require_POST
def rule_add(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    flag, environment = writable_flag(request, key), get_environment(env)
    form = RuleForm(
        request.POST,
        versions=_version_numbers(flag),
        segments=_segment_keys(),
        auto_id=_form_ids(environment),
    )
    if form.is_valid():
        rule = form.rule()
        if page := confirmation(request, flag, environment, f"Add a rule serving v{rule['version']}"):
            return page
        try:
            state = services.add_rule(
                flag=flag,
                environment=environment,
                actor=ui_actor(request),
                reason=reason_of(request),
                # A rule added last stays last whatever changed; one put at a position is put
                # among the rules the page showed.
                expected_rules=None if rule["position"] is None else _shown_rules(request),
                **rule,
            )
        except DomainError as error:
            add_domain_error(form, error)
        else:
            notice = f"Added a rule serving v{form.cleaned_data['version']}; {len(state.rules)} rule(s) now."
            return _targeting_done(request, flag, environment, notice)
    return _targeting_response(request, flag, environment, rule_form=form)


@login_required
def rule_edit(request: HtmxHttpRequest, key: str, env: str, index: int) -> HttpResponse:
    """A rule's page to change it in place (constraints, segments, version, description)."""
    flag, environment = writable_flag(request, key), get_environment(env)
    state = FlagState.objects.filter(flag=flag, environment=environment).first()
    rules = state.rules if state else []
    if not 0 <= index < len(rules):
        raise NotFound(f"Flag '{flag.key}' has no rule {index + 1} in '{environment.key}'.")
    form = RuleEditForm(
        request.POST or None,
        versions=_version_numbers(flag),
        segments=_segment_keys(),
        initial=RuleEditForm.initial_for(rules[index]),
    )
    if form.is_valid():
        rule = form.rule()
        del rule["position"]
        if page := confirmation(request, flag, environment, f"Change rule {index + 1}"):
            return page
        try:
            services.update_rule(
                flag=flag,
                environment=environment,
                index=index,
                actor=ui_actor(request),
                expected_rules=_shown_rules(request),
                reason=reason_of(request),
                **rule,
            )
        except DomainError as error:
            add_domain_error(form, error)
        else:
            return _targeting_done(request, flag, environment, f"Changed rule {index + 1}.")
    context = {
        "flag": flag,
        "environment": environment,
        "index": index,
        "form": form,
        "rules_tag": rules_tag(rules),
    }
    return render(request, "flags/rule_edit.html", context)


@login_required
@require_POST
def rule_move(request: HtmxHttpRequest, key: str, env: str, index: int) -> HttpResponse:
    flag, environment = writable_flag(request, key), get_environment(env)
    form = RuleMoveForm(request.POST)
    if not form.is_valid():
        return _targeting_done(request, flag, environment, "Choose where to move the rule.", error=True)
    to_index = form.cleaned_data["to"]
    notice = f"Moved rule {index + 1} to position {to_index + 1}."
    return _change_rules(
        request,
        flag,
        environment,
        services.move_rule,
        notice,
        described=f"Move rule {index + 1} to position {to_index + 1}",
        index=index,
        to_index=to_index,
    )


@login_required
@require_POST
def rule_remove(request: HtmxHttpRequest, key: str, env: str, index: int) -> HttpResponse:
    flag, environment = writable_flag(request, key), get_environment(env)
    notice = f"Removed rule {index + 1}."
    described = f"Remove rule {index + 1}"
    return _change_rules(
        request, flag, environment, services.remove_rule, notice, described=described, index=index
    )


@login_required
@require_POST
def split_set(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    flag, environment = writable_flag(request, key), get_environment(env)
    state = FlagState.objects.current(flag, environment)
    serving = state.serving_version.number if state and state.serving_version else None
    form = SplitForm(
        request.POST, versions=_version_numbers(flag), serving=serving, auto_id=_form_ids(environment)
    )
    if form.is_valid():
        data = form.cleaned_data
        change = f"Serve v{data['candidate']} to {_percent(form.weight)} of units"
        if page := confirmation(request, flag, environment, change):
            return page
        try:
            split = services.set_split(
                flag=flag,
                environment=environment,
                candidate=data["candidate"],
                weight=form.weight,
                actor=ui_actor(request),
                reason=reason_of(request),
            )
        except DomainError as error:
            add_domain_error(form, error)
        else:
            notice = (
                f"v{data['candidate']} now serves {_percent(split.weight)} of units in '{environment.key}'."
            )
            return _targeting_done(request, flag, environment, notice)
    return _targeting_response(request, flag, environment, split_form=form)


@login_required
@require_POST
def split_clear(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    flag, environment = writable_flag(request, key), get_environment(env)
    if page := confirmation(request, flag, environment, "Clear the split: everyone gets the serving version"):
        return page
    try:
        cleared = services.clear_split(
            flag=flag, environment=environment, actor=ui_actor(request), reason=reason_of(request)
        )
    except DomainError as error:
        return _targeting_done(request, flag, environment, error.detail, error=True)
    notice = (
        "Split cleared: everyone gets the serving version." if cleared else "There was no split to clear."
    )
    return _targeting_done(request, flag, environment, notice)


@login_required
@require_POST
def try_context_view(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    """Evaluate a context on the current targeting; a read, open to every role."""
    flag, environment = get_flag(key), get_environment(env)
    form = TryContextForm(request.POST, auto_id=_form_ids(environment))
    tried = None
    if form.is_valid():
        try:
            tried = try_context(flag=flag, environment=environment, context=form.cleaned_data["context"])
        except DomainError as error:
            add_domain_error(form, error)
    return _targeting_response(request, flag, environment, try_form=form, tried=tried)
