"""Environments, flags, immutable config versions, per-environment flag state, model catalog."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

KEY_VALIDATOR = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$",
    "Use 1-100 lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
)


class EnvironmentQuerySet(models.QuerySet["Environment"]):
    def by_key(self) -> EnvironmentQuerySet:
        return self.order_by("key")


class Environment(models.Model):
    key = models.CharField(max_length=100, unique=True, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200)
    revision = models.BigIntegerField(
        default=0, help_text="Bumped in the same transaction as every change that can alter resolution"
    )
    protected = models.BooleanField(
        default=False,
        help_text="Changes to what it serves (publish, enable, disable, rules, splits) need a reason",
    )
    requires_approval = models.BooleanField(
        default=False,
        help_text="Four eyes: a publish, a rollout or experiment start and a manual promote "
        "need an Approver other than the author",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(condition=Q(revision__gte=0), name="environment_revision_gte_0")
        ]

    def __str__(self) -> str:
        return self.key


class Surface(models.TextChoices):
    CHAT = "chat", "Chat"
    TYPING_ASSIST = "typing_assist", "Typing assist"
    AGENT = "agent", "Agent"
    BATCH = "batch", "Batch"
    # An LLM judge of the evals is itself a flagged, versioned config (see evals/scorers/judge.py).
    JUDGE = "judge", "Judge"


class FlagQuerySet(models.QuerySet["Flag"]):
    def active(self) -> FlagQuerySet:
        return self.filter(archived_at__isnull=True)

    def search(self, text: str) -> FlagQuerySet:
        if not text:
            return self
        return self.filter(Q(key__icontains=text) | Q(name__icontains=text) | Q(owner__icontains=text))

    def with_states(self) -> FlagQuerySet:
        """Annotate `latest_version_number` and prefetch the states, ordered by environment key."""
        states = FlagState.objects.select_related("environment", "serving_version")
        states = states.order_by("environment__key")
        # The aggregate drops Meta.ordering on PostgreSQL, so order explicitly for stable pages.
        return (
            self.annotate(latest_version_number=models.Max("versions__number"))
            .prefetch_related(models.Prefetch("states", queryset=states))
            .order_by("key")
        )


class Flag(models.Model):
    key = models.CharField(max_length=100, unique=True, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    surface = models.CharField(max_length=16, choices=Surface.choices)
    owner = models.CharField(max_length=200, blank=True)
    stickiness = models.CharField(
        max_length=100, default="targetingKey", help_text="Context attribute that keeps a unit in its split"
    )
    budgets = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = FlagQuerySet.as_manager()

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class ConfigVersionQuerySet(models.QuerySet["ConfigVersion"]):
    def for_flag(self, flag: Flag) -> ConfigVersionQuerySet:
        return self.filter(flag=flag).order_by("-number")


class ConfigVersion(models.Model):
    """One immutable, numbered config of a flag. Rows are inserted and never updated."""

    flag = models.ForeignKey(Flag, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    content = models.JSONField()
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical JSON content")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    author_name = models.CharField(max_length=200)
    message = models.TextField(blank=True)
    warnings = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ConfigVersionQuerySet.as_manager()

    class Meta:
        ordering = ["flag", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["flag", "number"], name="config_version_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="config_version_number_gte_1"),
        ]

    def __str__(self) -> str:
        return f"{self.flag_id and self.flag.key} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValidationError("Config versions are immutable; create a new version instead.")
        super().save(*args, **kwargs)

    @property
    def variant(self) -> str:
        return f"v{self.number}"


class FlagStateQuerySet(models.QuerySet["FlagState"]):
    def for_environment(self, environment: Environment) -> FlagStateQuerySet:
        return self.filter(environment=environment)

    def segment_usage(self) -> dict[str, list[FlagState]]:
        """For each segment key, the states whose rules use it, by flag and environment key."""
        usage: dict[str, list[FlagState]] = {}
        for state in self.select_related("flag", "environment").order_by("flag__key", "environment__key"):
            for key in state.segment_keys:
                usage.setdefault(key, []).append(state)
        return usage

    def using_segment(self, key: str) -> list[FlagState]:
        return self.segment_usage().get(key, [])

    def current(self, flag: Flag, environment: Environment) -> FlagState | None:
        """The flag's state in the environment with its serving version, if it has one yet."""
        return self.select_related("serving_version").filter(flag=flag, environment=environment).first()


