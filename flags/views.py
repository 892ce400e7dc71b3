"""Pages of the flags app: flags, environments, the version editor, versions, diffs, models."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from itertools import groupby, zip_longest
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError, NotFound
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.views import HtmxHttpRequest, add_domain_error, render_page, require_scope, ui_actor
from flags import services
from flags.diff import CollectionDiff, ConfigDiff, DiffLine, diff_configs
from flags.forms import (
    EnvironmentForm,
    FlagForm,
    PublishForm,
    RuleForm,
    RuleMoveForm,
    SegmentCreateForm,
    SegmentForm,
    SplitForm,
    TryContextForm,
    VersionForm,
    starter_content,
)
from flags.lookups import get_environment, get_flag, get_segment, get_version
from flags.models import ClaudeModel, ConfigVersion, Environment, Flag, FlagState, Lifecycle, Segment, Split
from flags.targeting import control_band, try_context
from flagstaff.render import RenderError, render_request

KIND_LABELS = {
    "model_swap": "Model swap",
    "prompt_edit": "Prompt edit",
    "tool_set_change": "Tool set change",
    "mcp_change": "MCP change",
    "subagent_change": "Subagent change",
    "parameter_change": "Parameter change",
    "cache_prefix_changed": "Cache prefix changed",
    "no_change": "No change",
}
# Column label and the (token type, tier) prices it shows; input and output come first.
PRICE_COLUMNS = (
    ("Input", (("input", "standard"),)),
    ("Output", (("output", "standard"),)),
    ("Cache write 5m / 1h", (("cache_write_5m", "standard"), ("cache_write_1h", "standard"))),
    ("Cache read", (("cache_read", "standard"),)),
    ("Batch in / out", (("input", "batch"), ("output", "batch"))),
)
LIFECYCLE_ORDER: dict[str, int] = {Lifecycle.ACTIVE: 0, Lifecycle.DEPRECATED: 1, Lifecycle.RETIRED: 2}


def _can_write(request: HttpRequest, flag: Flag | None = None) -> bool:
    return Scope.WRITE in scopes_for_user(request.user) and not (flag and flag.is_archived)


def _writable_flag(request: HttpRequest, key: str) -> Flag:
    require_scope(request, Scope.WRITE)
    return get_flag(key)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _shown(value: Any) -> str:
    """A diff value as text; the diff uses None for a value that is absent."""
    if value is None:
        return "(absent)"
    return value if isinstance(value, str) else _pretty(value)


def _number(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        raise NotFound(f"'{value}' is not a version number.")
    return int(value)


def _list_page(
    request: HtmxHttpRequest,
    flag_form: FlagForm | None = None,
    environment_form: EnvironmentForm | None = None,
) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    context = {
        "query": query,
        "flags": Flag.objects.active().search(query).with_states(),
        "environments": Environment.objects.by_key(),
        "flag_form": flag_form or FlagForm(),
        "environment_form": environment_form or EnvironmentForm(),
        "can_write": _can_write(request),
    }
    return render_page(request, "flags/list.html", context)


@login_required
def flag_list(request: HtmxHttpRequest) -> HttpResponse:
    form = FlagForm(request.POST or None)
    if request.method == "POST":
        require_scope(request, Scope.WRITE)
        if form.is_valid():
            try:
                flag = services.create_flag(actor=ui_actor(request), **form.cleaned_data)
            except DomainError as error:
                add_domain_error(form, error)
            else:
                messages.success(request, f"Created flag '{flag.key}'. Write its first version next.")
                return redirect("flags:detail", key=flag.key)
    return _list_page(request, flag_form=form)


@login_required
@require_POST
def environment_create(request: HtmxHttpRequest) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    form = EnvironmentForm(request.POST)
    if form.is_valid():
        try:
            environment = services.create_environment(actor=ui_actor(request), **form.cleaned_data)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, f"Created environment '{environment.key}'.")
            return redirect("flags:list")
    return _list_page(request, environment_form=form)


@login_required
def flag_detail(request: HttpRequest, key: str) -> HttpResponse:
    flag = get_flag(key)
    states = {state.environment_id: state for state in flag.states.select_related("serving_version")}
    versions = list(ConfigVersion.objects.for_flag(flag).defer("content"))
    context = {
        "flag": flag,
        "environments": [(env, states.get(env.pk)) for env in Environment.objects.by_key()],
        "versions": versions,
        "can_write": _can_write(request, flag),
        "targeting": targeting_sections(flag, states),
    }
    return render(request, "flags/detail.html", context)


@login_required
@require_POST
def publish(request: HttpRequest, key: str, env: str) -> HttpResponse:
    flag, environment = _writable_flag(request, key), get_environment(env)
    form = PublishForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a version to publish.")
        return redirect("flags:detail", key=flag.key)
    number = form.cleaned_data["version"]
    try:
        services.publish_version(flag=flag, environment=environment, number=number, actor=ui_actor(request))
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, f"'{environment.key}' now serves v{number}.")
    return redirect("flags:detail", key=flag.key)


@login_required
@require_POST
def set_enabled(request: HttpRequest, key: str, env: str, enabled: bool) -> HttpResponse:
    flag, environment = _writable_flag(request, key), get_environment(env)
    try:
        services.set_flag_enabled(
            flag=flag, environment=environment, enabled=enabled, actor=ui_actor(request)
        )
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(
            request, f"'{flag.key}' is {'enabled' if enabled else 'disabled'} in '{environment.key}'."
        )
    return redirect("flags:detail", key=flag.key)


def _editor_start(flag: Flag, from_number: int | None) -> dict[str, Any]:
    """Start from the chosen version, else the latest, else a template for the flag's surface."""
    if from_number is not None:
        source: ConfigVersion | None = get_version(flag, from_number)
    else:
        source = ConfigVersion.objects.for_flag(flag).first()
    content = source.content if source else starter_content(flag.surface)
    return {"content": _pretty(content), "parent": source.number if source else None}


