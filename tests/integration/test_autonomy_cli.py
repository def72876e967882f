"""`assistant autonomy set` stores a level where proposals look it up (the executive's user
id), as the governance room and PUT /api/v1/admin/autonomy do."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner


def test_a_user_name_is_stored_as_her_id_and_nobody_exits_1(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A level set for "erin" was stored under the word "erin" and printed as set, while
    no proposal of hers ever matched it."""
    from assistant.auth import users
    from assistant.cli import app
    from assistant.core.db import create_engine, create_session_factory
    from assistant.core.settings import Settings
    from governance import autonomy
    from governance.policy import Autonomy

    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(data_dir))
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    added = runner.invoke(app, ["users", "add", "erin", "--role", "executive"])
    assert added.exit_code == 0, added.output
    lowered = runner.invoke(
        app, ["autonomy", "set", "erin", "email.send", "shadow", "--reason", "watch first"]
    )
    assert lowered.exit_code == 0, lowered.output
    nobody = runner.invoke(
        app, ["autonomy", "set", "nobody-x", "email.send", "shadow", "--reason", "typo"]
    )
    assert nobody.exit_code == 1 and "ValidationFailedError" in nobody.output, nobody.output

    async def stored() -> tuple[str, Autonomy | None, set[str]]:
        engine = create_engine(Settings(data_dir=data_dir).database_url)
        try:
            async with create_session_factory(engine)() as session:
                erin: Any = await users.find_user(session, "default", "erin")
                level = await autonomy.stored_level(session, "default", erin.id, "email.send")
                grants = {g.executive for g in await autonomy.grants(session, "default")}
                return erin.id, level, grants
        finally:
            await engine.dispose()

    erin_id, level, grants = asyncio.run(stored())
    assert level == Autonomy.SHADOW and grants == {erin_id}
