"""Flagstaff settings: every value comes from the environment (see README, "Configuration")."""

import os
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

# Lets classes such as ModelAdmin[Model] be subscripted at run time, as the type stubs expect.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("FLAGSTAFF_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str, default: str = "") -> str:
    """Read NAME, or the contents of the file named by NAME_FILE (Docker/K8s secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE points to an unreadable file: {path}") from exc
    return os.environ.get(name, default)


DEBUG = env_bool("DEBUG", False)
# Without DEBUG an unset key stays empty: commands that sign nothing (migrate, makemigrations,
# check) still run, while Django refuses any use of the empty key and the web entry points
# (wsgi.py, asgi.py) refuse to start without one.
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY and DEBUG:
    SECRET_KEY = "insecure-development-key-only-for-debug"  # noqa: S105 - only with DEBUG on

# Keys retired by a rotation: still accepted for what they signed (sessions, audit checkpoints).
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("TRUST_X_FORWARDED_PROTO") else None
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Served over HTTPS (SECURE_COOKIES), browsers are told to keep to it. SecurityMiddleware sends
# the header on HTTPS responses only.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 60 * 60 if SESSION_COOKIE_SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
# A session ends this long after login, however active (the cookie's Max-Age and the server row).
SESSION_COOKIE_AGE = env_int("SESSION_AGE_SECONDS", 12 * 60 * 60)
if SESSION_COOKIE_AGE < 60:
    raise ImproperlyConfigured("SESSION_AGE_SECONDS must be 60 or more")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# The CSRF cookie. Pages carry the token themselves (the form field, and hx-headers on <body> for
# htmx), so no script reads the cookie: it is HttpOnly. SameSite=Lax keeps it off cross-site
# subrequests and POSTs; Secure with SECURE_COOKIES. It stays a cookie (not in the session) so
# that the login form, before any session, is protected the same way.
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_USE_SESSIONS = False
# Content-Security-Policy on every response (controlplane/security.py): our own static files
# only, no inline script or style. Empty turns the header off.
FLAGSTAFF_CONTENT_SECURITY_POLICY = env_str(
    "FLAGSTAFF_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "controlplane",
    "flags",
    "telemetry",
    "evals",
    "rollouts",
    "deprecations",
    "autopilot",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "controlplane.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "controlplane.middleware.QueryControlCharacterMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
ASGI_APPLICATION = "controlplane.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "controlplane.context_processors.navigation",
                "telemetry.context_processors.open_incidents",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'flagstaff.sqlite3'}")
try:
    # Health checks: a connection that died with its server (a restart) is replaced before a
    # request uses it, instead of failing that request.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
except (ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; the timeout rides out short locks.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # A file, not :memory:, so that a real Celery worker in the integration tests sees the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Broadcast (pidbox) exchanges; kombu's default is ./control under the working directory.
        "control_folder": str(_broker_dir / "control"),
    }
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "control").mkdir(parents=True, exist_ok=True)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# How often beat sweeps for scheduled changes that are due: a change applies at most this late.
FLAGSTAFF_SCHEDULED_CHANGES_SWEEP_SECONDS = env_int("FLAGSTAFF_SCHEDULED_CHANGES_SWEEP_SECONDS", 10)
if FLAGSTAFF_SCHEDULED_CHANGES_SWEEP_SECONDS < 1:
    raise ImproperlyConfigured("FLAGSTAFF_SCHEDULED_CHANGES_SWEEP_SECONDS must be at least 1.")
# How often beat scores new live samples and looks for due rollout and experiment ticks (below);
# `make demo` shortens both so that a canary settles in minutes.
FLAGSTAFF_LIVE_SCORING_SECONDS = env_int("FLAGSTAFF_LIVE_SCORING_SECONDS", 30)
FLAGSTAFF_TICK_SWEEP_SECONDS = env_int("FLAGSTAFF_TICK_SWEEP_SECONDS", 15)
# How often beat replays a batch of control-arm samples through the candidates of rollouts that
# opted in to paired replay, and how many attempts (with backoff) a replay's API call gets.
FLAGSTAFF_PAIRED_REPLAY_SECONDS = env_int("FLAGSTAFF_PAIRED_REPLAY_SECONDS", 30)
FLAGSTAFF_PAIRED_REPLAY_MAX_ATTEMPTS = env_int("FLAGSTAFF_PAIRED_REPLAY_MAX_ATTEMPTS", 3)
for _name in (
    "FLAGSTAFF_LIVE_SCORING_SECONDS",
    "FLAGSTAFF_TICK_SWEEP_SECONDS",
    "FLAGSTAFF_PAIRED_REPLAY_SECONDS",
    "FLAGSTAFF_PAIRED_REPLAY_MAX_ATTEMPTS",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1")
# Tasks are named by their `name=` (stable across code moves), which is what "task" refers to.
CELERY_BEAT_SCHEDULE = {
    # Anchor the audit chain (entry count and head hash, signed) every 10 minutes, so a chain
    # emptied or rewound later fails verification.
    "checkpoint-audit-chain": {"task": "controlplane.tasks.checkpoint_audit_chain", "schedule": 10 * 60},
    # Refresh the model catalog (lifecycle, retirement dates) from the Models API every 6 hours.
    "sync-models": {"task": "flags.tasks.sync_models", "schedule": 6 * 60 * 60},
    # Delete call records and samples past their retention, in batches, every hour (rollups stay).
    "telemetry-retention": {"task": "telemetry.tasks.apply_retention", "schedule": 60 * 60},
    # Judge every enabled flag and environment against its latency and cost budgets each minute,
    # opening and resolving incidents.
    "check-budgets": {"task": "telemetry.tasks_budgets.check_budgets", "schedule": 60},
    # Send webhook deliveries that are due (first tries whose nudge was lost, retries after backoff).
    "sweep-webhook-deliveries": {"task": "telemetry.tasks_budgets.sweep_webhook_deliveries", "schedule": 30},
    # Fetch at most one page of the Usage & Cost Admin API per minute (the API's sustained pace).
    "sync-admin-reports": {"task": "telemetry.tasks_usage.sync_admin_reports", "schedule": 60},
    # Resume eval runs whose worker died (no claim or answer for FLAGSTAFF_EVAL_CLAIM_TIMEOUT_SECONDS)
    # and poll batch runs whose poll was lost.
    "sweep-eval-runs": {"task": "evals.sweep_runs", "schedule": 60},
    # Score new samples of flags with a live scoring policy every 30 seconds (by default), one batch a tick;
    # ticks on several workers never score a sample twice (evals/services/live_scoring.py).
    "score-live-samples": {"task": "evals.score_live_samples", "schedule": FLAGSTAFF_LIVE_SCORING_SECONDS},
    # Run the analysis tick of every running rollout that is due (each rollout has its own
    # interval, FLAGSTAFF_ROLLOUT_TICK_SECONDS by default); checking every 15 s (by default) keeps a tick at
    # most that late, and a due rollout is claimed by one worker only (rollouts/services/ticks.py).
    "tick-rollouts": {"task": "rollouts.tick_rollouts", "schedule": FLAGSTAFF_TICK_SWEEP_SECONDS},
    # Replay a batch of control-arm samples through the candidate of each rollout that opted in to
    # paired replay (never served; each sample once however many workers run, within the
    # rollout's daily budget: rollouts/services/paired_replay.py).
    "replay-control-samples": {
        "task": "rollouts.replay_control_samples",
        "schedule": FLAGSTAFF_PAIRED_REPLAY_SECONDS,
    },
    # The same for running experiments: health each interval, the conclusion at the end.
    "tick-experiments": {"task": "rollouts.tick_experiments", "schedule": FLAGSTAFF_TICK_SWEEP_SECONDS},
    # Start the rollback rehearsals whose schedule is due (each schedule is taken by one sweep
    # only), and run again any requested rehearsal whose message was lost.
    "sweep-rehearsals": {"task": "rollouts.sweep_rehearsals", "schedule": 30},
    # Apply the scheduled changes that are due (publish, enable/disable, rollout start, split);
    # each is applied once however many beats and workers run (rollouts/services/scheduling.py).
    "apply-scheduled-changes": {
        "task": "rollouts.apply_scheduled_changes",
        "schedule": FLAGSTAFF_SCHEDULED_CHANGES_SWEEP_SECONDS,
    },
    # Notify the runway thresholds of retiring models once a day (the days left change daily);
    # a catalog sync that changes a lifecycle or date re-checks at once (deprecations/tasks.py).
    "check-deprecations": {"task": "deprecations.check_deprecations", "schedule": 24 * 60 * 60},
    # Judge the gate of every model migration whose eval runs finished, and propose its rollout.
    "advance-migrations": {"task": "autopilot.advance_migrations", "schedule": 60},
}

ANTHROPIC_API_KEY = env_secret("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL")
ANTHROPIC_TIMEOUT_SECONDS = env_int("ANTHROPIC_TIMEOUT_SECONDS", 30)
# An organisation Admin API key (sk-ant-admin01-...) for the Usage & Cost Admin API sync; unset
# turns the sync off and the usage page says so.
ANTHROPIC_ADMIN_API_KEY = env_secret("ANTHROPIC_ADMIN_API_KEY")

FLAGSTAFF_MAX_CONFIG_BYTES = env_int("FLAGSTAFF_MAX_CONFIG_BYTES", 1024 * 1024)
# Request bodies, configs, tool schemas and constraints nested deeper than this are refused
# (400 with the path) before anything recursive (parsers, JSON Schema, serialisers) sees them.
FLAGSTAFF_MAX_JSON_DEPTH = env_int("FLAGSTAFF_MAX_JSON_DEPTH", 64)
# Caps on free text and targeting (400 with the path): descriptions of flags and segments;
# reasons and version messages; rules and segments, which every snapshot carries to every service.
FLAGSTAFF_MAX_DESCRIPTION_CHARS = env_int("FLAGSTAFF_MAX_DESCRIPTION_CHARS", 2000)
FLAGSTAFF_MAX_REASON_CHARS = env_int("FLAGSTAFF_MAX_REASON_CHARS", 2000)
FLAGSTAFF_MAX_RULES = env_int("FLAGSTAFF_MAX_RULES", 100)
FLAGSTAFF_MAX_CONSTRAINTS = env_int("FLAGSTAFF_MAX_CONSTRAINTS", 50)
FLAGSTAFF_MAX_CONSTRAINT_VALUES = env_int("FLAGSTAFF_MAX_CONSTRAINT_VALUES", 1000)
FLAGSTAFF_MAX_CONSTRAINT_VALUE_CHARS = env_int("FLAGSTAFF_MAX_CONSTRAINT_VALUE_CHARS", 1000)
# Request bodies above this are refused with 413 before parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("FLAGSTAFF_MAX_REQUEST_BYTES", 5 * 1024 * 1024)
# An eval set file (JSON Lines or CSV) above this is refused with 413 before parsing.
FLAGSTAFF_EVAL_IMPORT_MAX_BYTES = env_int("FLAGSTAFF_EVAL_IMPORT_MAX_BYTES", 64 * 1024 * 1024)

# Serving (docs/serving.md). Without a listening Redis, a process checks an environment's
# revision at most this often; with Redis it also re-checks every RECHECK seconds, in case an
# announcement was lost.
FLAGSTAFF_REVISION_CHECK_SECONDS = env_float("FLAGSTAFF_REVISION_CHECK_SECONDS", 1.0)
FLAGSTAFF_REVISION_RECHECK_SECONDS = env_float("FLAGSTAFF_REVISION_RECHECK_SECONDS", 30.0)
# Serving endpoints remember a token this long, so they answer without the database (and a
# revoked token keeps working on them for at most this long).
FLAGSTAFF_TOKEN_CACHE_SECONDS = env_float("FLAGSTAFF_TOKEN_CACHE_SECONDS", 10.0)
FLAGSTAFF_MAX_CONTEXT_BYTES = env_int("FLAGSTAFF_MAX_CONTEXT_BYTES", 64 * 1024)
# Per token and second, across processes through the cache; 0 turns the limit off.
FLAGSTAFF_OFREP_RATE_LIMIT_PER_SECOND = env_int("FLAGSTAFF_OFREP_RATE_LIMIT_PER_SECOND", 10000)
FLAGSTAFF_STREAM_KEEPALIVE_SECONDS = env_float("FLAGSTAFF_STREAM_KEEPALIVE_SECONDS", 15.0)
# A stream ticket (the credential in an OFREP eventStreams URL) opens one stream, within this
# long of the bulk evaluation that issued it; a client reconnecting evaluates again for a new one.
FLAGSTAFF_STREAM_TICKET_SECONDS = env_int("FLAGSTAFF_STREAM_TICKET_SECONDS", 60)
# A change stream holds a web thread: it ends after this long and the client reconnects.
FLAGSTAFF_STREAM_MAX_SECONDS = env_float("FLAGSTAFF_STREAM_MAX_SECONDS", 300.0)
# Open streams one web process holds at most (0: no limit). Keep it below the threads per
# worker, so that streams never take the threads requests need: 24 of `serve`'s 32.
FLAGSTAFF_STREAMS_PER_PROCESS = env_int("FLAGSTAFF_STREAMS_PER_PROCESS", 24)
# The stream process (controlplane.asgi under uvicorn) holds streams on an event loop: a few KiB
# each, so thousands per process; past this many it answers 503 stream_capacity (0: no limit).
FLAGSTAFF_STREAM_PROCESS_CAPACITY = env_int("FLAGSTAFF_STREAM_PROCESS_CAPACITY", 10000)
# The stream process's public base URL (`http://streams.example.com`), when it is not reached
# through the web processes' own origin: snapshot answers name it (header Flagstaff-Stream) and
# OFREP's eventStreams point at it. Empty: streams are asked of the same origin (a proxy routes
# them to the stream process, or the web processes hold them in threads).
FLAGSTAFF_STREAM_URL = env_str("FLAGSTAFF_STREAM_URL", "").rstrip("/")

# Telemetry ingest (POST /api/v1/telemetry/calls). Larger batches or bodies are refused with 413;
# the body limit applies to the decoded JSON, so a gzip body cannot expand past it.
FLAGSTAFF_TELEMETRY_MAX_RECORDS = env_int("FLAGSTAFF_TELEMETRY_MAX_RECORDS", 1000)
FLAGSTAFF_TELEMETRY_MAX_BODY_BYTES = env_int("FLAGSTAFF_TELEMETRY_MAX_BODY_BYTES", 5 * 1024 * 1024)
# A record timestamped further ahead than this is refused (clock skew beyond it is a bug).
FLAGSTAFF_TELEMETRY_MAX_FUTURE_SECONDS = env_int("FLAGSTAFF_TELEMETRY_MAX_FUTURE_SECONDS", 300)
# User ids are stored as an HMAC-SHA256 under SECRET_KEY; this keeps the raw id as well.
FLAGSTAFF_TELEMETRY_STORE_RAW_USER_ID = env_bool("FLAGSTAFF_TELEMETRY_STORE_RAW_USER_ID", False)
# Raw call records and samples are deleted after these many days; rollups are kept.
FLAGSTAFF_TELEMETRY_RETENTION_DAYS = env_int("FLAGSTAFF_TELEMETRY_RETENTION_DAYS", 30)
FLAGSTAFF_SAMPLE_RETENTION_DAYS = env_int("FLAGSTAFF_SAMPLE_RETENTION_DAYS", 14)
FLAGSTAFF_TELEMETRY_RETENTION_BATCH = env_int("FLAGSTAFF_TELEMETRY_RETENTION_BATCH", 5000)
# A sample ({input, output}) larger than this, as JSON, is dropped; its call is still stored.
FLAGSTAFF_SAMPLE_MAX_BYTES = env_int("FLAGSTAFF_SAMPLE_MAX_BYTES", 64 * 1024)
# Each process re-reads the price table from the model catalog at most this often.
FLAGSTAFF_PRICE_CACHE_SECONDS = env_int("FLAGSTAFF_PRICE_CACHE_SECONDS", 60)

# Eval runs. CONCURRENCY: Messages API calls in flight per run (a run may ask for another).
# MAX_ATTEMPTS: tries per call on 429/529/5xx before the run pauses with the reason. A case
# claimed longer than CLAIM_TIMEOUT_SECONDS belongs to a worker taken to be dead (it must exceed
# a call's time with its retries). A worker gives a run SLICE_SECONDS, then queues the rest, so
# that no task outlives the task time limit; a batch is polled every BATCH_POLL_SECONDS. A run
# with more than CALLS_PER_WORKER calls in flight is split into parts of at most that many, each
# worked by a task (so a worker process) of its own.
FLAGSTAFF_EVAL_CONCURRENCY = env_int("FLAGSTAFF_EVAL_CONCURRENCY", 8)
FLAGSTAFF_EVAL_CALLS_PER_WORKER = env_int("FLAGSTAFF_EVAL_CALLS_PER_WORKER", 16)
FLAGSTAFF_EVAL_MAX_ATTEMPTS = env_int("FLAGSTAFF_EVAL_MAX_ATTEMPTS", 6)
FLAGSTAFF_EVAL_CLAIM_TIMEOUT_SECONDS = env_int("FLAGSTAFF_EVAL_CLAIM_TIMEOUT_SECONDS", 600)
FLAGSTAFF_EVAL_SLICE_SECONDS = env_int("FLAGSTAFF_EVAL_SLICE_SECONDS", 240)
FLAGSTAFF_EVAL_BATCH_POLL_SECONDS = env_int("FLAGSTAFF_EVAL_BATCH_POLL_SECONDS", 60)
for _name in (
    "CONCURRENCY",
    "CALLS_PER_WORKER",
    "MAX_ATTEMPTS",
    "CLAIM_TIMEOUT_SECONDS",
    "SLICE_SECONDS",
    "BATCH_POLL_SECONDS",
):
    if globals()[f"FLAGSTAFF_EVAL_{_name}"] < 1:
        raise ImproperlyConfigured(f"FLAGSTAFF_EVAL_{_name} must be at least 1")

# Rollouts: a new rollout's analysis interval (each rollout may set its own), and the lease a
# worker holds on a tick it claimed: a worker killed mid-tick leaves the tick to be taken over
# once the lease runs out, so a tick is delayed, never lost.
FLAGSTAFF_ROLLOUT_TICK_SECONDS = env_int("FLAGSTAFF_ROLLOUT_TICK_SECONDS", 60)
FLAGSTAFF_ROLLOUT_TICK_LEASE_SECONDS = env_int("FLAGSTAFF_ROLLOUT_TICK_LEASE_SECONDS", 120)
# A tick keeps each analysis window's per-arm sums up to a settled minute (rollouts/
# aggregate_checkpoints.py) and re-reads only the rollup rows after it. A minute is settled
# this many minutes after it ended: telemetry and live scores of a call that reach the rollups
# later than that (a sender's backlog, live scoring behind) are left out of the current stage's
# analysis. Set it above the longest delay of telemetry batches and live scoring.
FLAGSTAFF_ROLLOUT_SETTLED_MINUTES = env_int("FLAGSTAFF_ROLLOUT_SETTLED_MINUTES", 15)
for _name in ("TICK_SECONDS", "TICK_LEASE_SECONDS", "SETTLED_MINUTES"):
    if globals()[f"FLAGSTAFF_ROLLOUT_{_name}"] < 1:
        raise ImproperlyConfigured(f"FLAGSTAFF_ROLLOUT_{_name} must be at least 1")

# Rollback rehearsals (rollouts/services/rehearsals.py): where they run unless told (production,
# meaning a protected environment or one keyed `production`, only with ALLOW_PRODUCTION), the
# time any of the three propagation measures may take before the rehearsal fails and opens an
# incident, how long each is waited for at most, the API the probe client and the snapshot check
# go through (what services see; the worker must reach it), the canary's share in basis points,
# and how many canary units the probe resolves.
# The deploy checklist's "successful rollback rehearsal" item accepts one this many days old.
FLAGSTAFF_CHECKLIST_REHEARSAL_DAYS = env_int("FLAGSTAFF_CHECKLIST_REHEARSAL_DAYS", 30)
if FLAGSTAFF_CHECKLIST_REHEARSAL_DAYS < 1:
    raise ImproperlyConfigured("FLAGSTAFF_CHECKLIST_REHEARSAL_DAYS must be 1 or more")
FLAGSTAFF_REHEARSAL_ENVIRONMENT = env_str("FLAGSTAFF_REHEARSAL_ENVIRONMENT", "staging")
FLAGSTAFF_REHEARSAL_ALLOW_PRODUCTION = env_bool("FLAGSTAFF_REHEARSAL_ALLOW_PRODUCTION", False)
FLAGSTAFF_REHEARSAL_THRESHOLD_SECONDS = env_float("FLAGSTAFF_REHEARSAL_THRESHOLD_SECONDS", 5.0)
FLAGSTAFF_REHEARSAL_TIMEOUT_SECONDS = env_float("FLAGSTAFF_REHEARSAL_TIMEOUT_SECONDS", 30.0)
FLAGSTAFF_REHEARSAL_API_URL = env_str("FLAGSTAFF_REHEARSAL_API_URL", "http://127.0.0.1:8000").rstrip("/")
FLAGSTAFF_REHEARSAL_CANARY_WEIGHT = env_int("FLAGSTAFF_REHEARSAL_CANARY_WEIGHT", 100)
FLAGSTAFF_REHEARSAL_PROBE_UNITS = env_int("FLAGSTAFF_REHEARSAL_PROBE_UNITS", 20)
if FLAGSTAFF_REHEARSAL_THRESHOLD_SECONDS <= 0 or FLAGSTAFF_REHEARSAL_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured("FLAGSTAFF_REHEARSAL_THRESHOLD_SECONDS and _TIMEOUT_SECONDS must be positive")
if not 1 <= FLAGSTAFF_REHEARSAL_CANARY_WEIGHT <= 5000:
    raise ImproperlyConfigured("FLAGSTAFF_REHEARSAL_CANARY_WEIGHT must be from 1 to 5000 basis points")
if not 1 <= FLAGSTAFF_REHEARSAL_PROBE_UNITS <= 1000:
    raise ImproperlyConfigured("FLAGSTAFF_REHEARSAL_PROBE_UNITS must be from 1 to 1000")

# Budgets and incidents. The check judges latency p95 over the last WINDOW minutes of rollups,
# and only with at least MIN_CALLS observations of a metric in that window.
FLAGSTAFF_BUDGET_WINDOW_MINUTES = env_int("FLAGSTAFF_BUDGET_WINDOW_MINUTES", 15)
FLAGSTAFF_BUDGET_MIN_CALLS = env_int("FLAGSTAFF_BUDGET_MIN_CALLS", 20)
# An open latency incident resolves only once every p95 is at most this share of its budget, so
# a p95 hovering at the budget does not open and resolve an incident on every check.
FLAGSTAFF_BUDGET_RECOVERY_PERCENT = env_int("FLAGSTAFF_BUDGET_RECOVERY_PERCENT", 90)
if not 1 <= FLAGSTAFF_BUDGET_RECOVERY_PERCENT <= 100:
    raise ImproperlyConfigured(
        f"FLAGSTAFF_BUDGET_RECOVERY_PERCENT must be from 1 to 100, got {FLAGSTAFF_BUDGET_RECOVERY_PERCENT}"
    )
# Webhooks: the time one delivery may take (all of it, not each read), attempts before a delivery
# fails for good, and the waits between attempts (the last repeats).
FLAGSTAFF_WEBHOOK_TIMEOUT_SECONDS = env_int("FLAGSTAFF_WEBHOOK_TIMEOUT_SECONDS", 10)
FLAGSTAFF_WEBHOOK_MAX_ATTEMPTS = env_int("FLAGSTAFF_WEBHOOK_MAX_ATTEMPTS", 6)
try:
    FLAGSTAFF_WEBHOOK_BACKOFF_SECONDS = [
        int(value)
        for value in env_list("FLAGSTAFF_WEBHOOK_BACKOFF_SECONDS", ["60", "300", "1800", "7200", "21600"])
    ]
except ValueError as exc:
    raise ImproperlyConfigured("FLAGSTAFF_WEBHOOK_BACKOFF_SECONDS must be comma-separated integers") from exc
if not FLAGSTAFF_WEBHOOK_BACKOFF_SECONDS or min(FLAGSTAFF_WEBHOOK_BACKOFF_SECONDS) < 0:
    raise ImproperlyConfigured(
        "FLAGSTAFF_WEBHOOK_BACKOFF_SECONDS needs one or more waits of 0 seconds or more"
    )
# Webhook URLs must be https; plain http to 127.0.0.1 only when this is on (tests, local demos).
FLAGSTAFF_WEBHOOK_ALLOW_HTTP_LOOPBACK = env_bool("FLAGSTAFF_WEBHOOK_ALLOW_HTTP_LOOPBACK", DEBUG)
# Webhooks reach only public addresses: a URL naming a private, loopback, link-local or reserved
# address is refused on save, and so is a delivery whose host resolves to one. Turn this on for
# receivers on an internal network.
FLAGSTAFF_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool("FLAGSTAFF_WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)

# Usage & Cost Admin API sync: at most one request per interval across all report streams (the
# API asks for about one a minute sustained; tests use 0), and how far back the first pass reaches.
FLAGSTAFF_ADMIN_SYNC_MIN_INTERVAL_SECONDS = env_int("FLAGSTAFF_ADMIN_SYNC_MIN_INTERVAL_SECONDS", 60)
FLAGSTAFF_ADMIN_SYNC_BACKFILL_DAYS = env_int("FLAGSTAFF_ADMIN_SYNC_BACKFILL_DAYS", 7)
# Reconciliation flags a day and model whose gap to the cost report is above this percentage.
FLAGSTAFF_RECONCILIATION_THRESHOLD_PERCENT = env_float("FLAGSTAFF_RECONCILIATION_THRESHOLD_PERCENT", 5.0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Login throttling (controlplane/login_throttle.py): failed logins are counted per account and per
# client address (REMOTE_ADDR: behind a proxy, the proxy's, so its limit is the higher) over a
# window; at the limit, logins are refused until the window ends. 0 turns a limit off.
FLAGSTAFF_LOGIN_MAX_FAILURES_PER_ACCOUNT = env_int("FLAGSTAFF_LOGIN_MAX_FAILURES_PER_ACCOUNT", 5)
FLAGSTAFF_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("FLAGSTAFF_LOGIN_MAX_FAILURES_PER_ADDRESS", 50)
FLAGSTAFF_LOGIN_LOCKOUT_SECONDS = env_int("FLAGSTAFF_LOGIN_LOCKOUT_SECONDS", 15 * 60)
# Reverse proxies in front of the web process that each append to X-Forwarded-For; the login
# throttle's client address is read that many entries from the header's right end.
FLAGSTAFF_TRUSTED_PROXY_HOPS = env_int("FLAGSTAFF_TRUSTED_PROXY_HOPS", 0)
if FLAGSTAFF_TRUSTED_PROXY_HOPS < 0:
    raise ImproperlyConfigured("FLAGSTAFF_TRUSTED_PROXY_HOPS must be 0 or more")
if FLAGSTAFF_LOGIN_LOCKOUT_SECONDS < 1:
    raise ImproperlyConfigured("FLAGSTAFF_LOGIN_LOCKOUT_SECONDS must be 1 or more")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "flags:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start while it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]

# API lists answer at most this many items a page; a larger `?limit=` is refused with 400.
FLAGSTAFF_API_MAX_LIMIT = env_int("FLAGSTAFF_API_MAX_LIMIT", 1000)
if FLAGSTAFF_API_MAX_LIMIT < 1:
    raise ImproperlyConfigured(f"FLAGSTAFF_API_MAX_LIMIT must be 1 or more, got {FLAGSTAFF_API_MAX_LIMIT}")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "controlplane.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["controlplane.auth.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["controlplane.parsers.NestingSafeJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "controlplane.api_docs.DocumentedAutoSchema",
    "EXCEPTION_HANDLER": "controlplane.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "controlplane.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "UNAUTHENTICATED_USER": None,
    # `format` is a query parameter of our own (audit export), not DRF's renderer override.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Flagstaff API",
    "DESCRIPTION": "Versioned Claude configs behind flags: environments, flags, config versions, "
    "publishing, the model catalog and the audit log.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI is served from our own static files: no CDN is needed to read the docs.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Operations are grouped on the docs page by the path segment after this prefix (flags,
    # telemetry, rollouts...), not all under one "api" heading; the paths themselves are unchanged.
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Several models have a `state`; these name the rollouts' choice sets rather than a hash.
    "ENUM_NAME_OVERRIDES": {
        "RolloutStateEnum": "rollouts.models.RolloutState",
        "StageStateEnum": "rollouts.models.StageState",
        "ExperimentStateEnum": "rollouts.models.ExperimentState",
        "ScheduledChangeKindEnum": "rollouts.models.ScheduledChangeKind",
        "ScheduledChangeStateEnum": "rollouts.models.ScheduledChangeState",
    },
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Stream tickets travel in URLs; no log line shows one (gunicorn's access log: gunicorn_conf.py).
    "filters": {"redact_url_credentials": {"()": "controlplane.redaction.RedactUrlCredentials"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_url_credentials"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # The Anthropic SDK's HTTP client logs every request at INFO: an eval run makes thousands, and
    # each line costs its thread CPU under the interpreter lock (bench/bench_eval_run.py). A
    # failed call reaches the log and the run's reason through the run engine instead. LOG_LEVEL
    # DEBUG shows them again.
    "loggers": {"httpx2": {"level": "DEBUG" if LOG_LEVEL == "DEBUG" else "WARNING"}},
}
