"""The local issuer's key store and the derived-key encryption helpers."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest
from cryptography.exceptions import InvalidTag
from pydantic import SecretStr

from assistant.auth.crypto import CookieSealer, SecretBox, derive_key
from assistant.auth.keys import LocalKeyStore
from assistant.core.errors import AuthenticationError, ConfigurationError

SECRET = SecretStr("a-test-secret-of-at-least-thirty-two-characters")


def test_keys_are_created_encrypted_and_private(tmp_path: Path) -> None:
    store = LocalKeyStore.for_data_dir(tmp_path, SECRET)
    key = store.current()
    files = list((tmp_path / "keys" / "local-issuer").glob("*.pem"))
    assert len(files) == 1 and files[0].name.endswith(f"-{key.kid}.pem")
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in files[0].read_bytes()
    # Another process with the same secret reads the same key.
    assert LocalKeyStore.for_data_dir(tmp_path, SECRET).current().kid == key.kid
    with pytest.raises(ConfigurationError, match="current secret_key"):
        LocalKeyStore.for_data_dir(tmp_path, SecretStr("x" * 40)).current()


def test_rotation_keeps_recent_keys_published(tmp_path: Path) -> None:
    store = LocalKeyStore.for_data_dir(tmp_path, SECRET)
    first = store.current()
    kids = [first.kid] + [store.rotate(retain=3).kid for _ in range(3)]
    assert store.current().kid == kids[-1]
    published = [k["kid"] for k in store.jwks()["keys"]]
    assert published == list(reversed(kids[1:]))  # newest first, the oldest retired
    jwk = store.jwks()["keys"][0]
    assert jwk["alg"] == "RS256" and jwk["use"] == "sig" and "d" not in jwk
    token = jwt.encode({"a": 1}, store.current().private_key, algorithm="RS256")
    public = jwt.PyJWK(jwk).key
    assert jwt.decode(token, public, algorithms=["RS256"]) == {"a": 1}


def test_secret_box_binds_ciphertexts_to_their_tenant() -> None:
    box = SecretBox(SECRET, "msal-token-cache")
    sealed = box.seal(b"token cache", "contoso")
    assert box.open(sealed, "contoso") == b"token cache"
    assert b"token cache" not in sealed
    with pytest.raises(InvalidTag):
        box.open(sealed, "fabrikam")
    with pytest.raises(InvalidTag):
        SecretBox(SECRET, "another-purpose").open(sealed, "contoso")
    assert derive_key(SECRET, "a") != derive_key(SECRET, "b")


def test_cookie_sealer_refuses_tampered_and_expired_values() -> None:
    sealer = CookieSealer(SECRET, "cookies")
    sealed = sealer.seal(b'{"state": "s"}')
    assert sealer.open(sealed, 60) == b'{"state": "s"}'
    with pytest.raises(AuthenticationError):
        sealer.open(sealed[:-2] + "AA", 60)
    with pytest.raises(AuthenticationError):
        CookieSealer(SecretStr("y" * 40), "cookies").open(sealed, 60)
    time.sleep(1.1)
    with pytest.raises(AuthenticationError):
        sealer.open(sealed, 0)
