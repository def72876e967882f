"""The local issuer's key set behind PyJWT's JWKS client (imported with the first token
checked: see :class:`assistant.auth.tokens.LocalKeySource`)."""

from __future__ import annotations

from typing import Any

from jwt import PyJWKClient

from assistant.auth.keys import LocalKeyStore


class LocalJWKSClient(PyJWKClient):
    """PyJWT's JWKS client reading the local key store instead of the network: the same
    caching, kid matching and refresh-on-unknown-kid as for a remote issuer."""

    def __init__(self, keystore: LocalKeyStore, *, lifespan: float, cooldown: float) -> None:
        super().__init__(
            "https://local-issuer.invalid/jwks", lifespan=lifespan, cooldown_duration=cooldown
        )
        self._keystore = keystore

    def fetch_data(self) -> Any:
        data = self._keystore.jwks()
        if self.jwk_set_cache is not None:
            self.jwk_set_cache.put(data)
        return data
