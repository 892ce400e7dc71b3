"""Core models: the append-only audit log, API tokens and user roles."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"
    APPROVER = "approver", "Approver"
    AUDITOR = "auditor", "Auditor"
    ADMIN = "admin", "Admin"


class Scope(models.TextChoices):
    RESOLVE = "resolve", "Resolve configs"
    TELEMETRY = "telemetry", "Send telemetry"
    READ = "read", "Read"
    WRITE = "write", "Write"
    APPROVE = "approve", "Approve"
    AUDIT = "audit", "Read and export the audit log"
    ADMIN = "admin", "Administer tokens and users"


ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset({Scope.READ}),
    Role.EDITOR: frozenset({Scope.READ, Scope.WRITE}),
    Role.APPROVER: frozenset({Scope.READ, Scope.APPROVE}),
    Role.AUDITOR: frozenset({Scope.READ, Scope.AUDIT}),
    Role.ADMIN: frozenset(Scope.values),
}


class UserRole(models.Model):
    """The one role a user holds; a user without a row is a Viewer (superusers are Admins)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flagstaff_role"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A service or automation credential; only a SHA-256 of the secret is stored."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters of the token, to recognise it")
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    environment = models.ForeignKey(
        "flags.Environment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="api_tokens",
        help_text="When set, the token acts only on this environment",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ActorKind(models.TextChoices):
    USER = "user", "User"
    TOKEN = "token", "API token"
    SYSTEM = "system", "System"


class Source(models.TextChoices):
    UI = "ui", "Web UI"
    API = "api", "API"
    SYSTEM = "system", "System"
    CLI = "cli", "Command line"


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    def chronological(self) -> AuditEntryQuerySet:
        return self.order_by("id")


class AuditEntry(models.Model):
    """One recorded action. Rows are only ever inserted, and each is chained to the previous one.

    Actor and target are stored as plain values rather than foreign keys so that the record
    outlives anything it mentions.
    """

    created_at = models.DateTimeField()
    actor_kind = models.CharField(max_length=8, choices=ActorKind.choices)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_name = models.CharField(max_length=200)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    target_label = models.CharField(max_length=300)
    flag_key = models.CharField(max_length=100, blank=True, db_index=True)
    environment_key = models.CharField(max_length=100, blank=True, db_index=True)
    changes = models.JSONField(default=dict)
    reason = models.TextField(blank=True)
    source = models.CharField(max_length=8, choices=Source.choices)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["created_at"], name="audit_created_at_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.target_label}"


class AuditChainHead(models.Model):
    """The single row that serialises appends and remembers the chain's tip.

    Locking this row (SELECT ... FOR UPDATE) orders concurrent appends; comparing it with the
    last entry detects a truncated tail.
    """

    singleton = models.BooleanField(default=True, unique=True)
    last_hash = models.CharField(max_length=64)
    entry_count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(singleton=True), name="audit_head_singleton")]

    def __str__(self) -> str:
        return f"audit head ({self.entry_count} entries)"


class AuditCheckpoint(models.Model):
    """An anchor kept beside the chain: its entry count and head hash at one moment, signed.

    A chain emptied by TRUNCATE, or rewound and rebuilt with its head reset, is consistent with
    itself; it is not with a checkpoint that saw more entries or other hashes. The signature (an
    HMAC under SECRET_KEY) means a checkpoint cannot be written by someone who only has the
    database.
    """

    created_at = models.DateTimeField()
    entry_count = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)
    signature = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entry_count", "head_hash"], name="audit_checkpoint_once")
        ]

    def __str__(self) -> str:
        return f"audit checkpoint at {self.entry_count} entries"