@login_required
def version_new(request: HtmxHttpRequest, key: str) -> HttpResponse:
    flag = _writable_flag(request, key)
    initial = _editor_start(flag, _number(request.GET.get("from")))
    form = VersionForm(request.POST or None, flag=flag, initial=initial)
    if form.is_valid() and form.saving:
        data = form.cleaned_data
        try:
            created = services.create_version(
                flag=flag,
                content=data["content"],
                message=data["message"],
                parent_number=data["parent"],
                actor=ui_actor(request),
            )
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, f"Saved {flag.key} v{created.version.number}.")
            return redirect("flags:version", key=flag.key, number=created.version.number)
    return render_page(request, "flags/version_new.html", {"flag": flag, "form": form})


def _rendered_request(content: dict[str, Any]) -> dict[str, Any]:
    """What services will send for this content, with secret references left as placeholders."""
    try:
        rendered = render_request(content, secrets=lambda name: "<secret:" + name + ">")
    except RenderError as error:
        return {"error": str(error)}
    return {"json": _pretty(rendered.kwargs), "beta": rendered.beta}


@login_required
def version_detail(request: HttpRequest, key: str, number: int) -> HttpResponse:
    flag = get_flag(key)
    version = get_version(flag, number)
    context = {
        "flag": flag,
        "version": version,
        "content_json": _pretty(version.content),
        "rendered": _rendered_request(version.content),
        "serving_in": FlagState.objects.filter(serving_version=version).select_related("environment"),
        "can_write": _can_write(request, flag),
    }
    return render(request, "flags/version.html", context)


def _side_by_side(lines: Iterable[DiffLine]) -> list[tuple[DiffLine | None, DiffLine | None]]:
    """Pair each change's deleted lines with its inserted ones, row by row, for two columns."""
    rows: list[tuple[DiffLine | None, DiffLine | None]] = []
    deleted: list[DiffLine] = []
    inserted: list[DiffLine] = []
    for line in lines:
        if line.op == "equal" or (line.op == "delete" and inserted):
            rows.extend(zip_longest(deleted, inserted))
            deleted, inserted = [], []
        if line.op == "equal":
            rows.append((line, line))
        else:
            (deleted if line.op == "delete" else inserted).append(line)
    rows.extend(zip_longest(deleted, inserted))
    return rows


def _model_swap(diff: ConfigDiff) -> list[dict[str, Any]] | None:
    """The old and the new model with their catalog facts, when the diff swaps the model."""
    change = next((change for change in diff.changes if change.path == "model"), None)
    if change is None:
        return None
    today = timezone.now().date()
    # A config may name a model by an alias, which only the rows themselves list.
    catalog = {
        name: model
        for model in ClaudeModel.objects.with_prices()
        for name in (model.model_id, *model.aliases)
    }
    return [
        {"id": model_id, "row": _model_row(catalog[model_id], today) if model_id in catalog else None}
        for model_id in (change.old, change.new)
    ]


