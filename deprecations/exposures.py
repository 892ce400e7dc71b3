"""Where retiring models are used: in Flagstaff's flags, and organisation-wide by API key.

A watched model is one the catalog says is retired or deprecated, has a retirement date, or
is legacy: still active, with a replacement named (the Models API has no "legacy" lifecycle;
the catalog's replacement is how a legacy model is told apart). `exposures` finds every place
a config version that uses one is reached from: an environment's serving version and
targeting rules, a split's candidate or arms, a rollout's candidate, an experiment's arms, the
judge an eval set runs; inside each config, the root model and every subagent's model.

Written for its cost: a fixed number of queries whatever the number of flags (states, rules
and splits, rollouts, experiments, eval sets, then the referenced versions in one query).
`runway` groups the exposures and the Admin API usage per model with the days left.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any

from django.db.models import Max, OuterRef, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from deprecations import runway as rules
from evals.judges import JUDGE_SCORER
from evals.models import EvalSetVersion
from flags.catalog import model_info, models_in
from flags.models import ClaudeModel, ConfigVersion, Environment, Flag, FlagState, Split, SplitArm, Surface
from flags.validation import ModelInfo, catalog_by_id
from rollouts.models import Experiment, ExperimentArm, Rollout
from telemetry.models.usage_sync import UsageBucket

# Where a version is reached from, in the words the page and the API use.
PLACES = {
    "serving": "serving version",
    "rule": "targeting rule",
    "canary": "canary split candidate",
    "split_arm": "experiment split arm",
    "rollout": "rollout candidate",
    "experiment_arm": "experiment arm",
    "judge": "eval set judge",
}
# The Admin API usage that counts as current use.
USAGE_WINDOW_DAYS = 30
INPUT_TOKEN_COLUMNS = (
    "uncached_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
)


@dataclass(frozen=True, slots=True)
class Exposure:
    """One use of a watched model: which config version, reached from where, and whether it
    reaches traffic now (`live`: an enabled flag's serving version or rules, an active split)."""

    model: str
    used_as: str  # the id written in the config: the model's id or one of its aliases
    place: str
    flag: str
    surface: str
    environment: str | None  # None: not tied to an environment (an eval set's judge)
    version: int
    path: str  # where in the config: "model", "subagents[0].config.model"
    detail: str
    live: bool

    @property
    def place_label(self) -> str:
        return PLACES[self.place]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "place_label": self.place_label}


@dataclass(frozen=True, slots=True)
class UsageByKey:
    """Organisation-wide use of a watched model by one API key, from the Admin API usage report."""

    model: str
    used_as: str
    api_key_id: str  # "" for Console (workbench) use without a key
    workspace_id: str
    input_tokens: int
    output_tokens: int
    last_used_at: datetime
    in_flags: bool  # False: used outside Flagstaff's flags

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class WatchedModel:
    """A watched model with its runway, the places Flagstaff uses it and the usage by API key."""

    id: str
    display_name: str
    lifecycle: str
    legacy: bool
    deprecated_at: date | None
    retires_at: date | None
    replacement: str | None
    days_left: int | None
    threshold: int | None
    severity: str | None
    runway: str
    exposures: list[Exposure] = field(default_factory=list)
    usage: list[UsageByKey] = field(default_factory=list)

    @property
    def live_exposures(self) -> list[Exposure]:
        return [exposure for exposure in self.exposures if exposure.live]

    @property
    def outside_flags(self) -> bool:
        """Used by API keys while no flag uses it: the migration is outside Flagstaff."""
        return bool(self.usage) and not self.exposures

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.id,
            "display_name": self.display_name,
            "lifecycle": self.lifecycle,
            "legacy": self.legacy,
            "deprecated_at": self.deprecated_at,
            "retires_at": self.retires_at,
            "replacement": self.replacement,
            "days_left": self.days_left,
            "threshold_days": self.threshold,
            "severity": self.severity,
            "runway": self.runway,
            "exposures": [exposure.as_dict() for exposure in self.exposures],
            "usage": [row.as_dict() for row in self.usage],
            "outside_flags": self.outside_flags,
        }


