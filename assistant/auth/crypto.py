"""Keys derived from ``settings.secret_key``: one sub-key per purpose (HKDF), never the secret
itself. AES-GCM boxes bind ciphertexts to their context (a tenant), Fernet seals cookies."""

from __future__ import annotations

import base64
import os

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from assistant.core.errors import AuthenticationError

_NONCE = 12


def derive_key(secret: SecretStr, purpose: str, length: int = 32) -> bytes:
    """A sub-key of the deployment secret for one ``purpose``."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=None,
        info=f"executive-assistant/{purpose}".encode(),
    ).derive(secret.get_secret_value().encode())


class SecretBox:
    """AES-256-GCM with associated data: a ciphertext opens only in the context it was
    sealed for (a row of another tenant fails to decrypt)."""

    def __init__(self, secret: SecretStr, purpose: str) -> None:
        self._aead = AESGCM(derive_key(secret, purpose))

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], context.encode())


class CookieSealer:
    """Encrypted, authenticated, time-limited cookie values (Fernet)."""

    def __init__(self, secret: SecretStr, purpose: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret, purpose)))

    def seal(self, data: bytes) -> str:
        return self._fernet.encrypt(data).decode("ascii")

    def open(self, token: str, max_age_s: int) -> bytes:
        try:
            return self._fernet.decrypt(token.encode("ascii"), ttl=max_age_s)
        except (InvalidToken, UnicodeEncodeError):
            raise AuthenticationError(
                "the sign-in state is missing, expired or altered; start the sign-in again"
            ) from None
