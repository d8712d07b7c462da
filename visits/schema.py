"""Every model module, imported so that ``Base.metadata`` describes the whole database:
the domain's tables and the SMS channel's, which share one ``MetaData``."""

from notifications import inbound, outbox, recipients  # noqa: F401
from visits import (  # noqa: F401
    advisories,
    audit,
    booking,
    gate,
    inmate,
    job_health,
    prison,
    schedule,
    screening,
    staff,
    throttle,
    tracing,
    verification,
    visitor,
)
from visits.base import Base

metadata = Base.metadata
