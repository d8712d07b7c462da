"""Every model module, imported so that ``Base.metadata`` describes the whole database."""

from visits import audit, booking, inmate, prison, schedule, throttle, visitor  # noqa: F401
from visits.base import Base

metadata = Base.metadata
