"""Signing keys of the local issuer, kept in the data dir.

One PEM file per key, named ``<created unix time>-<kid>.pem``, encrypted with a sub-key of
``secret_key`` and readable by the owner only. The newest key signs; every key on disk is
published in the JWKS, so tokens signed before a rotation stay valid until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from assistant.auth.crypto import derive_key
from assistant.core.errors import ConfigurationError

log = structlog.stdlib.get_logger(__name__)

KEY_BITS = 2048


@dataclass(frozen=True)
class SigningKey:
    kid: str
    created: int
    private_key: rsa.RSAPrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk = _rsa_public_jwk(self.private_key)
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": jwk["n"],
            "e": jwk["e"],
        }


def _rsa_public_jwk(private_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    # PyJWT loads with the first key read or made, not at the service's start.
    from jwt.algorithms import RSAAlgorithm

    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
    return jwk


def thumbprint(private_key: rsa.RSAPrivateKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a stable kid derived from the key."""
    jwk = _rsa_public_jwk(private_key)
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class LocalKeyStore:
    """The local issuer's RSA keys in ``<data_dir>/keys/local-issuer``."""

    def __init__(self, directory: Path, secret: SecretStr) -> None:
        self.directory = directory
        self._password = base64.urlsafe_b64encode(derive_key(secret, "local-issuer-keys"))
        self._cache: dict[Path, SigningKey] = {}

    @classmethod
    def for_data_dir(cls, data_dir: Path, secret: SecretStr) -> LocalKeyStore:
        return cls(data_dir / "keys" / "local-issuer", secret)

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.pem"))

    def _load(self, path: Path) -> SigningKey:
        cached = self._cache.get(path)
        if cached is None:
            cached = self._cache[path] = self._read(path)
        return cached

    def _read(self, path: Path) -> SigningKey:
        created_text, _, kid = path.stem.partition("-")
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=self._password)
        except (ValueError, TypeError):
            raise ConfigurationError(
                f"the local issuer key {path} cannot be opened with the current secret_key",
                problems=[
                    f"{path}: encrypted with another secret_key; restore that secret or "
                    "delete the file to generate a new key (signed-in users must sign "
                    "in again)"
                ],
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigurationError(f"{path}: not an RSA private key")
        return SigningKey(kid=kid, created=int(created_text), private_key=key)

    def keys(self) -> list[SigningKey]:
        """Every key on disk, oldest first."""
        return [self._load(path) for path in self._files()]

    def current(self) -> SigningKey:
        """The signing key, created on first use."""
        files = self._files()
        if not files:
            return self.rotate()
        return self._load(files[-1])

    def rotate(self, retain: int = 3) -> SigningKey:
        """Make a new signing key; keep the ``retain`` newest ones (old tokens still verify)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        kid = thumbprint(private_key)
        created = max([int(time.time()), *(self._created(p) + 1 for p in self._files())])
        path = self.directory / f"{created:012d}-{kid}.pem"
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._password),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        for old in self._files()[:-retain] if retain > 0 else []:
            old.unlink(missing_ok=True)
        log.info("auth.local_issuer.key_created", kid=kid, directory=str(self.directory))
        key = self._cache[path] = SigningKey(kid=kid, created=created, private_key=private_key)
        return key

    @staticmethod
    def _created(path: Path) -> int:
        try:
            return int(path.stem.partition("-")[0])
        except ValueError:
            return 0

    def jwks(self) -> dict[str, Any]:
        """The public keys, as served at /.well-known/jwks.json."""
        if not self._files():
            self.current()
        return {"keys": [key.public_jwk() for key in reversed(self.keys())]}