def _diff_context(old: ConfigVersion, new: ConfigVersion) -> dict[str, Any]:
    diff = diff_configs(old.content, new.content)
    return {
        "old": old,
        "new": new,
        "diff": diff,
        # The model swap leads: it changes cost, latency and behaviour all at once.
        "kinds": [
            (kind, KIND_LABELS.get(kind, kind))
            for kind in sorted(diff.kinds, key=lambda kind: kind != "model_swap")
        ],
        "model_swap": _model_swap(diff),
        "field_changes": [(change.path, _shown(change.old), _shown(change.new)) for change in diff.changes],
        "system_rows": _side_by_side(diff.system),
        "collections": [
            _collection("Tools", diff.tools),
            _collection("MCP servers", diff.mcp_servers),
            _collection("Subagents", diff.subagents),
        ],
    }


def _collection(label: str, collection: CollectionDiff) -> dict[str, Any]:
    return {
        "label": label,
        "changed_at_all": bool(collection),
        "added": collection.added,
        "removed": collection.removed,
        "changed": [
            (item.name, [(change.path, _shown(change.old), _shown(change.new)) for change in item.changes])
            for item in collection.changed
        ],
        "reordered": collection.reordered,
    }


def _compared(query: QueryDict) -> tuple[int, int] | None:
    old, new = _number(query.get("from")), _number(query.get("to"))
    return (old, new) if old is not None and new is not None else None


@login_required
def diff(request: HttpRequest, key: str) -> HttpResponse:
    flag = get_flag(key)
    compared = _compared(request.GET)
    context: dict[str, Any] = {
        "flag": flag,
        "versions": ConfigVersion.objects.for_flag(flag).only("number", "message"),
        "compared": compared,
    }
    if compared is not None:
        context.update(_diff_context(get_version(flag, compared[0]), get_version(flag, compared[1])))
    return render(request, "flags/diff.html", context)


def _current_prices(model: ClaudeModel, today: date) -> dict[tuple[str, str, str], Decimal]:
    """The price in force today for each token type, tier and context."""
    current: dict[tuple[str, str, str], Decimal] = {}
    for price in sorted(model.prices.all(), key=lambda price: price.effective_from):
        if price.effective_from <= today:
            current[(price.token_type, price.tier, price.context)] = price.usd_per_mtok
    return current


def _usd(value: Decimal | None) -> str:
    if value is None:
        return "—"
    return f"${value:.2f}" if value == round(value, 2) else f"${value.normalize()}"


def _model_row(model: ClaudeModel, today: date) -> dict[str, Any]:
    prices = _current_prices(model, today)
    days = (model.retires_at - today).days if model.retires_at else None
    contexts = sorted({context for (_, _, context) in prices if context})
    return {
        "model": model,
        "days_to_retirement": days,
        "days_since_retirement": -days if days is not None and days < 0 else None,
        "prices": [
            " / ".join(_usd(prices.get((token_type, tier, ""))) for token_type, tier in kinds)
            for _, kinds in PRICE_COLUMNS
        ],
        # Rows that apply to some requests only, e.g. every token of a prompt over 100k tokens.
        "context_prices": [(context.replace("_", " "), _price_list(prices, context)) for context in contexts],
    }


def _price_list(prices: dict[tuple[str, str, str], Decimal], context: str) -> str:
    return " · ".join(
        f"{label.lower()} "
        + " / ".join(_usd(prices.get((token_type, tier, context))) for token_type, tier in kinds)
        for label, kinds in PRICE_COLUMNS
        if any((token_type, tier, context) in prices for token_type, tier in kinds)
    )


def _catalog_order(models: Iterable[ClaudeModel]) -> list[ClaudeModel]:
    """By line, then active before deprecated before retired, newest id first."""
    newest_first = sorted(models, key=lambda model: model.model_id, reverse=True)
    return sorted(newest_first, key=lambda model: (model.line or "~", LIFECYCLE_ORDER[model.lifecycle]))


@login_required
def model_catalog(request: HttpRequest) -> HttpResponse:
    today = timezone.now().date()
    models = _catalog_order(ClaudeModel.objects.with_prices())
    groups = [
        (line or "other", [_model_row(model, today) for model in group])
        for line, group in groupby(models, key=lambda model: model.line)
    ]
    context = {"groups": groups, "price_columns": [label for label, _ in PRICE_COLUMNS], "today": today}
    return render(request, "flags/models.html", context)


