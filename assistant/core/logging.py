"""structlog over the stdlib, so uvicorn, httpx and msal lines come out the same way.

A redaction processor runs before the renderer: tokens, secrets, Authorization headers,
JWTs, passwords and API keys never reach a log line.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import structlog
from structlog.types import EventDict, Processor

REDACTED = "[REDACTED]"

#: Keys whose values are always secret, whatever they hold.
SECRET_KEY_PATTERN = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|authorization|cookie|credential|private[_-]?key"
    r"|client[_-]?assertion|session|signature|assertion)",
    re.IGNORECASE,
)
# Keys that match the pattern above but are not secret.
_NOT_SECRET_KEYS = frozenset(
    {
        "token_type",
        "tokens",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "total_tokens",
        "prompt_tokens",
        "completion_tokens",
        "session_id_hash",
        "max_tokens",
    }
)

#: A pattern added or changed here needs the parts each of its matches holds in
#: _REQUIRED_PARTS below (tests/unit/test_redaction.py checks the list).
_VALUE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # JWTs (three base64url segments, header starting with eyJ)
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Authorization schemes
    (re.compile(r"(?i)\b(bearer|basic|negotiate)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    # key=value and key: value pairs in free text (query strings, dumped headers, DSNs)
    (
        re.compile(
            r"(?i)\b([A-Za-z_-]*(?:password|passwd|secret|token|api[_-]?key|apikey|client_secret)"
            r"[A-Za-z_-]*)(\"?\s*[=:]\s*\"?)([^\s\"'&,;}]+)"
        ),
        r"\1\2" + REDACTED,
    ),
    # user:password@ in URLs
    # (scheme bounded in length: an unbounded one backtracks quadratically on long words)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,31}://[^:/@\s]+):([^@\s]+)@"), r"\1:" + REDACTED + "@"),
    # well-known key prefixes (OpenAI sk-, our own ea_ API keys)
    (re.compile(r"\b(sk-[A-Za-z0-9_-]{16,}|ea_[A-Za-z0-9]{6,}_[A-Za-z0-9_-]{16,})"), REDACTED),
)


#: Matches where any of _VALUE_PATTERNS does (their union, flags scoped to each): one search
#: tells most text (names, ids, digests, states) it has nothing to redact, instead of a
#: substitution per pattern. Every audit event's strings pass through here.
def _scoped(pattern: str) -> str:
    """``pattern`` as a group of an alternation: its leading global flags scoped to it."""
    flags = re.match(r"\(\?([aiLmsux]+)\)", pattern)
    return f"(?{flags[1]}:{pattern[flags.end() :]})" if flags else f"(?:{pattern})"


_ANY_VALUE_PATTERN = re.compile("|".join(_scoped(p.pattern) for p, _ in _VALUE_PATTERNS))


#: A part every match of one of _VALUE_PATTERNS contains, lower-cased: a JWT's "eyJ", an
#: authorization scheme, a key name's stem (password and passwd, secret and client_secret,
#: token, api_key, api-key and apikey), a URL's "://", a key prefix.
_REQUIRED_PARTS = (
    "eyj",
    "bearer",
    "basic",
    "negotiate",
    "passw",
    "secret",
    "token",
    "api",
    "://",
    "sk-",
    "ea_",
)


def _may_hold_secret(text: str) -> bool:
    """False only for text that none of _VALUE_PATTERNS can match: ASCII text that holds
    none of _REQUIRED_PARTS. A substring test is a few dozen times cheaper than the
    patterns' search over names, ids and states, the text nearly all audit payloads are
    made of. Text beyond ASCII always goes to the search: under IGNORECASE a pattern's
    letter matches characters that lower() does not map to it (the long s, the Kelvin
    sign)."""
    if not text.isascii():
        return True
    lowered = text.lower()
    # A loop, not any() over a generator: that costs half as much again, per string.
    for part in _REQUIRED_PARTS:  # noqa: SIM110
        if part in lowered:
            return True
    return False


def redact_text(text: str) -> str:
    """Remove secrets that appear inside free text."""
    if not _may_hold_secret(text) or _ANY_VALUE_PATTERN.search(text) is None:
        return text
    for pattern, replacement in _VALUE_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    # Cached: the same few keys come back in every audit payload and log line.
    return key.lower() not in _NOT_SECRET_KEYS and bool(SECRET_KEY_PATTERN.search(key))


def redact_value(value: Any, key: str | None = None) -> Any:
    """Redact a structure: secret keys wholesale, secret-looking text inside strings."""
    if key is not None and is_secret_key(key) and value not in (None, "", [], {}):
        if isinstance(value, (Mapping, list, tuple)):
            return redact_value(value)
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    if hasattr(value, "get_secret_value"):  # pydantic SecretStr / SecretBytes
        return REDACTED
    return value


def redaction_processor(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact every field, including the event text itself."""
    for key in list(event_dict.keys()):
        if key in {"timestamp", "level", "logger"}:
            continue
        if key == "event":
            event_dict[key] = redact_text(str(event_dict[key]))
            continue
        event_dict[key] = redact_value(event_dict[key], key)
    exc = event_dict.get("exception")
    if isinstance(exc, str):
        event_dict["exception"] = redact_text(exc)
    return event_dict


def _redact_positional_args(_: Any, __: str, event_dict: EventDict) -> EventDict:
    # stdlib lines (uvicorn, httpx, msal) arrive already formatted into "event".
    record = event_dict.get("_record")
    if record is not None and record.args:
        event_dict["event"] = record.getMessage()
        record.args = ()
    return event_dict


class _CurrentStderrHandler(logging.StreamHandler[Any]):
    """Writes to whatever ``sys.stderr`` is when a line is emitted, unless a stream was set.

    CLI runners and test harnesses swap ``sys.stderr``; a handler holding the stream it
    was created with would write into a closed, swapped-out buffer afterwards.
    ``setStream(buffer)`` pins a stream; ``setStream(None)`` follows ``sys.stderr`` again.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pinned: Any = None  # the base __init__ stored sys.stderr through the setter

    @property
    def stream(self) -> Any:
        pinned = getattr(self, "_pinned", None)
        return pinned if pinned is not None else sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        self._pinned = value

    def setStream(self, stream: Any) -> Any:  # noqa: N802 - the stdlib's name
        self.flush()
        previous, self._pinned = self._pinned, stream
        return previous


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    """Route structlog and stdlib logging through one redacting pipeline."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        exc_processor: list[Processor] = [structlog.processors.format_exc_info]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        exc_processor = [structlog.processors.format_exc_info]

    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _redact_positional_args],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exc_processor,
            redaction_processor,
            renderer,
        ],
    )
    handler = _CurrentStderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_assistant_handler", False):
            root.removeHandler(existing)
    handler._assistant_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in (
        "uvicorn",
        "uvicorn.error",
        "uvicorn.access",
        "httpx",
        "httpcore",
        "msal",
        "alembic",
        "sqlalchemy.engine",
    ):
        lib_logger = logging.getLogger(name)
        lib_logger.handlers.clear()
        lib_logger.propagate = True
    # These log request bodies or SQL parameters at DEBUG, which may carry message content
    # or action arguments: never below INFO, whatever the root level.
    for noisy in ("httpcore", "aiosqlite", "asyncpg", "hpack"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLevelName(level)))


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
