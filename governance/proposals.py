"""Group commit of proposals: one transaction for the proposals of a process ready together.

Every proposal that :meth:`ActionService.store` writes in its own transaction pays an
INSERT, the lock of its tenant's audit chain head (taken just before COMMIT, so it
serializes every writer of the tenant) and a COMMIT (an fsync). Under load most of a
proposal's time is spent waiting for those. :class:`ProposalCommitter` stores the proposals
waiting at the same moment together instead: their rows in one multi-row INSERT, their
events in one chain append under one hold of the head's lock, one COMMIT; then it answers
each caller.

Leader and followers: a caller that finds nobody storing stores at once, in its own
transaction, its proposal and whichever wait (at most ``max_batch``), then answers them;
callers that arrive meanwhile wait, and when the batch is done one of them leads the
next. No task and no connection of its own: the batch uses the leader's request
transaction and connection, so a process never needs more connections than requests
(the followers keep theirs, as any request does until it ends).

- A caller is answered only after the COMMIT (or with its own error): durability is the
  single proposal's. A COMMIT that fails fails every member of its batch, and nothing of
  the batch is stored.
- Nothing waits for company: a lone proposal is stored at once, alone, by
  :meth:`ActionService.store` (the path of a direct proposal).
- Checks, validation, the policy's decision and the events' redaction happen per request
  before (:meth:`ActionService.prepare`): a refused proposal never enters a batch.
- A row that cannot be inserted (a dedupe key stored meanwhile by another process, a
  constraint) fails only its own member (:meth:`ActionService.store_batch`).
- Two members with the same dedupe key: the first is stored, the second answered with it,
  as two proposals one after the other would be.

Each server process has its own committer; across processes the chain's lock still
serializes the tenant's writers, batches only hold it fewer times.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.core.db import commit
from assistant.core.errors import ServiceUnavailableError
from governance.models import Action
from governance.service import ActionService, PreparedProposal

log = structlog.stdlib.get_logger(__name__)


@dataclass(slots=True)
class _Waiting:
    prepared: PreparedProposal
    answer: asyncio.Future[Action]
    #: Members of the same batch with the same dedupe key, answered with this one's action.
    twins: list[_Waiting] = field(default_factory=list)

    def answer_all(self, result: Action | BaseException) -> None:
        for waiting in (self, *self.twins):
            if waiting.answer.done():  # a caller that went away
                continue
            if isinstance(result, BaseException):
                waiting.answer.set_exception(result)
            else:
                waiting.answer.set_result(result)


class ProposalCommitter:
    """Stores prepared proposals of this process, batching those that wait together."""

    def __init__(self, actions: ActionService, *, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.actions = actions
        self.max_batch = max_batch
        self._waiting: list[_Waiting] = []
        #: Done when the batch being stored is answered (None: nobody is storing).
        self._storing: asyncio.Future[None] | None = None
        #: Transactions committed, and proposals in them (for tests and benchmarks).
        self.batches = 0
        self.stored = 0

    async def store(self, session: AsyncSession, prepared: PreparedProposal) -> Action:
        """Store ``prepared`` with whichever proposals wait too, and return its action once
        committed (or the action already stored under its dedupe key). ``session`` is the
        caller's: committed here when the caller leads a batch, left alone otherwise.
        Raises what storing it raised."""
        loop = asyncio.get_running_loop()
        mine = _Waiting(prepared, loop.create_future())
        self._waiting.append(mine)
        try:
            while self._storing is not None:
                await asyncio.wait(
                    (mine.answer, self._storing), return_when=asyncio.FIRST_COMPLETED
                )
                if mine.answer.done():
                    return mine.answer.result()
        except BaseException:
            if mine in self._waiting:  # not taken yet: it goes with its caller
                self._waiting.remove(mine)
            raise
        # Nobody is storing: this caller leads, its own proposal first.
        self._waiting.remove(mine)
        batch = [mine, *self._waiting[: self.max_batch - 1]]
        del self._waiting[: self.max_batch - 1]
        self._storing = loop.create_future()
        try:
            await self._store_batch(session, batch)
        finally:
            storing, self._storing = self._storing, None
            storing.set_result(None)
        return mine.answer.result()

    async def _store_batch(self, session: AsyncSession, batch: list[_Waiting]) -> None:
        members = _merge_twins(batch)
        try:
            if len(members) == 1 and not members[0].twins:
                action = await self.actions.store(session, members[0].prepared)
                results: list[Action | Exception] = [action]
            else:
                results = await self.actions.store_batch(session, [m.prepared for m in members])
            await commit(session)
        except Exception as exc:  # nothing of the batch is stored
            if len(batch) > 1:
                log.warning("proposals.batch_failed", size=len(batch), error=type(exc).__name__)
            for member in members:
                member.answer_all(exc)
            return
        except BaseException:  # cancelled (shutdown): nobody waits forever
            error = ServiceUnavailableError("the server is stopping; retry the proposal")
            for member in members:
                member.answer_all(error)
            raise
        self.batches += 1
        self.stored += sum(isinstance(result, Action) for result in results)
        for member, result in zip(members, results, strict=True):
            member.answer_all(result)


def _merge_twins(batch: list[_Waiting]) -> list[_Waiting]:
    """The batch with each later proposal of an already present (tenant, dedupe key)
    folded into the first as a twin: one row is stored, both are answered with it."""
    members: list[_Waiting] = []
    first: dict[tuple[str, str], _Waiting] = {}
    for waiting in batch:
        key = waiting.prepared.dedupe_key
        found = first.get((waiting.prepared.tenant_id, key)) if key else None
        if found is not None:
            found.twins.append(waiting)
            continue
        if key:
            first[(waiting.prepared.tenant_id, key)] = waiting
        members.append(waiting)
    return members