class FlagState(models.Model):
    """What a flag serves in one environment."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="states")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="flag_states")
    serving_version = models.ForeignKey(
        ConfigVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    enabled = models.BooleanField(default=False)
    rules = models.JSONField(
        default=list,
        blank=True,
        help_text="Targeting rules in priority order, in the engine's shape: "
        "[{constraints, segments, version, description}]",
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = FlagStateQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["flag", "environment"], name="flag_state_unique_per_environment"),
            models.CheckConstraint(
                condition=Q(enabled=False) | Q(serving_version__isnull=False),
                name="flag_state_enabled_needs_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flag_id and self.flag.key} @ {self.environment_id and self.environment.key}"

    @property
    def segment_keys(self) -> set[str]:
        """The segments this state's rules refer to (rules are JSON: read here, not in SQL)."""
        return {
            key
            for rule in self.rules
            if isinstance(rule, dict)
            for key in rule.get("segments") or []
            if isinstance(key, str)
        }


class Lifecycle(models.TextChoices):
    ACTIVE = "active", "Active"
    DEPRECATED = "deprecated", "Deprecated"
    RETIRED = "retired", "Retired"


class ClaudeModelQuerySet(models.QuerySet["ClaudeModel"]):
    def with_prices(self) -> ClaudeModelQuerySet:
        return self.prefetch_related("prices")


class ClaudeModel(models.Model):
    """A model of the catalog: lifecycle, limits and capabilities, refreshed from the Models API."""

    model_id = models.CharField(max_length=100, unique=True)
    display_name = models.CharField(max_length=200)
    line = models.CharField(max_length=32, blank=True)
    lifecycle = models.CharField(max_length=16, choices=Lifecycle.choices, default=Lifecycle.ACTIVE)
    deprecated_at = models.DateField(null=True, blank=True)
    retires_at = models.DateField(null=True, blank=True)
    replacement = models.CharField(max_length=100, blank=True)
    aliases = models.JSONField(default=list, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    capabilities = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=16, default="seed", help_text="seed or models_api")
    synced_at = models.DateTimeField(null=True, blank=True)

    objects = ClaudeModelQuerySet.as_manager()

    class Meta:
        ordering = ["line", "model_id"]

    def __str__(self) -> str:
        return self.model_id


class ModelPrice(models.Model):
    """USD per million tokens of one token type, from a date on."""

    model = models.ForeignKey(ClaudeModel, on_delete=models.CASCADE, related_name="prices")
    token_type = models.CharField(max_length=32)
    tier = models.CharField(max_length=16, default="standard")
    context = models.CharField(max_length=32, blank=True, default="")
    usd_per_mtok = models.DecimalField(max_digits=12, decimal_places=6)
    effective_from = models.DateField()

    class Meta:
        ordering = ["model", "token_type", "tier", "context", "effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "token_type", "tier", "context", "effective_from"],
                name="model_price_unique_effective",
            ),
            models.CheckConstraint(condition=Q(usd_per_mtok__gte=0), name="model_price_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.model_id} {self.token_type} {self.usd_per_mtok} from {self.effective_from}"


class Segment(models.Model):
    """A reusable, named list of constraints that targeting rules refer to by key."""

    key = models.CharField(max_length=100, unique=True, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    constraints = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class SplitQuerySet(models.QuerySet["Split"]):
    def active(self) -> SplitQuerySet:
        return self.filter(cleared_at__isnull=True)

    def active_for(self, flag: Flag, environment: Environment) -> Split | None:
        """The flag's active split in the environment (at most one), with its candidate and arms."""
        split = self.active().select_related("candidate").filter(flag=flag, environment=environment).first()
        if split is not None:
            load_arms([split])
        return split


def load_arms(splits: Iterable[Split]) -> None:
    """Prefetch the arms (with their versions, without content) of the experiment splits among
    `splits`, in one query; none when all are canaries, which have no arms."""
    experiments = [split for split in splits if split.is_experiment]
    if experiments:
        models.prefetch_related_objects(
            experiments,
            models.Prefetch(
                "arms",
                queryset=SplitArm.objects.select_related("version")
                .defer("version__content")
                .order_by("index"),
            ),
        )


class SplitKind(models.TextChoices):
    CANARY = "canary", "Canary: a candidate against the serving version"
    EXPERIMENT = "experiment", "Experiment: the baseline and up to three candidates"


class Split(models.Model):
    """A weighted split of one flag in one environment.

    A canary split serves `candidate` to `weight` basis points of units and the serving version
    to the rest (with a control band of the candidate's size). An experiment split has no
    candidate field: its `arms` (the baseline first, then up to three candidates) share the
    units by weight. The seed is drawn once, at creation, and kept for life: changing a canary's
    weight never moves a unit to another bucket, and new arms or a new candidate mean a new
    split with a new seed.
    """

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="splits")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="splits")
    kind = models.CharField(max_length=16, choices=SplitKind.choices, default=SplitKind.CANARY)
    candidate = models.ForeignKey(
        ConfigVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    weight = models.PositiveIntegerField(help_text="Basis points of units served the candidate (100 = 1 %)")
    seed = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    objects = SplitQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"],
                condition=Q(cleared_at__isnull=True),
                name="split_one_active_per_flag_environment",
            ),
            models.CheckConstraint(condition=Q(weight__lte=10000), name="split_weight_lte_10000"),
            models.CheckConstraint(
                condition=Q(kind=SplitKind.CANARY, candidate__isnull=False)
                | Q(kind=SplitKind.EXPERIMENT, candidate__isnull=True),
                name="split_candidate_only_for_canary",
            ),
        ]

    def __str__(self) -> str:
        return self.split_id

    @property
    def split_id(self) -> str:
        """The id resolutions and flag_state tokens carry (no ':', which separates token fields)."""
        return f"split-{self.pk}"

    @property
    def is_experiment(self) -> bool:
        return self.kind == SplitKind.EXPERIMENT


