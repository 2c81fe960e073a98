"""Settings for HE Portal, read from the environment and the configuration file.

One module for every deployment. Every process reads the environment, then the
``KEY=VALUE`` file named by HEPORTAL_CONFIG (default ``data/heportal.env``, which
``make demo`` writes; heportal.config); the environment wins. Defaults run a fresh
checkout: SQLite in ``data/`` and the Redis that ``make demo`` starts (or finds).
"""
import json
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from heportal import config

BASE_DIR = Path(__file__).resolve().parent.parent
# Before anything below reads os.environ: the file fills in what the environment lacks.
HEPORTAL_CONFIG = config.load()


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
    "rest_framework",
    "drf_spectacular",
    "upgrades",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "upgrades.client_address.ClientAddressMiddleware",  # for the audit: before anything that records
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
    # Webhook deliveries (upgrades/webhooks.py): a worker of their own, with RQ's scheduler
    # for the retries (rqworker hooks --with-scheduler), so a slow endpoint never holds up a run.
    "hooks": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 120},
}
# Webhooks: seconds to connect and to wait for the answer, the waits before attempts 2, 3...
# (after the last one fails the delivery is failed), and how long a due attempt may stay
# untaken before the sweeper queues it again.
WEBHOOK_CONNECT_TIMEOUT = float(os.environ.get("WEBHOOK_CONNECT_TIMEOUT", "3"))
WEBHOOK_TIMEOUT = float(os.environ.get("WEBHOOK_TIMEOUT", "5"))
WEBHOOK_RETRY_DELAYS = [float(d) for d in env_list("WEBHOOK_RETRY_DELAYS", ["10", "30", "120", "600"])]
WEBHOOK_REQUEUE_AFTER = float(os.environ.get("WEBHOOK_REQUEUE_AFTER", "60"))
# A worker that keeps its job running while Redis restarts (upgrades/worker.py).
RQ = {"WORKER_CLASS": "upgrades.worker.Worker"}

# The REST API (upgrades/api, docs/api.md): a personal token (Bearer) first, so that an
# unauthenticated call gets a 401 saying so; else the browser's session, CSRF enforced.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["upgrades.api.auth.BearerTokenAuthentication",
                                       "rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "upgrades.api.views.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "HE Portal API",
    "DESCRIPTION": "Clusters, runbooks, plans, runs, approvals and the audit history (docs/api.md).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"RunStatusEnum": "upgrades.models.RunStatus",
                            "StepStatusEnum": "upgrades.models.StepStatus"},
}
# Failed token authentications one client address may make per window before every token
# call from it is refused (429) until the window ends.
API_AUTH_FAILURE_LIMIT = env_int("API_AUTH_FAILURE_LIMIT", 20)
API_AUTH_FAILURE_WINDOW = env_int("API_AUTH_FAILURE_WINDOW", 300)

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "upgrades.permissions.RoleBackend",  # a global admin may use the admin site (upgrades/permissions.py)
]


# Where requests come from (upgrades/client_address.py, for the audit): X-Forwarded-For
# is believed only from these proxies (addresses or networks, comma-separated); empty:
# the connection's address is the client's, and the header is never read.
def _networks(name):
    import ipaddress

    networks = []
    for item in env_list(name, []):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an address or network") from None
        networks.append(item)
    return networks


TRUSTED_PROXIES = _networks("TRUSTED_PROXIES")

# /metrics for Prometheus (upgrades/metrics.py, docs/metrics.md): a scraper sends
# "Authorization: Bearer METRICS_TOKEN" (or the file METRICS_TOKEN_FILE), or scrapes from
# one of METRICS_ALLOWED_ADDRESSES (addresses or networks, comma-separated; the client's
# address as the audit reads it, so X-Forwarded-For counts only from TRUSTED_PROXIES).
# Neither set: /metrics answers 403 to everyone.
METRICS_TOKEN = env_secret("METRICS_TOKEN") or ""
METRICS_ALLOWED_ADDRESSES = _networks("METRICS_ALLOWED_ADDRESSES")

# Directory logins (docs/directory.md). Without LDAP_SERVER_URI only local accounts log in.
# A directory user's roles come from LDAP_ROLE_MAP (JSON, or the file LDAP_ROLE_MAP_FILE):
# {"<group DN>": "<role>" | {"cluster": "<name>", "role": "<role>"} | [either, ...]}.
# The roles of upgrades.permissions.ROLES (which settings cannot import; a test compares).
DIRECTORY_ROLES = ("viewer", "operator", "approver", "auditor", "admin")


def _role_map():
    """LDAP_ROLE_MAP as [(group DN lower-cased, cluster name or None, role)]; bad ones refuse to start."""
    path = os.environ.get("LDAP_ROLE_MAP_FILE")
    raw = Path(path).read_text() if path else os.environ.get("LDAP_ROLE_MAP", "")
    if not raw.strip():
        return []
    where = path or "LDAP_ROLE_MAP"
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{where} is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ImproperlyConfigured(f"{where} must be an object of group DN: role")
    entries = []
    for group, given in parsed.items():
        for item in given if isinstance(given, list) else [given]:
            if isinstance(item, str):
                cluster, role = None, item
            elif isinstance(item, dict) and set(item) == {"cluster", "role"} and isinstance(item["cluster"], str):
                cluster, role = item["cluster"], item["role"]
            else:
                raise ImproperlyConfigured(
                    f"{where}: {group!r} maps to {item!r}; give a role, or {{\"cluster\": name, \"role\": role}}")
            if role not in DIRECTORY_ROLES:
                raise ImproperlyConfigured(f"{where}: {group!r}: {role!r} is not a role ({', '.join(DIRECTORY_ROLES)})")
            entries.append((group.strip().lower(), cluster, role))
    return entries