# Targeting: per environment, the rules, the split and "try a context" form one section, shown
# on the flag page and, alone, on its own page (without JavaScript) or as the htmx response of
# every action in it. Segments have their own pages.

OPERATOR_WORDS = {
    "IN": "is one of",
    "NOT_IN": "is none of",
    "STR_CONTAINS": "contains",
    "STR_STARTS_WITH": "starts with",
    "STR_ENDS_WITH": "ends with",
    "NUM_EQ": "=",
    "NUM_GT": ">",
    "NUM_GTE": "≥",
    "NUM_LT": "<",
    "NUM_LTE": "≤",
    "DATE_AFTER": "is after",
    "DATE_BEFORE": "is before",
    "SEMVER_EQ": "= version",
    "SEMVER_GT": "> version",
    "SEMVER_GTE": "≥ version",
    "SEMVER_LT": "< version",
    "SEMVER_LTE": "≤ version",
    "REGEX": "matches",
    "IN_CIDR": "is in network",
}


def describe_constraint(constraint: dict[str, Any]) -> str:
    """A constraint as a phrase: `plan is one of pro, enterprise`, `NOT country is one of de`."""
    operator = str(constraint.get("operator", ""))
    values = constraint.get("values")
    shown = ", ".join(map(str, values)) if isinstance(values, list) else str(constraint.get("value", ""))
    text = f"{constraint.get('contextName', '?')} {OPERATOR_WORDS.get(operator, operator)} {shown}"
    if constraint.get("caseInsensitive"):
        text += " (any case)"
    return f"NOT {text}" if constraint.get("inverted") else text


def _percent(weight: int) -> str:
    return f"{weight / 100:g} %"


