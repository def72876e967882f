"""Meeting scheduling: POST /api/v1/schedule/find ranks slots for structured constraints."""

from typing import Annotated

import structlog
from fastapi import APIRouter

from assistant.api.deps import ServicesDep, require
from assistant.auth.permissions import Permission, ensure_acts_for
from assistant.core.errors import NoConnectorForExecutiveError
from assistant.core.principal import Principal
from assistant.scheduling.service import ScheduleConstraints, ScheduleResult, find_meeting_slots
from integrations.base import Capability
from integrations.errors import UnknownConnectorError

log = structlog.stdlib.get_logger(__name__)

router = APIRouter(prefix="/api/v1/schedule", tags=["schedule"])

Scheduler = Annotated[Principal, require(Permission.CALENDAR_READ)]


@router.post("/find", response_model=ScheduleResult)
async def find(
    body: ScheduleConstraints, principal: Scheduler, services: ServicesDep
) -> ScheduleResult:
    """Slots that fit every required participant and the executive (the organizer: the
    caller, or the executive a delegate acts for, whose own calendar connector is read).
    Reads calendars; proposes nothing."""
    ensure_acts_for(principal, principal.acting_for, Permission.CALENDAR_READ)
    try:
        calendar = services.connectors.get(
            principal.tenant_id, Capability.CALENDAR, executive=principal.acting_for
        )
    except UnknownConnectorError as exc:
        raise NoConnectorForExecutiveError(
            "no calendar connector serves this executive", capability="calendar"
        ) from exc
    result = await find_meeting_slots(calendar, body)
    log.info(
        "schedule.find",
        tenant=principal.tenant_id,
        acting_for=principal.acting_for,
        feasible=result.feasible,
        slots=len(result.slots),
    )
    return result