def is_legacy(model: ModelInfo) -> bool:
    return model.lifecycle == "active" and bool(model.replacement)


def watched_catalog() -> dict[str, ModelInfo]:
    """Every watched model by id and alias (two queries: the models and their prices)."""
    rows = ClaudeModel.objects.with_prices().filter(
        Q(lifecycle__in=["deprecated", "retired"]) | Q(retires_at__isnull=False) | ~Q(replacement="")
    )
    return catalog_by_id(model_info(row) for row in rows)


@dataclass(frozen=True, slots=True)
class _Ref:
    """A config version reached from somewhere: by id, or by (flag id, number) for rules."""

    flag: Flag
    environment: Environment | None
    place: str
    detail: str
    live: bool
    version_id: int | None = None
    number: int | None = None


def _scoped(queryset: QuerySet[Any], flag: Flag | None, environment: Environment | None) -> QuerySet[Any]:
    queryset = queryset.filter(flag__archived_at__isnull=True)
    if flag is not None:
        queryset = queryset.filter(flag=flag)
    if environment is not None:
        queryset = queryset.filter(environment=environment)
    return queryset.select_related("flag", "environment")


def _state_refs(flag: Flag | None, environment: Environment | None) -> Iterator[_Ref]:
    for state in _scoped(FlagState.objects.all(), flag, environment):
        if state.serving_version_id is not None:
            yield _Ref(
                state.flag,
                state.environment,
                "serving",
                "served to everyone not matched by a rule or split" if state.enabled else "flag disabled",
                state.enabled,
                version_id=state.serving_version_id,
            )
        for index, rule in enumerate(state.rules if isinstance(state.rules, list) else []):
            number = rule.get("version") if isinstance(rule, dict) else None
            if isinstance(number, int):
                detail = f"rule {index + 1}" + (f": {rule['description']}" if rule.get("description") else "")
                yield _Ref(state.flag, state.environment, "rule", detail, state.enabled, number=number)


def _traffic_refs(flag: Flag | None, environment: Environment | None) -> Iterator[_Ref]:
    """Rollouts, experiments and the splits set by hand; a split that moves a rollout's or an
    experiment's traffic is reported once, as that rollout or experiment."""
    enabled = {
        (state.flag_id, state.environment_id)
        for state in _scoped(FlagState.objects.filter(enabled=True), flag, environment)
    }
    splits = list(_scoped(Split.objects.active(), flag, environment))
    active_split_ids = {split.pk for split in splits}
    owned: set[int] = set()
    for rollout in _scoped(Rollout.objects.active(), flag, environment):
        live = rollout.split_id in active_split_ids and (rollout.flag_id, rollout.environment_id) in enabled
        if rollout.split_id is not None:
            owned.add(rollout.split_id)
        detail = f"rollout #{rollout.pk} ({rollout.get_state_display().split(' (')[0].lower()})"
        yield _Ref(
            rollout.flag, rollout.environment, "rollout", detail, live, version_id=rollout.candidate_id
        )
    experiments = list(_scoped(Experiment.objects.active(), flag, environment))
    owned.update(experiment.split_id for experiment in experiments if experiment.split_id is not None)
    arms = ExperimentArm.objects.filter(experiment__in=experiments, index__gt=0).order_by(
        "experiment", "index"
    )
    by_id = {experiment.pk: experiment for experiment in experiments}
    for arm in arms:
        experiment = by_id[arm.experiment_id]
        live = experiment.split_id in active_split_ids and (
            (experiment.flag_id, experiment.environment_id) in enabled
        )
        detail = f"arm '{arm.name}' of experiment #{experiment.pk} ({experiment.get_state_display().lower()})"
        yield _Ref(
            experiment.flag, experiment.environment, "experiment_arm", detail, live, version_id=arm.version_id
        )
    by_split = {split.pk: split for split in splits if split.pk not in owned}
    for split in by_split.values():
        live = (split.flag_id, split.environment_id) in enabled
        if split.candidate_id is not None:
            detail = f"{split.weight / 100:g} % canary ({split.split_id})"
            yield _Ref(split.flag, split.environment, "canary", detail, live, version_id=split.candidate_id)
    for split_arm in SplitArm.objects.filter(split_id__in=list(by_split), index__gt=0).order_by(
        "split", "index"
    ):
        split = by_split[split_arm.split_id]
        detail = f"arm '{split_arm.name}' ({split_arm.weight / 100:g} %) of {split.split_id}"
        live = (split.flag_id, split.environment_id) in enabled
        yield _Ref(split.flag, split.environment, "split_arm", detail, live, version_id=split_arm.version_id)


