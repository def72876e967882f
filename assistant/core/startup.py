"""The cyclic garbage collector, paused while a process of the `assistant` command starts.

Starting the service builds a few hundred thousand long-lived objects (modules, classes,
pydantic and SQLAlchemy schemas, routes) and next to no garbage, yet CPython 3.11 runs its
collector after every 700 net allocations and walks the survivors again each time an older
generation fills: about a quarter of the CPU `assistant serve` spent starting
(``python -m bench.startup``). The console script (:mod:`assistant.__main__`) pauses it
before importing anything; when the command begins (``serve``: when the app has started,
before the first request) what start-up built is frozen, so that later collections never
walk it again, and collection resumes. The cyclic garbage start-up itself made (little,
once) stays allocated; that is the cost of :func:`gc.freeze`.

Nothing else pauses it: tests and embedding code keep the interpreter's default.
"""

from __future__ import annotations

import gc

_paused = False


def pause_collector() -> None:
    """Stop cyclic collection until :func:`resume_collector`; for the console script only."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_collector() -> None:
    """Freeze what start-up built and collect again. Does nothing unless
    :func:`pause_collector` paused it (in tests, in code that embeds the app)."""
    global _paused
    if not _paused:
        return
    _paused = False
    gc.freeze()
    gc.enable()


def collector_paused() -> bool:
    """Whether start-up paused the collector and has not resumed it yet."""
    return _paused
