"""The declarative base of the domain's models, and the column types they have in common.

The types and the ``MetaData`` come from :mod:`notifications.base`, so that the domain and the
SMS channel share one schema (one migration history, one naming convention).
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from notifications.base import UTCDateTime, metadata, str_enum, utcnow

__all__ = ["Base", "UTCDateTime", "str_enum", "utcnow"]


class Base(DeclarativeBase):
    metadata = metadata
