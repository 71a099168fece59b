"""Settings for securefiles, read once from the environment (and `.env` if present).

Every value has a safe default except the secrets: SECRET_KEY and ENCRYPTION_KEYS must be
given, and there is no fallback for either. See `.env.example` for the full list.
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Values already in the environment win over `.env` (django-environ uses setdefault).
# SECUREFILES_ENV_FILE names another file; set to "" it reads none (the test suite does
# this, so a developer's `.env` never changes what the tests see).
_ENV_FILE = os.environ.get("SECUREFILES_ENV_FILE", str(BASE_DIR / ".env"))
if _ENV_FILE:
    environ.Env.read_env(_ENV_FILE)

SECRET_KEY = env.str("SECRET_KEY")
# Previous SECRET_KEYs, still accepted while rotating (Django's own setting): sessions,
# reset links and queued jobs' sealed arguments made under them keep working until removed.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
# Off unless asked for (DEBUG=True): debug pages list every URL pattern and settings.
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
HTTPS = env.bool("HTTPS", default=False)


def _site_url(value: str) -> str:
    """SITE_URL as given, without a trailing slash; '' when unset.

    Raises ImproperlyConfigured unless it is ``http(s)://host[:port]`` with nothing after
    the host: no path, query, fragment or credentials.
    """
    value = value.strip().removesuffix("/")
    if not value:
        return ""
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok, parts = False, urlsplit("")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not port_ok
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise ImproperlyConfigured(
            f"SITE_URL must look like https://files.example.org (http or https, a host, an "
            f"optional port, no path, query or credentials), not {value!r}"
        )
    return value


# The public address of the portal, e.g. https://files.example.org: every link in an e-mail
# (password resets) is built from it, never from the request's Host header. While unset,
# the first ALLOWED_HOSTS entry on the scheme HTTPS implies (securefiles.lib.site.site_url).
SITE_URL = _site_url(env.str("SITE_URL", default=""))

# Master keys, `id:base64,...`, the first one wraps new files' data keys. Parsed and
# validated by sharing.keyring: the portal refuses to start (wsgi, asgi, manage.py check)
# while this is missing or weak. Kept as a string here so that generate_encryption_key
# can run before any key exists.
ENCRYPTION_KEYS = env.str("ENCRYPTION_KEYS", default="")


def _positive_int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    value = env.int(name, default=default)
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be an integer <= {maximum}, got {value}")
    return value


MAX_UPLOAD_MB = _positive_int("MAX_UPLOAD_MB", 1024, minimum=1)
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
# Longest a client may go without sending (or reading) a single byte in the middle of a
# request, in seconds, under gunicorn; then its connection is dropped and its thread freed.
# A slow transfer that keeps moving is never cut (securefiles.client_idle).
CLIENT_IDLE_TIMEOUT_SECONDS = _positive_int("CLIENT_IDLE_TIMEOUT_SECONDS", 15, minimum=1)

INSTALLED_APPS = [
    # The admin site requires staff verified with a second factor (accounts.admin_site).
    "accounts.apps.SecureAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before staticfiles: runserver leaves static files to WhiteNoise, DEBUG on or off,
    # so a page looks the same under runserver as under gunicorn.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_otp",
    "accounts.apps.SecondFactorsConfig",  # django_otp.plugins.otp_totp, labelled for people
    "axes",
    "csp",
    # Dependencies run one way: throttle and audit <- accounts <- sharing.
    "throttle",
    "audit",
    "accounts",
    "sharing",
    "filerequests",
    # The HTTP API (above sharing; nothing imports it). django-ninja serves the docs
    # page's Swagger UI from its own static files when listed here (no CDN).
    "ninja",
    "api",
    # Background jobs (jobs/README in the main README): django-tasks' API on Django 5.2,
    # its database backend (a queue in this database, run by `manage.py db_worker`), and
    # the jobs app's runs, batches and locks for the maintenance commands.
    "django_tasks",
    "django_tasks_db",
    "jobs",
    # /healthz, /readyz and /metrics (above every app; nothing imports it).
    "ops",
]

MIDDLEWARE = [
    # First: load balancers' probes and the scraper are answered before any host check,
    # HTTPS redirect, session or login step (ops.middleware, README "Health and metrics").
    "ops.middleware.ProbeMiddleware",
    # Counts what every middleware below answers, by route name and status.
    "ops.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Outermost after SecurityMiddleware: every response, errors that an inner middleware
    # answers by itself included (400 for a NUL, 413, 429), carries these headers.
    "csp.middleware.CSPMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "securefiles.middleware.PermissionsPolicyMiddleware",
    "securefiles.middleware.NoStoreForUsersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Outside every middleware that answers errors by itself: under /api/ each error is
    # an RFC 9457 problem document, never an HTML page.
    "api.problems.ProblemMiddleware",
    # Before the session is looked up: a NUL in its cookie made PostgreSQL fail (a 500).
    "securefiles.middleware.DropNulCookiesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "securefiles.middleware.RejectNulQueryMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.SecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Refuses big bodies outside the upload view before CsrfViewMiddleware.process_view
    # reads them (every __call__ runs before any process_view).
    "securefiles.middleware.RequestBodyLimitMiddleware",
    # A write the database kept rolling back as a deadlock victim: 503 with Retry-After.
    "securefiles.middleware.TryAgainMiddleware",
    # Times are shown in the zone the browser reports (the `tz` cookie static/js/tz.js sets).
    "securefiles.middleware.BrowserTimezoneMiddleware",
    # Last, as django-axes requires: it turns lockouts into responses.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "securefiles.urls"

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
                "securefiles.context_processors.site",
            ],
        },
    },
]

WSGI_APPLICATION = "securefiles.wsgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
if env.str("DATABASE_TEST_NAME", default=""):
    # Tests only: a file instead of SQLite's shared in-memory database, so the live
    # server's threads each get their own connection (tests/testenv.py sets it).
    DATABASES["default"]["TEST"] = {"NAME": env.str("DATABASE_TEST_NAME")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # libpq waits for a silent server for ever by default (a frozen host, a black-holed
    # route): a request, a job or /readyz would hang with it. ?connect_timeout= in
    # DATABASE_URL overrides this (seconds).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    # Each gunicorn thread keeps its connection for a minute rather than opening one per
    # request (4 ms each, measured; far more under load: README "Metadata at scale"),
    # checked before reuse. ?conn_max_age=0 in DATABASE_URL connects per request.
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Wait for a writer instead of failing with "database is locked" under threads.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out account or IP is refused even with the right password.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "sharing:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Every time shown names its zone ("30 Nov 2026, 14:05 CET"), the admin's too: the locale's
# formats, which win over DATETIME_FORMAT, come from securefiles/formats. The zone is the
# browser's (securefiles.middleware.BrowserTimezoneMiddleware), else UTC.
FORMAT_MODULE_PATH = ["securefiles.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve from the source folders too, so the portal works before collectstatic has run.
WHITENOISE_USE_FINDERS = True

# Ciphertext lives here. Nothing serves MEDIA_URL: there is no media URL pattern, and the
# encrypted storage's url() refuses. Plaintext is only ever streamed by the download view.
# A relative MEDIA_ROOT is taken from the project folder, whatever the working directory.
MEDIA_ROOT = (BASE_DIR / env.str("MEDIA_ROOT", default="media")).resolve()

STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="local")
if STORAGE_BACKEND == "local":
    CIPHERTEXT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": MEDIA_ROOT,
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    }
elif STORAGE_BACKEND == "s3":
    # django-storages reads its own AWS_* settings; the bucket must be private.
    AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME")
    AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None
    AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default="") or None
    AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default="") or None
    AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="") or None
    AWS_LOCATION = env.str("AWS_LOCATION", default="")
    AWS_DEFAULT_ACL = None
    AWS_QUERYSTRING_AUTH = True
    AWS_S3_FILE_OVERWRITE = False
    CIPHERTEXT_STORAGE = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {}}
else:
    raise ImproperlyConfigured(f"STORAGE_BACKEND must be 'local' or 's3', not {STORAGE_BACKEND!r}")

STORAGES = {
    # The inner storage holds ciphertext only; the app never writes to it directly.
    "ciphertext": CIPHERTEXT_STORAGE,
    "encrypted": {
        "BACKEND": "sharing.storage.encrypted.EncryptedStorage",
        "OPTIONS": {"inner": "ciphertext"},
    },
    "default": {
        "BACKEND": "sharing.storage.encrypted.EncryptedStorage",
        "OPTIONS": {"inner": "ciphertext"},
    },
    # Compressed but not hashed: a missing manifest can never turn a page into a 500.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Uploads: the upload view installs its own encrypting handler; every other view gets
# none, so a file posted anywhere else is dropped instead of spooled to a temp file.
FILE_UPLOAD_HANDLERS: list[str] = []
# The encrypting handler receives the body in 1 MiB pieces, one segment (Django's default
# is 64 KiB): measured on the benchmark, 2.5 times the upload speed of 256 KiB pieces.
UPLOAD_CHUNK_SIZE = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_NUMBER_FILES = 100
FILE_UPLOAD_PERMISSIONS = 0o600

# Security headers and cookies. HTTPS=True in production turns on the transport settings.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env.int("HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("HSTS_PRELOAD", default=False)
# includeSubDomains binds every subdomain to HTTPS and preload is hard to undo: both are the
# operator's decision (HSTS_INCLUDE_SUBDOMAINS, HSTS_PRELOAD), so `check --deploy` does not
# warn about them while the operator leaves them off.
SILENCED_SYSTEM_CHECKS = [
    check
    for check, enabled in (
        ("security.W005", SECURE_HSTS_INCLUDE_SUBDOMAINS),
        ("security.W021", SECURE_HSTS_PRELOAD),
    )
    if not enabled
]
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "accounts.views.csrf_failure"

# Messages ("Uploaded “name”") live in the session, on the server: the cookie storage
# is signed but not encrypted, and would carry file names to the browser in clear.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="securefiles@localhost")
# Seconds a connection to the mail server may wait for an answer. E-mail is sent by the job
# worker, never in a request; a hung server makes the job retry (MAIL_ATTEMPTS in all,
# MAIL_RETRY_SECONDS after the first failure, doubling each time).
EMAIL_TIMEOUT = _positive_int("EMAIL_TIMEOUT", 10, minimum=1)
MAIL_ATTEMPTS = _positive_int("MAIL_ATTEMPTS", 5, minimum=1)
MAIL_RETRY_SECONDS = _positive_int("MAIL_RETRY_SECONDS", 60, minimum=1)

# Background jobs (django-tasks). "database": a queue in the portal's own database, run by
# `manage.py db_worker` (make run and make serve start one); no extra service. "immediate":
# run each job in the process that queued it, at once (tests, or a site with no worker).
_TASK_BACKENDS = {
    "database": "django_tasks_db.DatabaseBackend",
    "immediate": "django_tasks.backends.immediate.ImmediateBackend",
}
TASKS_BACKEND = env.str("TASKS_BACKEND", default="database")
if TASKS_BACKEND not in _TASK_BACKENDS:
    raise ImproperlyConfigured(f"TASKS_BACKEND must be one of {sorted(_TASK_BACKENDS)}")
TASKS = {"default": {"BACKEND": _TASK_BACKENDS[TASKS_BACKEND]}}
# A maintenance run's lock whose holder has not been heard of for this long (seconds) is
# taken over by the next run, which resumes it; a holder on this machine that is no longer
# running is taken over at once.
JOB_LOCK_STALE_SECONDS = _positive_int("JOB_LOCK_STALE_SECONDS", 600, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Share-link tokens live in URL paths; no log line may carry one (securefiles.log_filters).
    "filters": {
        "redact_link_tokens": {"()": "securefiles.log_filters.RedactLinkTokens"},
        # A client dropped for idling is logged as one line, without a traceback.
        "drop_idle_tracebacks": {"()": "securefiles.client_idle.DropIdleTracebacks"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_link_tokens", "drop_idle_tracebacks"],
        },
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # runserver's request lines ("GET /s/... 200").
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "sharing": {
            "handlers": ["console"],
            "level": env.str("LOG_LEVEL", default="INFO"),
            "propagate": False,
        },
    },
}

# -- sharing, links and the audit log

# Key of the audit log's HMAC chain. Defaults to a key derived from SECRET_KEY; production
# sets its own so that rotating SECRET_KEY does not break verification of the old log.
AUDIT_LOG_KEY = env.str("AUDIT_LOG_KEY", default="")
# Proxies whose X-Forwarded-For is believed for the client IP (exact addresses).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# Where share links live (/s/<token>/): the URLconf and the log filter that keeps tokens out
# of every log line both read it, so they cannot disagree. Part of the public contract.
LINK_PATH = "s/"
LINK_DEFAULT_HOURS = _positive_int("LINK_DEFAULT_HOURS", 168, minimum=1)
LINK_MAX_HOURS = _positive_int("LINK_MAX_HOURS", 720, minimum=1)
# Wrong link passwords allowed per link per window before answering 429.
LINK_PASSWORD_ATTEMPTS = _positive_int("LINK_PASSWORD_ATTEMPTS", 5, minimum=1)
LINK_PASSWORD_WINDOW_SECONDS = _positive_int("LINK_PASSWORD_WINDOW_SECONDS", 900, minimum=1)
# Minutes a browser session may resume (with Range requests) a link download it claimed,
# without claiming another: a broken transfer is resumed, never given back.
LINK_RESUME_MINUTES = _positive_int("LINK_RESUME_MINUTES", 60, minimum=1)
# Bytes (MiB) one claimed link download may send beyond the file's size across its resumes:
# what broken connections lost in transit. A link's downloads together draw at most
# size - 1 such bytes, so a limited link never delivers one complete copy more than its limit.
LINK_RESUME_SLACK_MB = _positive_int("LINK_RESUME_SLACK_MB", 64, minimum=0)
# Throttle counters: the database (shared by all workers) unless a Redis URL is given.
THROTTLE_REDIS_URL = env.str("THROTTLE_REDIS_URL", default="")
# Share by name: lookups that match no account, per user per window, before the share form
# answers 429 (and looks nothing up) until the window is over. Stops account enumeration.
SHARE_LOOKUP_FAILURES = _positive_int("SHARE_LOOKUP_FAILURES", 10, minimum=1)
SHARE_LOOKUP_WINDOW_SECONDS = _positive_int("SHARE_LOOKUP_WINDOW_SECONDS", 3600, minimum=1)

# -- retention and quotas

# Storage quota per user in MiB (0 = none); overridable per user in the admin.
USER_QUOTA_MB = _positive_int("USER_QUOTA_MB", 0)
# "Delete after N days" offered at upload: the default (0 = keep) and the maximum (0 = none).
FILE_DEFAULT_DAYS = _positive_int("FILE_DEFAULT_DAYS", 0)
FILE_MAX_DAYS = _positive_int("FILE_MAX_DAYS", 0)
# Site-wide retention: purge_expired deletes files older than this many days (0 = never).
RETENTION_DAYS = _positive_int("RETENTION_DAYS", 0)

# Resumable (tus 1.0.0) uploads: an unfinished upload expires after this many hours
# (Upload-Expires), a user may have this many unfinished at once, and a PATCH holds its
# upload for this many seconds past its last stored segment.
TUS_UPLOAD_EXPIRY_HOURS = _positive_int("TUS_UPLOAD_EXPIRY_HOURS", 24, minimum=1)
TUS_MAX_UNFINISHED = _positive_int("TUS_MAX_UNFINISHED", 10, minimum=1)
TUS_PATCH_LEASE_SECONDS = _positive_int("TUS_PATCH_LEASE_SECONDS", 60, minimum=1)

# -- malware scanning (ClamAV's clamd, INSTREAM; sharing.services.scanning)

# Off unless one is set: clamd's Unix socket (LocalSocket), or its TCP listener (TCPSocket,
# TCPAddr). Every upload path then streams its plaintext to clamd and stores the file only
# on a clean verdict.
CLAMD_SOCKET = env.str("CLAMD_SOCKET", default="")
CLAMD_HOST = env.str("CLAMD_HOST", default="")
# A TCP port (RFC 793: 16 bits); getaddrinfo would quietly take 70000 as 70000 % 65536.
CLAMD_PORT = _positive_int("CLAMD_PORT", 3310, minimum=1, maximum=65535)
# Seconds to wait for clamd at each step (connect, each chunk, the verdict after the end).
CLAMD_TIMEOUT_SECONDS = _positive_int("CLAMD_TIMEOUT_SECONDS", 60, minimum=1)
# clamd unreachable, timing out or failing: refuse the upload (False, fail-closed) or store
# it marked "not scanned" (True). Logged-in users' uploads, then file-request visitors'.
CLAMD_FAIL_OPEN = env.bool("CLAMD_FAIL_OPEN", default=False)
CLAMD_FAIL_OPEN_VISITORS = env.bool("CLAMD_FAIL_OPEN_VISITORS", default=False)


def _over_limit_policy(name: str, default: str) -> str:
    value = env.str(name, default=default)
    if value not in ("store", "refuse"):
        raise ImproperlyConfigured(f"{name} must be 'store' or 'refuse', got {value!r}")
    return value


# A file past clamd's StreamMaxLength gets no verdict: "store" it marked "not scanned
# (too large)", or "refuse" it. Logged-in users' uploads, then file-request visitors'.
CLAMD_OVER_LIMIT = _over_limit_policy("CLAMD_OVER_LIMIT", "store")
CLAMD_OVER_LIMIT_VISITORS = _over_limit_policy("CLAMD_OVER_LIMIT_VISITORS", "refuse")
if CLAMD_SOCKET and CLAMD_HOST:
    raise ImproperlyConfigured("Set CLAMD_SOCKET or CLAMD_HOST (with CLAMD_PORT), not both")
# File requests (/r/<token>/): people without an account send files into a user's space.
# Expiry offered on creation (hours; the default) and its cap (days).
FILE_REQUEST_DEFAULT_HOURS = _positive_int("FILE_REQUEST_DEFAULT_HOURS", 168, minimum=1)
FILE_REQUEST_MAX_DAYS = _positive_int("FILE_REQUEST_MAX_DAYS", 30, minimum=1)
# Uploads a client address may start through file requests per window (form files and tus
# creations alike), counted in the shared throttle counters; then 429 until the window ends.
FILE_REQUEST_UPLOADS_PER_IP = _positive_int("FILE_REQUEST_UPLOADS_PER_IP", 100, minimum=1)
FILE_REQUEST_UPLOAD_WINDOW_SECONDS = _positive_int(
    "FILE_REQUEST_UPLOAD_WINDOW_SECONDS", 3600, minimum=1
)
# Links a user may e-mail from the portal (to any address they type) per window: the
# portal's mail server must not become a way to send mail in bulk.
FILE_REQUEST_EMAILS_PER_USER = _positive_int("FILE_REQUEST_EMAILS_PER_USER", 30, minimum=1)
FILE_REQUEST_EMAIL_WINDOW_SECONDS = _positive_int(
    "FILE_REQUEST_EMAIL_WINDOW_SECONDS", 3600, minimum=1
)
# A request's password is throttled as a link's: LINK_PASSWORD_ATTEMPTS per
# LINK_PASSWORD_WINDOW_SECONDS, per request.
# -- health and metrics (ops)

# /metrics is off (404) until this is set: the SHA-256 (hex) of the bearer token the
# Prometheus scraper sends (`manage.py generate_metrics_token` makes both). Only the digest
# is kept, as for every other token.
METRICS_TOKEN_SHA256 = env.str("METRICS_TOKEN_SHA256", default="").strip().lower()
if METRICS_TOKEN_SHA256 and (
    len(METRICS_TOKEN_SHA256) != 64
    or any(c not in "0123456789abcdef" for c in METRICS_TOKEN_SHA256)
):
    raise ImproperlyConfigured(
        "METRICS_TOKEN_SHA256 must be 64 hex digits, the SHA-256 of the scrape token "
        "(python manage.py generate_metrics_token)"
    )

# -- the HTTP API and personal access tokens

# Where the HTTP API lives (/api/v1/...): the URLconf, the problem-document middleware and
# the second-factor middleware (which leaves API requests to the API's own check) read it.
API_PATH = "api/"

# Longest life a personal access token may be given, in days (the form offers up to this).
API_TOKEN_MAX_DAYS = _positive_int("API_TOKEN_MAX_DAYS", 365, minimum=1)
# Requests per token (or per user's browser sessions) per window to /api/ and the tus
# endpoint, counted in the shared throttle counters; then 429 with Retry-After.
API_RATE_LIMIT = _positive_int("API_RATE_LIMIT", 600, minimum=1)
API_RATE_WINDOW_SECONDS = _positive_int("API_RATE_WINDOW_SECONDS", 60, minimum=1)

# -- accounts and sessions

# Login lockout: three limits, one design (accounts.login_policy, README "Login lockout").
# django-axes locks a username-and-address pair after LOGIN_FAILURE_LIMIT failures, and
# only that account's own success clears them. accounts.login_policy adds the account-wide
# and address-wide limits, which spare browsers that have signed in to the account before.
# An admin clears axes lockouts in the admin (Axes → Access attempts) or `axes_reset`.
AXES_FAILURE_LIMIT = _positive_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=_positive_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
# Only the pair: with "ip_address" alone, any success from an address (the attacker's own
# account) deleted every failure counted from it, other accounts' included.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "audit.actors.client_ip"  # REMOTE_ADDR unless TRUSTED_PROXIES
AXES_RESET_ON_SUCCESS = True
LOGIN_ACCOUNT_FAILURE_LIMIT = _positive_int("LOGIN_ACCOUNT_FAILURE_LIMIT", 30, minimum=1)
LOGIN_ADDRESS_FAILURE_LIMIT = _positive_int("LOGIN_ADDRESS_FAILURE_LIMIT", 30, minimum=1)
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# Two-factor authentication (TOTP, django-otp). Staff must enrol when this is on; the admin
# site always requires a verified second factor.
STAFF_REQUIRE_2FA = env.bool("STAFF_REQUIRE_2FA", default=True)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="securefiles")
# No admin page shows a TOTP secret or its QR code (accounts.admin replaces django-otp's).
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
RECOVERY_CODES = 10

# Password reset requests per window: from one client address (over it: 429), and for one
# e-mail address typed (over it: the usual "check your e-mail" page, but nothing is sent).
PASSWORD_RESET_LIMIT_PER_ADDRESS = _positive_int("PASSWORD_RESET_LIMIT_PER_ADDRESS", 10, minimum=1)
PASSWORD_RESET_LIMIT_PER_ACCOUNT = _positive_int("PASSWORD_RESET_LIMIT_PER_ACCOUNT", 3, minimum=1)
PASSWORD_RESET_WINDOW_SECONDS = _positive_int("PASSWORD_RESET_WINDOW_SECONDS", 3600, minimum=1)

# Days an invitation's one-time link works (accounts.services.invitation_send).
INVITATION_DAYS = _positive_int("INVITATION_DAYS", 7, minimum=1)

# -- Single sign-on through OpenID Connect (mozilla-django-oidc; accounts.oidc). Off while
# OIDC_RP_CLIENT_ID is empty. The provider's endpoints are named explicitly (no discovery
# at start-up); the ID token's issuer must be OIDC_OP_ISSUER and its audience the client id.
OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID", default="")
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
OIDC_RP_CLIENT_SECRET = env.str("OIDC_RP_CLIENT_SECRET", default="")
OIDC_OP_ISSUER = env.str("OIDC_OP_ISSUER", default="")
OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("OIDC_OP_AUTHORIZATION_ENDPOINT", default="")
OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT", default="")
OIDC_OP_JWKS_ENDPOINT = env.str("OIDC_OP_JWKS_ENDPOINT", default="")
OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT", default="")  # optional
OIDC_RP_SIGN_ALGO = env.str("OIDC_RP_SIGN_ALGO", default="RS256")
OIDC_RP_SCOPES = env.str("OIDC_RP_SCOPES", default="openid email profile")
OIDC_LOGIN_LABEL = env.str("OIDC_LOGIN_LABEL", default="Sign in with your organisation")
# Create an account at a first sign-in whose `sub` matches none (else: only invited users,
# who link their account by signing in from their invitation, or accounts linked earlier).
OIDC_CREATE_USER = env.bool("OIDC_CREATE_USERS", default=False)
# A claim listing group names: the user's groups are set from it at every sign-in.
OIDC_GROUPS_CLAIM = env.str("OIDC_GROUPS_CLAIM", default="")
# Users with a provider identity may not log in with a local password.
OIDC_DISABLE_PASSWORD_LOGIN = env.bool("OIDC_DISABLE_PASSWORD_LOGIN", default=False)
# Whether the provider's MFA counts as the second factor staff need: an `amr` value from
# OIDC_MFA_AMR or an `acr` from OIDC_MFA_ACR in the ID token.
OIDC_MFA_SATISFIES_2FA = env.bool("OIDC_MFA_SATISFIES_2FA", default=False)
OIDC_MFA_AMR = env.list("OIDC_MFA_AMR", default=["mfa"])
OIDC_MFA_ACR = env.list("OIDC_MFA_ACR", default=[])
OIDC_TIMEOUT = _positive_int("OIDC_TIMEOUT", 10, minimum=1)
OIDC_VERIFY_SSL = env.bool("OIDC_VERIFY_SSL", default=True)
# Fixed: authorization code with PKCE (S256) and a nonce; ID token's claims only from the
# token (and userinfo, when its sub matches); no unsigned tokens.
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_ALLOW_UNSECURED_JWT = False
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
if OIDC_ENABLED:
    _missing = [
        name
        for name in (
            "OIDC_OP_ISSUER",
            "OIDC_OP_AUTHORIZATION_ENDPOINT",
            "OIDC_OP_TOKEN_ENDPOINT",
            "OIDC_OP_JWKS_ENDPOINT",
        )
        if not globals()[name]
    ]
    if _missing:
        raise ImproperlyConfigured("OIDC_RP_CLIENT_ID is set; also set " + ", ".join(_missing))
    AUTHENTICATION_BACKENDS = [*AUTHENTICATION_BACKENDS, "accounts.oidc.PortalOIDCBackend"]

# Self-service sign-up: off unless the operator turns it on.
SIGNUP_ENABLED = env.bool("SIGNUP_ENABLED", default=False)

# Whether the share notification e-mail names the file. Off: a file's name (a client's or
# patient's) would travel in clear through every mail server; the mail links to the portal.
SHARE_EMAIL_INCLUDES_NAME = env.bool("SHARE_EMAIL_INCLUDES_NAME", default=False)

# Sessions end after this many idle minutes (the expiry moves on with every request).
SESSION_IDLE_MINUTES = _positive_int("SESSION_IDLE_MINUTES", 60, minimum=1)
SESSION_COOKIE_AGE = SESSION_IDLE_MINUTES * 60
SESSION_SAVE_EVERY_REQUEST = True

# -- Content-Security-Policy (django-csp 4): everything from this origin, nothing inline.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)
