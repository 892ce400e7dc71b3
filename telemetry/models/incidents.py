"""Incidents (budget breaches) and the signed webhooks that announce them, with a delivery log."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class IncidentKind(models.TextChoices):
    LATENCY_BUDGET = "latency_budget", "Latency budget breached"
    COST_BUDGET = "cost_budget", "Daily cost budget breached"
    ROLLOUT_ROLLED_BACK = "rollout_rolled_back", "Rollout rolled back"
    ROLLBACK_REHEARSAL_FAILED = "rollback_rehearsal_failed", "Rollback rehearsal failed or slow"
    DEPRECATION = "deprecation", "Model retiring or retired"


class IncidentState(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class IncidentQuerySet(models.QuerySet["Incident"]):
    def open(self) -> IncidentQuerySet:
        return self.filter(state=IncidentState.OPEN)

    def newest_first(self) -> IncidentQuerySet:
        return self.order_by("-opened_at", "-id")


class Incident(models.Model):
    """A breach that needs attention: opened and resolved by the periodic budget check, opened
    by a rollback (or a failed rollback rehearsal) and resolved by hand, or opened, escalated
    and resolved by the deprecation watch (deprecations/services.py)."""

    kind = models.CharField(max_length=32, choices=IncidentKind.choices)
    state = models.CharField(max_length=16, choices=IncidentState.choices, default=IncidentState.OPEN)
    # PROTECT: incidents are history; flags are archived and environments kept, never deleted.
    environment = models.ForeignKey("flags.Environment", on_delete=models.PROTECT, related_name="incidents")
    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="incidents")
    summary = models.CharField(max_length=300)
    evidence = models.JSONField(default=dict, help_text="The numbers and window that opened the incident")
    resolution = models.JSONField(
        default=dict, blank=True, help_text="The numbers (or the reason) that resolved it"
    )
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "environment", "flag"],
                condition=Q(state="open"),
                name="incident_one_open_per_kind_env_flag",
            ),
            models.CheckConstraint(
                condition=(Q(state="open") & Q(resolved_at__isnull=True))
                | (Q(state="resolved") & Q(resolved_at__isnull=False)),
                name="incident_resolved_at_iff_resolved",
            ),
        ]
        indexes = [
            # The banner's query on every page: open incidents, newest first.
            models.Index(fields=["-opened_at"], condition=Q(state="open"), name="incident_open_idx"),
            models.Index(fields=["flag", "-opened_at"], name="incident_flag_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind}"

    @property
    def is_open(self) -> bool:
        return self.state == IncidentState.OPEN


class WebhookEvent(models.TextChoices):
    INCIDENT_OPENED = "incident.opened", "Incident opened"
    INCIDENT_RESOLVED = "incident.resolved", "Incident resolved"
    # An open incident got more urgent (a deprecation's next runway threshold).
    INCIDENT_ESCALATED = "incident.escalated", "Incident escalated"
    # Rollouts' events, named like Argo Rollouts' notification triggers.
    ROLLOUT_STEP_COMPLETED = "rollout-step-completed", "Rollout stage completed"
    ROLLOUT_PAUSED = "rollout-paused", "Rollout paused"
    ROLLOUT_PROMOTED = "rollout-promoted", "Rollout promoted"
    ROLLOUT_ROLLED_BACK = "rollout-rolled-back", "Rollout rolled back"
    ROLLOUT_ABORTED = "rollout-aborted", "Rollout aborted"
    # Experiments' events: a pause (a person, or a health check) and how one ends.
    EXPERIMENT_PAUSED = "experiment-paused", "Experiment paused"
    EXPERIMENT_CONCLUDED = "experiment-concluded", "Experiment concluded"
    EXPERIMENT_ABORTED = "experiment-aborted", "Experiment aborted"
    EXPERIMENT_SUPERSEDED = "experiment-superseded", "Experiment superseded"


class WebhookQuerySet(models.QuerySet["Webhook"]):
    def active(self) -> WebhookQuerySet:
        return self.filter(active=True)


class Webhook(models.Model):
    """A receiver of signed event notifications.

    The secret is stored as it is (not hashed): signing each delivery needs the secret itself,
    as with GitHub's and Stripe's webhook secrets. It is shown once, at creation, and never
    returned by the API or the pages afterwards; database access implies access to it.
    """

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=200)
    events = models.JSONField(default=list, help_text="Event names this webhook receives")
    active = models.BooleanField(default=True)
    created_by_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(active=True, deactivated_at__isnull=True)
                | Q(active=False, deactivated_at__isnull=False),
                name="webhook_deactivated_at_iff_inactive",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def receives(self, event: str) -> bool:
        return self.active and event in self.events


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDeliveryQuerySet(models.QuerySet["WebhookDelivery"]):
    def due(self, now: object) -> WebhookDeliveryQuerySet:
        return self.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)


class WebhookDelivery(models.Model):
    """One event for one webhook: the due-work row the sweep sends, and its log.

    A sender claims the row by a conditional UPDATE that bumps `attempts` and pushes
    `next_attempt_at` past the request's timeout (a lease): a sender that dies mid-request
    leaves the row due again once the lease runs out, so the event is retried, never lost.
    """

    webhook = models.ForeignKey(Webhook, on_delete=models.PROTECT, related_name="deliveries")
    event = models.CharField(max_length=64)
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True, help_text="HTTP status of the last try")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.CheckConstraint(
                condition=~Q(state="pending") | Q(next_attempt_at__isnull=False),
                name="webhook_delivery_pending_has_next_attempt",
            ),
        ]
        indexes = [
            # The sweep's query: pending rows whose next attempt is due.
            models.Index(
                fields=["next_attempt_at"], condition=Q(state="pending"), name="webhook_delivery_due_idx"
            ),
            models.Index(fields=["webhook", "-created_at"], name="webhook_delivery_log_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook_id} ({self.state})"
