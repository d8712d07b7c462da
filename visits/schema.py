"""Every model module, imported so that ``Base.metadata`` describes the whole database."""

from visits import audit, booking, inmate, prison, schedule, throttle, visitor
from visits.base import Base

MODEL_MODULES = (audit, booking, inmate, prison, schedule, throttle, visitor)
metadata = Base.metadata