def _split_box(split: Split | None, serving: int | None) -> dict[str, Any] | None:
    if split is None:
        return None
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
        {"candidate": split.candidate.number, "percent": Decimal(split.weight) / 100} if split else {}
    )
    ids = _form_ids(environment)
    return {
        "environment": environment,
        "serving": serving,
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
    state = (
        FlagState.objects.select_related("serving_version").filter(flag=flag, environment=environment).first()
    )
    split = (
        Split.objects.active().select_related("candidate").filter(flag=flag, environment=environment).first()
    )
    section = _targeting_section(
        flag, environment, state, split, _version_numbers(flag), _segment_keys(), **parts
    )
    context = {"flag": flag, "can_write": _can_write(request, flag), "t": section}
    return render(request, "flags/_targeting.html" if request.htmx else "flags/targeting.html", context)


def _targeting_done(
    request: HtmxHttpRequest, flag: Flag, environment: Environment, notice: str, *, error: bool = False
) -> HttpResponse:
    """After an action: the refreshed section for htmx, else back to the flag page with a message."""
    if request.htmx:
        return _targeting_response(request, flag, environment, notice=notice, notice_is_error=error)
    (messages.error if error else messages.success)(request, notice)
    return redirect(reverse("flags:detail", args=[flag.key]) + f"#targeting-{environment.key}")


@login_required
def targeting(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    return _targeting_response(request, get_flag(key), get_environment(env))


@login_required
@require_POST
def rule_add(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    flag, environment = _writable_flag(request, key), get_environment(env)
    form = RuleForm(
        request.POST,
        versions=_version_numbers(flag),
        segments=_segment_keys(),
        auto_id=_form_ids(environment),
    )
    if form.is_valid():
        try:
            state = services.add_rule(
                flag=flag, environment=environment, actor=ui_actor(request), **form.rule()
            )
        except DomainError as error:
            add_domain_error(form, error)
        else:
            notice = f"Added a rule serving v{form.cleaned_data['version']}; {len(state.rules)} rule(s) now."
            return _targeting_done(request, flag, environment, notice)
    return _targeting_response(request, flag, environment, rule_form=form)


@login_required
@require_POST
def rule_move(request: HtmxHttpRequest, key: str, env: str, index: int) -> HttpResponse:
    flag, environment = _writable_flag(request, key), get_environment(env)
    form = RuleMoveForm(request.POST)
    if not form.is_valid():
        return _targeting_done(request, flag, environment, "Choose where to move the rule.", error=True)
    to_index = form.cleaned_data["to"]
    try:
        services.move_rule(
            flag=flag, environment=environment, index=index, to_index=to_index, actor=ui_actor(request)
        )
    except DomainError as error:
        return _targeting_done(request, flag, environment, error.detail, error=True)
    return _targeting_done(request, flag, environment, f"Moved rule {index + 1} to position {to_index + 1}.")


@login_required
@require_POST
def rule_remove(request: HtmxHttpRequest, key: str, env: str, index: int) -> HttpResponse:
    flag, environment = _writable_flag(request, key), get_environment(env)
    try:
        services.remove_rule(flag=flag, environment=environment, index=index, actor=ui_actor(request))
    except DomainError as error:
        return _targeting_done(request, flag, environment, error.detail, error=True)
    return _targeting_done(request, flag, environment, f"Removed rule {index + 1}.")


@login_required
@require_POST
def split_set(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    flag, environment = _writable_flag(request, key), get_environment(env)
    state = (
        FlagState.objects.select_related("serving_version").filter(flag=flag, environment=environment).first()
    )
    serving = state.serving_version.number if state and state.serving_version else None
    form = SplitForm(
        request.POST, versions=_version_numbers(flag), serving=serving, auto_id=_form_ids(environment)
    )
    if form.is_valid():
        data = form.cleaned_data
        try:
            split = services.set_split(
                flag=flag,
                environment=environment,
                candidate=data["candidate"],
                weight=form.weight,
                actor=ui_actor(request),
                reason=data["reason"],
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
    flag, environment = _writable_flag(request, key), get_environment(env)
    try:
        cleared = services.clear_split(flag=flag, environment=environment, actor=ui_actor(request))
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


def _segment_usage() -> dict[str, list[FlagState]]:
    """For each segment key, the flag states whose rules use it (one pass over the states)."""
    usage: dict[str, list[FlagState]] = {}
    for state in FlagState.objects.select_related("flag", "environment").order_by(
        "flag__key", "environment__key"
    ):
        keys = {key for rule in state.rules if isinstance(rule, dict) for key in rule.get("segments") or []}
        for key in keys:
            usage.setdefault(key, []).append(state)
    return usage


@login_required
def segment_list(request: HtmxHttpRequest) -> HttpResponse:
    form = SegmentCreateForm(request.POST or None)
    if request.method == "POST":
        require_scope(request, Scope.WRITE)
        if form.is_valid():
            try:
                segment = services.create_segment(actor=ui_actor(request), **form.cleaned_data)
            except DomainError as error:
                add_domain_error(form, error)
            else:
                messages.success(request, f"Created segment '{segment.key}'. Rules can use it now.")
                return redirect("flags:segment", key=segment.key)
    usage = _segment_usage()
    segments = [
        (segment, [describe_constraint(c) for c in segment.constraints], usage.get(segment.key, []))
        for segment in Segment.objects.order_by("key")
    ]
    context = {"segments": segments, "form": form, "can_write": _can_write(request)}
    return render(request, "flags/segments.html", context)


@login_required
def segment_detail(request: HtmxHttpRequest, key: str) -> HttpResponse:
    segment = get_segment(key)
    initial = {
        "name": segment.name,
        "description": segment.description,
        "constraints": _pretty(segment.constraints),
    }
    form = SegmentForm(request.POST or None, initial=initial)
    if request.method == "POST":
        require_scope(request, Scope.WRITE)
        if form.is_valid():
            try:
                services.update_segment(segment=segment, actor=ui_actor(request), **form.cleaned_data)
            except DomainError as error:
                add_domain_error(form, error)
            else:
                messages.success(request, f"Saved segment '{segment.key}'.")
                return redirect("flags:segment", key=segment.key)
    context = {
        "segment": segment,
        "described": [describe_constraint(c) for c in segment.constraints],
        "used_by": _segment_usage().get(segment.key, []),
        "form": form,
        "can_write": _can_write(request),
    }
    return render(request, "flags/segment.html", context)


@login_required
@require_POST
def segment_delete(request: HttpRequest, key: str) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    segment = get_segment(key)
    try:
        services.delete_segment(segment=segment, actor=ui_actor(request))
    except DomainError as error:
        messages.error(request, error.detail)
        return redirect("flags:segment", key=segment.key)
    messages.success(request, f"Deleted segment '{segment.key}'.")
    return redirect("flags:segments")
