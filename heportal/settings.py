"""Settings for HE Portal, read from the environment.

One module for every deployment. Defaults run a fresh checkout: SQLite in
``data/`` and the Redis that ``make demo`` starts (or finds) on 127.0.0.1.
"""
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def env_int(name, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def env_list(name, default):
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name):
    """A secret from NAME, or from the file named by NAME_FILE."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name)


DATA_DIR = Path(os.environ.get("HEPORTAL_DATA_DIR", BASE_DIR / "data"))
# The data folder holds the secret key, the database (sessions, password
# hashes) and SSH keys: only its owner may read it.
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
if DATA_DIR.stat().st_uid == os.getuid():
    DATA_DIR.chmod(0o700)


def private_file(path):
    """Create ``path`` empty with mode 0600, or make an existing one of ours 0600; returns it."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        info = os.stat(path)
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, 0o600)
    return path


def _secret_key():
    """SECRET_KEY from the environment, else one generated once and kept in DATA_DIR."""
    key = env_secret("SECRET_KEY")
    if key:
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        private_file(path).write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()


def _secrets_keys():
    """Fernet keys for secrets stored in the database (upgrades.secrets): the
    first encrypts, all decrypt. HEPORTAL_SECRETS_KEYS (comma-separated), the
    file HEPORTAL_SECRETS_KEYS_FILE (one key a line), else a key file
    generated once in DATA_DIR. Never in the database itself."""
    raw = os.environ.get("HEPORTAL_SECRETS_KEYS")
    if raw:
        return [k.strip() for k in raw.split(",") if k.strip()]
    path = Path(os.environ.get("HEPORTAL_SECRETS_KEYS_FILE") or DATA_DIR / "secrets.keys")
    if not path.exists():
        from cryptography.fernet import Fernet

        private_file(path).write_text(Fernet.generate_key().decode() + "\n")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


SECRETS_KEYS = _secrets_keys()


AUDIT_KEYS_FILE = Path(os.environ.get("HEPORTAL_AUDIT_KEYS_FILE") or DATA_DIR / "audit.keys")


def _audit_keys(path):
    """HMAC keys for the audit chain (upgrades.audit): the first signs new events,
    all verify (each event names its key). One a line in HEPORTAL_AUDIT_KEYS_FILE,
    else DATA_DIR/audit.keys, generated once with mode 0600. Never in the database:
    whoever can write the database but not read this file cannot forge the chain."""
    if not path.exists():
        private_file(path).write_text(secrets.token_hex(32) + "\n")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


AUDIT_KEYS = _audit_keys(AUDIT_KEYS_FILE)
# Every new head of the audit chain (seq, hash, time) is appended to this file, outside
# the database, and `manage.py audit_verify` checks the database against it ("" = none).
# Make it append-only for the portal's user (chattr +a) or ship it off the machine.
AUDIT_ANCHOR_FILE = os.environ.get("HEPORTAL_AUDIT_ANCHOR_FILE", str(DATA_DIR / "audit.anchor"))
AUDIT_ANCHOR_FSYNC = env_bool("HEPORTAL_AUDIT_ANCHOR_FSYNC", False)
AUDIT_ANCHOR_SYSLOG = env_bool("HEPORTAL_AUDIT_ANCHOR_SYSLOG", False)

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_rq",
    "upgrades",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "upgrades.errors.method_not_allowed_page",
    "upgrades.errors.DatabaseUnavailable",
]

ROOT_URLCONF = "heportal.urls"

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
                "upgrades.context.portal",
            ],
        },
    },
]

ASGI_APPLICATION = "heportal.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'heportal.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
        conn_health_checks=True,  # a kept connection the database dropped (restart) is replaced, not used
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite creates the file (and its -wal/-shm files, with the same mode)
    # world-readable: create it 0600 first.
    if DATABASES["default"]["NAME"] and not str(DATABASES["default"]["NAME"]).startswith(":"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        private_file(DATABASES["default"]["NAME"])
    # Web process and RQ workers write the same file: wait for locks instead
    # of failing, and let readers run beside the writer.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# channels-redis waits for messages with BZPOPMIN blocking up to 5 s; redis-py's
# default 5 s socket timeout would end that wait with a TimeoutError and close
# every idle websocket. The read timeout must outlast the blocking call.
REDIS_SOCKET_TIMEOUT = 15
# A pooled connection Redis closed (a restart) is tried once more on a fresh one.
# channels-redis 4.3 builds its pools itself (ConnectionPool.from_url), so they get
# no retry (redis-py's client-level default applies only to pools it builds), and
# redis-py 8 skips its check for a closed pooled connection on TCP (maintenance
# notifications "auto"): the first command after a restart failed, in the
# publishers (message dropped) and in daphne (a websocket handshake answered 500).
# Only a connection error is retried: a command that timed out may have run.
CHANNEL_RETRY = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": REDIS_SOCKET_TIMEOUT,
                       "socket_connect_timeout": 5, "retry": CHANNEL_RETRY}],
            "prefix": os.environ.get("CHANNELS_PREFIX", "heportal"),
            "capacity": 5000,
            "expiry": 60,
        },
    }
}

RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600},
    # The emergency lane (maintenance modes, the diagnostic), with a worker of its own.
    "emergency": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600},
    "poll": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 300},
}
# A worker that keeps its job running while Redis restarts (upgrades/worker.py).
RQ = {"WORKER_CLASS": "upgrades.worker.Worker"}

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "upgrades.permissions.RoleBackend",  # a global admin may use the admin site (upgrades/permissions.py)
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if env_bool("FAST_PASSWORD_HASHER", False):
    # Tests only: the default hasher costs ~0.3 s per login.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# E-mail (approval requests): Django's own settings, from the environment.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "he-portal@localhost")
# Where the file backend (django.core.mail.backends.filebased.EmailBackend) writes
# each message; make demo uses it, so mail is read in data/mail/.
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(DATA_DIR / "mail"))
# The portal's address as people reach it, for links in mails.
PORTAL_URL = os.environ.get("PORTAL_URL", "http://localhost:8000").rstrip("/")

# Approval policy when none is configured for a cluster/runbook
# (upgrades/services/approvals.py): runbooks that change hosts need one
# approver before they start; steps with these markers need one too.
APPROVAL_REQUIRED_BY_DEFAULT = env_bool("APPROVAL_REQUIRED_BY_DEFAULT", True)
APPROVAL_DEFAULT_EXPIRY_HOURS = env_int("APPROVAL_DEFAULT_EXPIRY_HOURS", 24)
# Rehearsals on a twin of the cluster (upgrades.rehearsal, docs/rehearsal.md): how many
# twin labs may run at once, how long one may take (real seconds), the twin's lab speed
# (simulated seconds per real second) and where its lab lives while it runs.
REHEARSAL_MAX_TWINS = env_int("REHEARSAL_MAX_TWINS", 1)
REHEARSAL_TIME_LIMIT = env_int("REHEARSAL_TIME_LIMIT", 1800)
REHEARSAL_LAB_SPEED = env_int("REHEARSAL_LAB_SPEED", 60)
REHEARSAL_DIR = Path(os.environ.get("REHEARSAL_DIR", DATA_DIR / "rehearsals"))

# The HA poller reads the engine's view of a cluster (upgrades/engine_view.py) every
# ENGINE_POLL_EVERY vm-status polls of it (at least every ENGINE_POLL_MIN_SECONDS apart),
# each request at most ENGINE_POLL_TIMEOUT seconds.
ENGINE_POLL_EVERY = env_int("ENGINE_POLL_EVERY", 6)
ENGINE_POLL_MIN_SECONDS = env_int("ENGINE_POLL_MIN_SECONDS", 1)
ENGINE_POLL_TIMEOUT = env_int("ENGINE_POLL_TIMEOUT", 20)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# One time format everywhere (README): 24-hour, the server's zone written out.
# The locale module wins over these in Django's own pages, so it says the same.
FORMAT_MODULE_PATH = ["heportal.formats"]
DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", DATA_DIR / "static"))
# daphne serves static files through WhiteNoise from STATIC_ROOT, filled by
# `manage.py collectstatic` (make demo and the test fixtures run it).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Production hardening; HTTPS-only settings follow SECURE_SSL_REDIRECT so the
# plain-HTTP demo keeps working while `check --deploy` passes behind a proxy.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = SECURE_SSL_REDIRECT
CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# The private key the portal uses for every host (the hosts' authorized_keys
# hold its public half). Host keys are pinned per host in the database.
SSH_KEY_FILE = os.environ.get("SSH_KEY_FILE", str(DATA_DIR / "ssh" / "id_ed25519"))
SSH_CONNECT_TIMEOUT = float(os.environ.get("SSH_CONNECT_TIMEOUT", "15"))

# Pending updates (yum check-update on every host and in the engine VM, the engine's
# host update check) are read by the HA poller this often; he-upgrade plans with them.
PACKAGES_POLL_SECONDS = float(os.environ.get("PACKAGES_POLL_SECONDS", "1800"))
# Where engine backups copied off the engine VM are kept (one directory per cluster),
# and the free space both sides need before engine-backup runs.
ENGINE_BACKUP_DIR = Path(os.environ.get("ENGINE_BACKUP_DIR", DATA_DIR / "backups"))
ENGINE_BACKUP_MIN_FREE_MB = env_int("ENGINE_BACKUP_MIN_FREE_MB", 1024)

# Live output: a batch goes out this long after its first line, at least
# OUTPUT_MIN_INTERVAL after the previous one, in messages of at most this many lines.
OUTPUT_BATCH_SECONDS = float(os.environ.get("OUTPUT_BATCH_SECONDS", "0.005"))
OUTPUT_BATCH_LINES = env_int("OUTPUT_BATCH_LINES", 1000)
OUTPUT_MIN_INTERVAL = float(os.environ.get("OUTPUT_MIN_INTERVAL", "0.02"))
# Lines the database refused (restarting, locked) are kept to store again: this many
# characters in memory, the rest in a temporary file.
OUTPUT_UNSTORED_CHARS = env_int("OUTPUT_UNSTORED_CHARS", 16_000_000)
# How long a worker waits for the database to take a step's output, its end and the
# run's release before it gives up (the step is then interrupted, never left running).
DB_WAIT_SECONDS = float(os.environ.get("DB_WAIT_SECONDS", "900"))

# The largest request body the web process takes (heportal.body_limit); anything bigger
# is refused with 413 before it is read. No view takes uploads: forms are small.
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 4 * 1024 * 1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # paramiko logs a traceback for every failed handshake; upgrades.remote.ssh
    # turns those into one clear RemoteError, so only its own messages count.
    "loggers": {"paramiko": {"level": "CRITICAL"}},
}
