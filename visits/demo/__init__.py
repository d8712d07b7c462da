"""The demo data ``make run`` loads: two Cusco prisons, their schedules and rosters, and one
staff account per role."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from visits.prison import prison_by_code
from visits.prison_config import ClosureConfig, ConfigFile, PrisonReport, apply_config, parse_config
from visits.roster import ImportReport, import_roster
from visits.sms import SmsPolicy
from visits.staff import StaffRole, StaffUser, create_staff

DEMO_DIR = Path(__file__).parent
DEMO_TZ = ZoneInfo("America/Lima")
CONFIG = DEMO_DIR / "prisons.toml"
ROSTERS = {
    "QUENCORO": DEMO_DIR / "inmates-quencoro.csv",
    "MUJERES-CUSCO": DEMO_DIR / "inmates-mujeres.csv",
}


def _next(weekday: int, after: date) -> date:
    return after + timedelta(days=(weekday - after.weekday()) % 7 or 7)


def demo_config(today: date) -> ConfigFile:
    """The demo file plus closures dated from today, so the demo always shows some."""
    config = parse_config(CONFIG.read_text())
    quencoro = config.prisons[0]
    closures = [
        ClosureConfig(
            date=_next(6, today + timedelta(days=7)),
            reason="Requisa general del penal",
        ),
        ClosureConfig(
            date=_next(2, today), start=time(14, 0), reason="Actividad por el Día de la Familia"
        ),
    ]
    prisons = [quencoro.model_copy(update={"closures": closures}), *config.prisons[1:]]
    return config.model_copy(update={"prisons": prisons})


def load_demo(
    session: Session, now: datetime, sms_policy: SmsPolicy
) -> tuple[list[PrisonReport], dict[str, ImportReport]]:
    reports = apply_config(
        session, demo_config(now.astimezone(DEMO_TZ).date()), now, sms_policy=sms_policy
    )
    rosters = {}
    for code, path in ROSTERS.items():
        prison = prison_by_code(session, code)
        assert prison is not None
        rosters[code] = import_roster(
            session, prison, path.read_bytes(), now, sms_policy=sms_policy
        )
    return reports, rosters


# The demo's staff, one per role (the README lists them). Demo only: anyone can read this.
DEMO_STAFF_PASSWORD = "visitas-demo-2026"  # noqa: S105
DEMO_STAFF = (
    ("guardia", "Rosa Huamán", StaffRole.GUARD, ("QUENCORO",)),
    ("salud", "Julio Quispe", StaffRole.HEALTH, ("QUENCORO",)),
    ("admin", "Carmen Flores", StaffRole.ADMIN, ("QUENCORO", "MUJERES-CUSCO")),
)


def load_demo_staff(session: Session, now: datetime) -> list[str]:
    """The demo accounts not created yet; their user names."""
    created = []
    for username, full_name, role, codes in DEMO_STAFF:
        if session.scalar(select(StaffUser.id).where(StaffUser.username == username)):
            continue
        prisons = [p for p in (prison_by_code(session, code) for code in codes) if p is not None]
        create_staff(
            session,
            username=username,
            full_name=full_name,
            role=role,
            password=DEMO_STAFF_PASSWORD,
            prisons=prisons,
            now=now,
            actor="demo",
        )
        created.append(username)
    return created
