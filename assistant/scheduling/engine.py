"""The meeting-scheduling engine: pure, deterministic, no I/O."""

from __future__ import annotations

from assistant.scheduling._diagnosis import blocking, relaxations
from assistant.scheduling._problem import build, rank, render
from assistant.scheduling.models import SchedulingRequest, SchedulingResult


def find_slots(request: SchedulingRequest) -> SchedulingResult:
    """Rank slots that meet every hard constraint of ``request``.

    When there is none, ``blocking`` names the constraint that makes the meeting impossible
    and ``relaxations`` gives, for each constraint that could be loosened, the first slot the
    loosened request would yield. The result depends only on the request's content, not on
    the order of its participants or calendar entries (except that the first participant's
    zone is the default reference zone).
    """
    problem = build(request)
    picks = rank(problem, request.max_results)
    zone = request.reference_timezone
    if picks:
        slots = [render(problem, pick) for pick in picks]
        return SchedulingResult(feasible=True, slots=slots, reference_timezone=zone)
    return SchedulingResult(
        feasible=False,
        slots=[],
        blocking=blocking(problem),
        relaxations=relaxations(request, problem),
        reference_timezone=zone,
    )