def _judge_refs(flag: Flag | None) -> Iterator[_Ref]:
    """The judge version each eval set's latest version runs (pinned, or the judge's latest)."""
    latest = EvalSetVersion.objects.filter(eval_set=OuterRef("eval_set")).order_by("-number").values("number")
    versions = EvalSetVersion.objects.filter(number=Subquery(latest[:1])).select_related("eval_set")
    uses: list[tuple[str, str, str, int | None]] = []
    for version in versions.only("scorers", "eval_set__key"):
        for spec in version.scorers if isinstance(version.scorers, list) else []:
            if not isinstance(spec, dict) or spec.get("name") != JUDGE_SCORER:
                continue
            params = spec.get("params")
            if not isinstance(params, dict):
                continue
            pinned = params.get("version")
            uses.append(
                (
                    str(params.get("judge")),
                    version.eval_set.key,
                    str(spec.get("key", "")),
                    pinned if isinstance(pinned, int) else None,
                )
            )
    if not uses:
        return
    judges = Flag.objects.filter(
        key__in={use[0] for use in uses}, surface=Surface.JUDGE, archived_at__isnull=True
    )
    if flag is not None:
        judges = judges.filter(pk=flag.pk)
    by_key = {judge.key: judge for judge in judges.annotate(latest_number=Max("versions__number"))}
    for judge_key, eval_set_key, scorer_key, pinned in uses:
        judge = by_key.get(judge_key)
        number = pinned or (getattr(judge, "latest_number", None) if judge else None)
        if judge is not None and number is not None:
            detail = f"judge of eval set '{eval_set_key}' (scorer '{scorer_key}')"
            yield _Ref(judge, None, "judge", detail, False, number=number)


def _contents(refs: list[_Ref]) -> tuple[dict[int, ConfigVersion], dict[tuple[int, int], ConfigVersion]]:
    """The referenced versions, by id and by (flag id, number), in one query."""
    ids = {ref.version_id for ref in refs if ref.version_id is not None}
    pairs = {(ref.flag.pk, ref.number) for ref in refs if ref.number is not None}
    conditions = [Q(pk__in=ids)] if ids else []
    conditions += [Q(flag_id=flag_id, number=number) for flag_id, number in pairs]
    if not conditions:
        return {}, {}
    rows = list(
        ConfigVersion.objects.filter(reduce(operator.or_, conditions)).only("flag_id", "number", "content")
    )
    return {row.pk: row for row in rows}, {(row.flag_id, row.number): row for row in rows}


def exposures(
    *,
    catalog: Mapping[str, ModelInfo] | None = None,
    flag: Flag | None = None,
    environment: Environment | None = None,
) -> list[Exposure]:
    """Every use of a model of `catalog` (the watched models by default) in non-archived flags,
    narrowed to one flag or environment when given; judges of eval sets only without one."""
    catalog = watched_catalog() if catalog is None else catalog
    if not catalog:
        return []
    refs = [*_state_refs(flag, environment), *_traffic_refs(flag, environment)]
    if environment is None:
        refs.extend(_judge_refs(flag))
    by_id, by_pair = _contents(refs)
    found: list[Exposure] = []
    for ref in refs:
        version = (
            by_id.get(ref.version_id)
            if ref.version_id is not None
            else by_pair.get((ref.flag.pk, ref.number or 0))
        )
        if version is None:
            continue
        for path, model_id in models_in(version.content):
            model = catalog.get(model_id)
            if model is None:
                continue
            found.append(
                Exposure(
                    model=model.id,
                    used_as=model_id,
                    place=ref.place,
                    flag=ref.flag.key,
                    surface=ref.flag.surface,
                    environment=ref.environment.key if ref.environment else None,
                    version=version.number,
                    path=path,
                    detail=ref.detail,
                    live=ref.live,
                )
            )
    found.sort(
        key=lambda e: (e.model, e.flag, e.environment or "", list(PLACES).index(e.place), e.version, e.path)
    )
    return found


