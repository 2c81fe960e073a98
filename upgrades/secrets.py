"""Secrets kept by the portal (engine passwords), encrypted at rest.

Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``, with MultiFernet
for rotation: the first key encrypts, every key decrypts, ``rotate``
re-encrypts with the first. The keys never live in the database: they come
from ``HEPORTAL_SECRETS_KEYS`` (comma-separated), the file named by
``HEPORTAL_SECRETS_KEYS_FILE``, or a file generated once in the data folder
(settings.SECRETS_KEYS).
"""
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


def _fernet():
    keys = [k for k in settings.SECRETS_KEYS if k]
    if not keys:
        raise SecretError("no secrets key is configured (HEPORTAL_SECRETS_KEYS)")
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(plain):
    return _fernet().encrypt(plain.encode()).decode() if plain else ""


def decrypt(token):
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretError("a stored secret cannot be decrypted with the configured keys") from None


def rotate(token):
    """The same secret encrypted with the first (newest) key."""
    return _fernet().rotate(token.encode()).decode() if token else ""


def new_key():
    return Fernet.generate_key().decode()
