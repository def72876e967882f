"""The validator remembers verified bearer tokens briefly: never an altered or expired one."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from assistant.auth.errors import TokenRejectedError
from assistant.auth.runtime import AuthRuntime
from assistant.core.principal import Role
from assistant.core.settings import Settings


@pytest.fixture
def runtime(data_dir: Path) -> AuthRuntime:
    return AuthRuntime.build(Settings(data_dir=data_dir), sessions=None)  # type: ignore[arg-type]


@pytest.fixture
def key_lookups(runtime: AuthRuntime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts full verifications (each looks the signing key up)."""
    calls: list[str] = []
    source = runtime.validator._source(runtime.issuer)
    original = source.signing_key

    async def counted(kid: str) -> Any:
        calls.append(kid)
        return await original(kid)

    monkeypatch.setattr(source, "signing_key", counted)
    return calls


async def test_a_token_is_verified_once_within_recheck_s(
    runtime: AuthRuntime, key_lookups: list[str]
) -> None:
    token = runtime.mint("dana", "default", [Role.EXECUTIVE])
    first = await runtime.validator.validate(token)
    second = await runtime.validator.validate(token)
    assert first == second and first.subject == "dana"
    assert len(key_lookups) == 1


async def test_an_altered_token_is_checked_in_full_and_refused(
    runtime: AuthRuntime, key_lookups: list[str]
) -> None:
    token = runtime.mint("dana", "default", [Role.EXECUTIVE])
    await runtime.validator.validate(token)
    head, payload, signature = token.split(".")
    swapped = "A" if signature[-2] != "A" else "B"
    altered = f"{head}.{payload}.{signature[:-2]}{swapped}{signature[-1]}"
    with pytest.raises(TokenRejectedError):
        await runtime.validator.validate(altered)
    assert len(key_lookups) == 2


async def test_after_recheck_s_or_past_expiry_the_token_is_verified_again(
    runtime: AuthRuntime, key_lookups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = runtime.mint("dana", "default", [Role.EXECUTIVE], ttl_s=60)
    await runtime.validator.validate(token)
    later = time.monotonic() + runtime.settings.auth.recheck_s + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    await runtime.validator.validate(token)
    assert len(key_lookups) == 2
    # Inside recheck_s again, but past the token's expiry (plus leeway): never served from
    # memory, checked in full (PyJWT, on its own clock, then decides).
    expired = time.time() + 60 + runtime.settings.auth.leeway_s + 1
    monkeypatch.setattr(time, "time", lambda: expired)
    await runtime.validator.validate(token)
    assert len(key_lookups) == 3
