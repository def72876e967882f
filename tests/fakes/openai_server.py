"""A scripted OpenAI-compatible chat-completions server over real HTTP (uvicorn in a thread).

It follows the OpenAI wire format, so the real ``openai`` SDK and ``langchain-openai`` run
against it unchanged:

- ``POST /v1/chat/completions`` (OpenAI and OpenAI-compatible servers) and
  ``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` (Azure OpenAI);
- a request with ``tools`` is answered with a ``tool_calls`` message for the tool named by
  ``tool_choice`` (function calling); one with ``response_format`` of type ``json_schema``
  is answered with the JSON as ``content``; anything else with plain content;
- every answer carries a ``usage`` block (``prompt_tokens``, ``completion_tokens``,
  ``total_tokens``, ``prompt_tokens_details.cached_tokens``);
- errors use OpenAI's body ``{"error": {"message", "type", "param", "code"}}``; 429 carries
  ``Retry-After`` when scripted.

Each test scripts the answers in order (:meth:`FakeOpenAI.script`); with the script empty
the server answers :attr:`FakeOpenAI.default`. Requests are recorded (:attr:`requests`), and
so is the largest number of requests in flight at once (:attr:`max_in_flight`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.serving import serve_app


@dataclass
class Answer:
    """One scripted answer.

    ``arguments`` is the structured answer: a dict (serialized as JSON) or a raw string (to
    send malformed JSON). ``status`` other than 200 sends an OpenAI error body instead.
    ``prompt_tokens`` None counts the words of the request's messages (deterministic).
    """

    arguments: dict[str, Any] | str | None = None
    content: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int = 20
    cached_tokens: int = 0
    finish_reason: str | None = None
    error_message: str = "scripted error"
    #: Tool calls of an agent's step, by name: [(tool name, arguments), ...].
    tool_calls: list[tuple[str, dict[str, Any]]] | None = None

    @classmethod
    def rate_limited(cls, retry_after: str | None = "0") -> Answer:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return cls(status=429, headers=headers, error_message="Rate limit reached")

    @classmethod
    def server_error(cls) -> Answer:
        return cls(status=500, error_message="The server had an error")


class FakeOpenAI:
    """The server's state: the script, the recorded requests, the concurrency high mark."""

    def __init__(self) -> None:
        self.answers: deque[Answer] = deque()
        self.default = Answer(arguments={})
        #: When set, each request is answered by ``responder(request body)`` (a model that
        #: reacts to what it is sent, for agent tests); the script is ignored.
        self.responder: Callable[[dict[str, Any]], Answer] | None = None
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._generation = 0  # requests left over from an earlier test do not count
        self._lock = threading.Lock()
        self.base_url = ""
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route(
                    "/openai/deployments/{deployment}/chat/completions",
                    self._completions,
                    methods=["POST"],
                ),
            ]
        )

    # ------------------------------------------------------------------ test API

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with ``answers``, in order."""
        self.answers.extend(answers)

    def reset(self) -> None:
        self.responder = None
        self.answers.clear()
        self.default = Answer(arguments={})
        self.requests.clear()
        self.paths.clear()
        self.headers.clear()
        with self._lock:
            self._generation += 1
            self.in_flight = 0
            self.max_in_flight = 0

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]

    # ------------------------------------------------------------------ server

    def _next(self, body: dict[str, Any]) -> Answer:
        if self.responder is not None:
            return self.responder(body)
        with self._lock:
            return self.answers.popleft() if self.answers else self.default

    async def _completions(self, request: Request) -> JSONResponse:
        body = await request.json()
        with self._lock:
            generation = self._generation
            self.requests.append(body)
            self.paths.append(request.url.path)
            self.headers.append({k.lower(): v for k, v in request.headers.items()})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            answer = self._next(body)
            if answer.delay_s:
                await asyncio.sleep(answer.delay_s)
            if answer.status != 200:
                kind = "rate_limit_error" if answer.status == 429 else "server_error"
                return JSONResponse(
                    {
                        "error": {
                            "message": answer.error_message,
                            "type": kind,
                            "param": None,
                            "code": None,
                        }
                    },
                    status_code=answer.status,
                    headers=answer.headers,
                )
            return JSONResponse(_completion(body, answer), headers=answer.headers)
        finally:
            with self._lock:
                if generation == self._generation:
                    self.in_flight -= 1


def _count_words(body: dict[str, Any]) -> int:
    words = 0
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(part.get("text", "")) for part in content)
        words += len(str(content or "").split())
    return words


def _completion(body: dict[str, Any], answer: Answer) -> dict[str, Any]:
    text = (
        answer.arguments
        if isinstance(answer.arguments, str)
        else (json.dumps(answer.arguments) if answer.arguments is not None else None)
    )
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    finish = answer.finish_reason
    choice = body.get("tool_choice")
    if body.get("tools") and answer.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for name, args in answer.tool_calls
        ]
        finish = finish or "tool_calls"
    elif body.get("tools") and text is not None:
        name = (
            choice.get("function", {}).get("name") if isinstance(choice, dict) else None
        ) or body["tools"][0]["function"]["name"]
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": name, "arguments": text},
            }
        ]
        finish = finish or "tool_calls"
    else:
        message["content"] = answer.content if answer.content is not None else (text or "")
        finish = finish or "stop"
    prompt = answer.prompt_tokens if answer.prompt_tokens is not None else 10 + _count_words(body)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": prompt + answer.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": answer.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
    }


@pytest.fixture(scope="session")
def _openai_server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    with serve_app(fake.app, name="fake OpenAI server") as port:
        fake.base_url = f"http://127.0.0.1:{port}"
        yield fake


@pytest.fixture
def openai_server(_openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The session's fake server, with an empty script and no recorded requests."""
    _openai_server.reset()
    yield _openai_server
    _openai_server.reset()
