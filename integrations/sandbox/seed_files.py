"""Where the sandbox's seed files are, and whose mailbox they describe, without the seeder.

Building a sandbox connector needs only the executive's address. Reading it through
:func:`integrations.sandbox.seed.load_mailbox_seed` imported the seeder with its models
and parsed and validated all ~80 KB of ``mailbox.yaml``: about 45 ms of `assistant serve`'s
start. :func:`seed_executive_address` parses the top-level ``executive:`` block alone; the
whole file is still read and validated when the sandbox is seeded.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from assistant.core.yaml_loading import safe_load

#: A line that starts a top-level key, a document marker or any other top-level content (in
#: a block mapping at column 0, anything indented belongs to the key above it).
_TOP_LEVEL = re.compile(r"^[^\s#]")


def default_seed_dir() -> Path:
    """config/sandbox of the working directory, else of the source tree."""
    local = Path("config/sandbox")
    if local.is_dir():
        return local
    return Path(__file__).resolve().parents[2] / "config" / "sandbox"


def seed_executive_address(seed_dir: Path) -> str | None:
    """``executive.address`` of ``seed_dir/mailbox.yaml``, parsed from that block alone.

    None when the file does not plainly hold one such block (a quoted or repeated key, no
    mapping, no string address): the caller then reads the whole file, whose validation
    says what is wrong."""
    lines = (seed_dir / "mailbox.yaml").read_text("utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("executive:")]
    if len(starts) != 1:
        return None
    end = starts[0] + 1
    while end < len(lines) and not _TOP_LEVEL.match(lines[end]):
        end += 1
    try:
        block = safe_load("\n".join(lines[starts[0] : end]))
    except yaml.YAMLError:
        return None
    executive = block.get("executive") if isinstance(block, dict) else None
    address = executive.get("address") if isinstance(executive, dict) else None
    return address if isinstance(address, str) else None
