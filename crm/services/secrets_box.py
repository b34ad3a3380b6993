"""Secrets kept in the database encrypted (Fernet): two-factor secrets, mailbox passwords.

Each purpose has its own key: taken from the environment (a Fernet key) when set, else
derived from SECRET_KEY and the purpose, so a copy of the database alone yields nothing
and one purpose's key opens nothing of another's.
"""

import base64
import hashlib

from flask import current_app

# purpose -> the config key of its own Fernet key
KEYS = {"totp": "TOTP_ENCRYPTION_KEY", "mail": "MAIL_ENCRYPTION_KEY"}


def _fernet(purpose: str):
    # cryptography weighs 9 MB in each process: loaded by the few requests that need it.
    from cryptography.fernet import Fernet

    key = current_app.config.get(KEYS[purpose])
    if not key:
        seed = f"crm-{purpose}:".encode() + current_app.config["SECRET_KEY"].encode()
        key = base64.urlsafe_b64encode(hashlib.sha256(seed).digest())
    return Fernet(key)


def encrypt(purpose: str, secret: str) -> str:
    return _fernet(purpose).encrypt(secret.encode()).decode()


def decrypt(purpose: str, token: str | None) -> str | None:
    """The secret, or None when there is none or the key changed (it cannot be read)."""
    if not token:
        return None
    from cryptography.fernet import InvalidToken

    try:
        return _fernet(purpose).decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None
