"""The `assistant` console script (and ``python -m assistant``)."""

from __future__ import annotations

from assistant.core.startup import pause_collector


def main() -> None:
    # Before the first heavy import: start-up makes long-lived objects, not garbage.
    pause_collector()
    from assistant.cli import app  # after the pause: importing the CLI is most of start-up

    app()


if __name__ == "__main__":
    main()