class SplitArm(models.Model):
    """One arm of an experiment split: its name (the `arm` telemetry is attributed to), version
    and share of the units in basis points. Arms are bucketed in `index` order."""

    split = models.ForeignKey(Split, on_delete=models.CASCADE, related_name="arms")
    index = models.PositiveSmallIntegerField()
    # Telemetry keeps the arm in 32 characters (telemetry Rollup.arm).
    name = models.CharField(max_length=32)
    version = models.ForeignKey(ConfigVersion, on_delete=models.PROTECT, related_name="+")
    weight = models.PositiveIntegerField(help_text="Basis points of units (100 = 1 %)")

    class Meta:
        ordering = ["split", "index"]
        constraints = [
            models.UniqueConstraint(fields=["split", "index"], name="split_arm_unique_index"),
            models.UniqueConstraint(fields=["split", "name"], name="split_arm_unique_name"),
            models.UniqueConstraint(fields=["split", "version"], name="split_arm_unique_version"),
            models.CheckConstraint(condition=Q(weight__lte=10000), name="split_arm_weight_lte_10000"),
        ]

    def __str__(self) -> str:
        return f"{self.name} of split-{self.split_id}"


# -- Approvals (four eyes) ------------------------------------------------------------------------


class ApprovalAction(models.TextChoices):
    """The changes that need an Approver other than the author where the environment says so.

    Publishing lives here in flags; the rollout verbs are registered by rollouts, which flags
    never imports (flags/services/approvals.py)."""

    PUBLISH = "version.publish", "Publish a version"
    ROLLOUT_START = "rollout.start", "Start a rollout"
    ROLLOUT_PROMOTE = "rollout.promote", "Promote a rollout by hand"
    EXPERIMENT_START = "experiment.start", "Start an experiment"


class ApprovalState(models.TextChoices):
    PENDING = "pending", "Waiting for an Approver"
    APPROVED = "approved", "Approved and applied"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Withdrawn by its author"


class ApprovalQuerySet(models.QuerySet["Approval"]):
    def pending(self) -> ApprovalQuerySet:
        return self.filter(state=ApprovalState.PENDING)


class Approval(models.Model):
    """A change waiting for (or decided by) a second person: who asked, who decided, and the
    evidence the Approver was shown at that moment (gate verdict, checklist, latest decision).

    `subject` names what the change acts on ("rollout:12", "version:8") so that asking twice
    answers the same pending request; `params` is what the change needs to be applied.
    """

    action = models.CharField(max_length=32, choices=ApprovalAction.choices)
    flag = models.ForeignKey(Flag, on_delete=models.PROTECT, related_name="approvals")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="approvals")
    subject = models.CharField(max_length=100)
    params = models.JSONField(default=dict, blank=True)
    summary = models.CharField(max_length=300)
    reason = models.TextField(blank=True, help_text="The author's reason, applied with the change")
    author_kind = models.CharField(max_length=16)
    author_id = models.BigIntegerField(null=True, blank=True)
    author_name = models.CharField(max_length=200)
    state = models.CharField(max_length=16, choices=ApprovalState.choices, default=ApprovalState.PENDING)
    decided_by_kind = models.CharField(max_length=16, blank=True)
    decided_by_id = models.BigIntegerField(null=True, blank=True)
    decided_by_name = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True, help_text="What the Approver was shown")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ApprovalQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["action", "flag", "environment", "subject"],
                condition=Q(state="pending"),
                name="approval_one_pending_per_change",
            ),
            models.CheckConstraint(
                condition=Q(state="pending") | Q(decided_at__isnull=False),
                name="approval_decided_when_not_pending",
            ),
        ]
        indexes = [models.Index(fields=["state", "-created_at"], name="approval_state_idx")]

    def __str__(self) -> str:
        return f"approval {self.pk}: {self.summary}"
