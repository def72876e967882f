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
  ``Retry-After`` when scripted;
- a request with ``"stream": true`` is answered as server-sent ``data:`` lines of
  ``chat.completion.chunk`` objects ending with ``data: [DONE]``: the role first, then the
  content in word-sized fragments or each tool call (``index``, ``id``, function ``name``,
  then its ``arguments`` in fragments), then ``finish_reason``; with
  ``stream_options.include_usage`` every chunk carries ``"usage": null`` and a last chunk
  has empty ``choices`` and the usage block (unless ``stream_usage`` is off). Errors are
  sent before the stream starts, as for any request; ``break_after_chunks`` drops the
  connection in the middle of a stream.

Each test scripts the answers in order (:meth:`FakeOpenAI.script`); with the script empty
the server answers :attr:`FakeOpenAI.default`. Requests are recorded (:attr:`requests`), and
so is the largest number of requests in flight at once (:attr:`max_in_flight`).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
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
    #: Streamed answers: the pause before each chunk after the first, and the number of
    #: chunks sent before the connection is dropped without ``[DONE]`` (None: never).
    chunk_delay_s: float = 0.0
    break_after_chunks: int | None = None
    #: False: no usage chunk even when asked (as llama-cpp-python's server streams).
    stream_usage: bool = True

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

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            generation = self._generation
            self.requests.append(body)
            self.paths.append(request.url.path)
            self.headers.append({k.lower(): v for k, v in request.headers.items()})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        streaming = False
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
            if body.get("stream"):
                # The request stays in flight until its last chunk is sent.
                streaming = True
                return StreamingResponse(
                    self._counted(_chunks(_completion(body, answer), body, answer), generation),
                    media_type="text/event-stream",
                    headers=answer.headers,
                )
            return JSONResponse(_completion(body, answer), headers=answer.headers)
        finally:
            if not streaming:
                self._leave(generation)

    def _leave(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self.in_flight -= 1

    async def _counted(self, lines: AsyncIterator[str], generation: int) -> AsyncIterator[str]:
        try:
            async for line in lines:
                yield line
        finally:
            self._leave(generation)


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
        message["content"] = answer.content  # what a model may say before its tool calls
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


def _fragments(text: str) -> list[str]:
    """Word-sized pieces that join back to ``text`` (as a model's tokens do)."""
    return re.findall(r"\s*\S+|\s+", text) or [text]


async def _chunks(
    completion: dict[str, Any], body: dict[str, Any], answer: Answer
) -> AsyncIterator[str]:
    """``completion`` as OpenAI streams it: ``data: {chunk}`` lines, then ``data: [DONE]``."""
    asked = bool((body.get("stream_options") or {}).get("include_usage"))
    include_usage = asked and answer.stream_usage
    choice = completion["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": completion["id"],
            "object": "chat.completion.chunk",
            "created": completion["created"],
            "model": completion["model"],
            "system_fingerprint": completion["system_fingerprint"],
            "choices": []
            if delta is None
            else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if include_usage:
            out["usage"] = completion["usage"] if delta is None else None
        return out

    pieces = [chunk({"role": "assistant", "content": "", "refusal": None})]
    if message.get("content"):
        pieces.extend(chunk({"content": piece}) for piece in _fragments(message["content"]))
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        pieces.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": function["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        arguments = function["arguments"]
        for start in range(0, len(arguments), 8):
            fragment = arguments[start : start + 8]
            pieces.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
            )
    pieces.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        pieces.append(chunk(None))
    for number, piece in enumerate(pieces):
        if answer.break_after_chunks is not None and number >= answer.break_after_chunks:
            raise ConnectionAbortedError("the scripted stream breaks here")
        if number and answer.chunk_delay_s:
            await asyncio.sleep(answer.chunk_delay_s)
        yield f"data: {json.dumps(piece)}\n\n"
    yield "data: [DONE]\n\n"


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