def usage_by_key(
    *, catalog: Mapping[str, ModelInfo], used_in_flags: set[str], since: datetime
) -> list[UsageByKey]:
    """The Admin API usage of `catalog`'s models since `since`, per model, API key and workspace
    (one aggregate query over the synced usage buckets)."""
    if not catalog:
        return []
    input_sum = reduce(operator.add, (Sum(column) for column in INPUT_TOKEN_COLUMNS))
    rows = (
        UsageBucket.objects.filter(starting_at__gte=since, model__in=list(catalog))
        .values("model", "api_key_id", "workspace_id")
        .annotate(input_tokens=input_sum, output_tokens=Sum("output_tokens"), last_used_at=Max("ending_at"))
        .order_by("model", "api_key_id", "workspace_id")
    )
    usage = []
    for row in rows:
        model = catalog[row["model"]]
        usage.append(
            UsageByKey(
                model=model.id,
                used_as=row["model"],
                api_key_id=row["api_key_id"],
                workspace_id=row["workspace_id"],
                input_tokens=int(row["input_tokens"] or 0),
                output_tokens=int(row["output_tokens"] or 0),
                last_used_at=row["last_used_at"],
                in_flags=model.id in used_in_flags,
            )
        )
    return usage


def runway(*, today: date | None = None, model: str | None = None) -> list[WatchedModel]:
    """Each watched model that is used (by a flag or an API key) or still counting down to a
    retirement, with its runway, exposures and usage: the most urgent first.

    `model` (an id or alias) narrows the answer to that model.
    """
    now = timezone.now()
    today = today or now.date()
    catalog = watched_catalog()
    if model is not None:
        wanted = catalog.get(model)
        catalog = {key: info for key, info in catalog.items() if wanted is not None and info.id == wanted.id}
    found = exposures(catalog=catalog)
    by_model: dict[str, list[Exposure]] = defaultdict(list)
    for exposure in found:
        by_model[exposure.model].append(exposure)
    usage: dict[str, list[UsageByKey]] = defaultdict(list)
    for row in usage_by_key(
        catalog=catalog, used_in_flags=set(by_model), since=now - timedelta(days=USAGE_WINDOW_DAYS)
    ):
        usage[row.model].append(row)
    watched = []
    for info in {info.id: info for info in catalog.values()}.values():
        days = rules.days_left(info.retires_at, today)
        threshold = rules.threshold_reached(lifecycle=info.lifecycle, days=days)
        counting_down = info.lifecycle == "deprecated" and (days is None or days >= 0)
        if not (by_model[info.id] or usage[info.id] or counting_down):
            continue
        watched.append(
            WatchedModel(
                id=info.id,
                display_name=info.display_name,
                lifecycle=info.lifecycle,
                legacy=is_legacy(info),
                deprecated_at=info.deprecated_at,
                retires_at=info.retires_at,
                replacement=info.replacement,
                days_left=days,
                threshold=threshold,
                severity=None if threshold is None else rules.severity(threshold),
                runway=rules.runway_words(lifecycle=info.lifecycle, retires_at=info.retires_at, today=today),
                exposures=by_model[info.id],
                usage=usage[info.id],
            )
        )
    watched.sort(key=_urgency)
    return watched


def _urgency(model: WatchedModel) -> tuple[int, int, str]:
    if model.lifecycle == "retired":
        return (0, 0, model.id)
    if model.days_left is not None:
        return (1, model.days_left, model.id)
    return (2, 0, model.id)