LDAP_SERVER_URI = os.environ.get("LDAP_SERVER_URI", "")
LDAP_ROLE_MAP = _role_map()
if LDAP_SERVER_URI:
    import ldap
    from django_auth_ldap import config as ldap_config

    _GROUP_TYPES = {
        "groupOfNames": ldap_config.GroupOfNamesType,
        "groupOfUniqueNames": ldap_config.GroupOfUniqueNamesType,
        "nestedGroupOfNames": ldap_config.NestedGroupOfNamesType,
        "posixGroup": ldap_config.PosixGroupType,
        "activeDirectory": ldap_config.NestedActiveDirectoryGroupType,
    }
    _group_type = os.environ.get("LDAP_GROUP_TYPE", "groupOfNames")
    if _group_type not in _GROUP_TYPES:
        raise ImproperlyConfigured(f"LDAP_GROUP_TYPE={_group_type!r}: use one of {', '.join(_GROUP_TYPES)}")
    for _name in ("LDAP_USER_SEARCH_BASE", "LDAP_GROUP_SEARCH_BASE"):
        if not os.environ.get(_name):
            raise ImproperlyConfigured(f"LDAP_SERVER_URI is set: {_name} is needed too")
    AUTH_LDAP_SERVER_URI = LDAP_SERVER_URI
    AUTH_LDAP_BIND_DN = os.environ.get("LDAP_BIND_DN", "")
    AUTH_LDAP_BIND_PASSWORD = env_secret("LDAP_BIND_PASSWORD") or ""
    AUTH_LDAP_USER_SEARCH = ldap_config.LDAPSearch(
        os.environ["LDAP_USER_SEARCH_BASE"], ldap.SCOPE_SUBTREE,
        os.environ.get("LDAP_USER_FILTER", "(uid=%(user)s)"))
    AUTH_LDAP_GROUP_SEARCH = ldap_config.LDAPSearch(
        os.environ["LDAP_GROUP_SEARCH_BASE"], ldap.SCOPE_SUBTREE,
        os.environ.get("LDAP_GROUP_FILTER", "(objectClass=*)"))
    AUTH_LDAP_GROUP_TYPE = _GROUP_TYPES[_group_type]()
    AUTH_LDAP_USER_ATTR_MAP = {"first_name": os.environ.get("LDAP_ATTR_FIRST_NAME", "givenName"),
                               "last_name": os.environ.get("LDAP_ATTR_LAST_NAME", "sn"),
                               "email": os.environ.get("LDAP_ATTR_EMAIL", "mail")}
    AUTH_LDAP_ALWAYS_UPDATE_USER = True
    AUTH_LDAP_START_TLS = env_bool("LDAP_START_TLS", False)
    _timeout = env_int("LDAP_TIMEOUT", 5)
    AUTH_LDAP_CONNECTION_OPTIONS = {ldap.OPT_NETWORK_TIMEOUT: _timeout, ldap.OPT_TIMEOUT: _timeout,
                                    ldap.OPT_REFERRALS: 0}
    # The directory's certificate is always checked (whatever /etc/ldap/ldap.conf says).
    AUTH_LDAP_CONNECTION_OPTIONS[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
    if os.environ.get("LDAP_CA_FILE"):
        AUTH_LDAP_CONNECTION_OPTIONS[ldap.OPT_X_TLS_CACERTFILE] = os.environ["LDAP_CA_FILE"]
    # Applies the options above to this connection's TLS context (must come last).
    AUTH_LDAP_CONNECTION_OPTIONS[ldap.OPT_X_TLS_NEWCTX] = 0
    # After the local accounts: they never wait on the directory and work while it is down (break-glass).
    AUTHENTICATION_BACKENDS.insert(1, "upgrades.directory.DirectoryBackend")

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

# Production behind a TLS reverse proxy (docs/deployment.md, deploy/nginx/heportal.conf):
# BEHIND_TLS_PROXY trusts the proxy's X-Forwarded-Proto (the proxy must set it, never pass a
# client's), redirects plain HTTP, marks cookies secure, sends HSTS and trusts PORTAL_URL's
# origin for CSRF and websockets. The plain-HTTP demo leaves it off.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", BEHIND_TLS_PROXY)
_HTTPS = BEHIND_TLS_PROXY or SECURE_SSL_REDIRECT
SESSION_COOKIE_SECURE = _HTTPS
CSRF_COOKIE_SECURE = _HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if _HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
_portal = urlsplit(PORTAL_URL)
if _portal.scheme == "https" and _portal.netloc:
    # The origin people reach the portal at: forms and websockets from it are the portal's own.
    CSRF_TRUSTED_ORIGINS = [*CSRF_TRUSTED_ORIGINS, f"https://{_portal.netloc}"]
if "ALLOWED_HOSTS" not in os.environ and _portal.hostname:
    ALLOWED_HOSTS = [*ALLOWED_HOSTS, _portal.hostname]
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
