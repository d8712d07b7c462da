"""Runtime configuration, read from ``VISITS_*`` environment variables (or a ``.env`` file).

The defaults make ``make run`` work on a fresh machine: an embedded SQLite database under
``./var`` and a secret key generated once and kept beside it. Production sets
``VISITS_DATABASE_URL`` (PostgreSQL) and ``VISITS_SECRET_KEY`` explicitly.

SMS go through Twilio or, on a developer's machine, the console sender, which prints every text
(codes included) and sends nothing. A wrong choice would be silent: families get no code while
staff see "sent". So the Twilio settings are all or nothing (half of them is refused, naming
what is missing), and a site served over https (one families use, as ``visits demo`` also
decides) must have Twilio unless ``VISITS_SMS_CONSOLE`` says the console is meant (staging,
training).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import time
from functools import lru_cache
from pathlib import Path

import phonenumbers
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from visits.health import TracingPolicy
from visits.sms import texts_too_long


class Settings(BaseSettings):
    # No value in errors: a refusal is logged, and the values include secrets.
    model_config = SettingsConfigDict(
        env_prefix="VISITS_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = "sqlite:///./var/visits.db"
    secret_key: SecretStr | None = None
    secret_key_file: Path = Path("./var/secret.key")
    public_base_url: str = "http://127.0.0.1:8000"
    default_locale: str = "es"
    sqlite_busy_timeout_ms: int = Field(default=15_000, ge=0)
    db_pool_size: int = Field(default=10, ge=1)
    # None means "decide by database": in-process jobs for embedded SQLite, a separate
    # ``visits worker`` process for PostgreSQL deployments with several web workers.
    run_jobs_in_process: bool | None = None
    # How old the availability a family sees may be (0: always computed afresh).
    availability_cache_seconds: float = Field(default=2.0, ge=0)
    # Failed identifications or booking look-ups allowed per window before a pause: see
    # visits.throttle.ThrottlePolicy for who each limit is for.
    lookup_failures_per_pair: int = Field(default=5, ge=1)
    lookup_failures_per_client: int = Field(default=20, ge=1)
    lookup_failures_per_inmate: int = Field(default=30, ge=1)
    lookup_window_minutes: int = Field(default=15, ge=1)

    # SMS. Without Twilio settings messages go to the console sender (printed, kept in the
    # outbox), so the demo works offline; see the module docstring and _one_sms_sender for
    # when that is refused. The four Twilio settings below come together or not at all.
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_timeout_seconds: float = Field(default=10.0, gt=0)
    # The console sender on an https site: for staging and training sites only.
    sms_console: bool = False
    # Per dispatching process: run one worker, or divide the provider's cap between workers.
    sms_rate_per_second: float = Field(default=10.0, gt=0)
    sms_concurrency: int = Field(default=8, ge=1)
    # At least twice the longest send (2 × the Twilio timeout + 1 s), whatever is set here.
    sms_lease_seconds: int = Field(default=120, ge=10)
    sms_unknown_wait_seconds: int = Field(default=30, ge=1)
    sms_max_attempts: int = Field(default=12, ge=1)
    # Retries after "not now" answers (429, queue full) wait base × 2^attempt, up to the max.
    sms_retry_base_seconds: float = Field(default=5.0, gt=0)
    sms_retry_max_seconds: float = Field(default=900.0, gt=0)
    dispatch_every_seconds: float = Field(default=2.0, gt=0)
    # Turned off only where the phone is verified some other way.
    phone_verification: bool = True
    verification_minutes: int = Field(default=10, ge=1)
    verification_attempts: int = Field(default=5, ge=1)
    verification_sends_per_hour: int = Field(default=5, ge=1)
    verified_phone_days: int = Field(default=30, ge=0)
    # Bookings waiting for their code (held, hold not over) at once: from one client address,
    # and for one person visited (see visits.booking.unconfirmed_problem for why these).
    max_unconfirmed_per_client: int = Field(default=3, ge=1)
    max_unconfirmed_per_inmate: int = Field(default=2, ge=1)
    # Code SMS sent in the last hour at one client address's asking, first codes and new ones
    # alike (visits.verification.send_wait). Without it one address had about 15 codes sent
    # every 10 minutes to numbers of its choosing, 90 an hour. 20, not fewer: Peru's mobile
    # networks put many subscribers behind one address (carrier-grade NAT), and families of
    # one prison book at the same hours; one script is still held to a fifth of what it had,
    # and many addresses defeat any per-address cap (the country list bounds the cost).
    max_code_sms_per_client_per_hour: int = Field(default=20, ge=1)
    # The countries whose mobiles a booking's SMS may go to, as ISO 3166 codes separated by
    # commas ("PE", "PE,BO"): see visits.booking_request.parse_phone.
    sms_countries: str = "PE"
    # Reminders: so many hours before the visit, and on the visit's morning at this local time.
    reminder_hours_before: list[float] = Field(default_factory=lambda: [24.0])
    reminder_morning_at: time | None = time(7, 0)
    # Sent messages (and their text) are deleted after this many days.
    message_retention_days: int = Field(default=180, ge=1)
    # Exposure tracing (visits.health.TracingPolicy): visits counted from so many days before
    # a case was infectious (fewer for a smear-negative case without cavity), and the personal
    # data of a visit kept so many days past its day, then purged (visits.retention). The
    # retention may not be shorter than the lookback: visits would be purged before they
    # could be traced.
    tracing_lookback_days: int = Field(default=90, ge=1)
    tracing_smear_negative_lookback_days: int = Field(default=28, ge=1)
    tracing_retention_days: int = Field(default=180, ge=1)
    # Staff sign-in: failures within the window of one user name from one client, of one
    # name from anywhere, of one client (visits.staff.SignInPolicy) lock for the rest of the
    # window (a browser that signed in to the name before: only its own first limit); a
    # session ends when idle, and after a shift however active.
    staff_sign_in_failures: int = Field(default=5, ge=1)
    staff_sign_in_failures_per_user: int = Field(default=50, ge=1)
    staff_sign_in_failures_per_client: int = Field(default=30, ge=1)
    staff_sign_in_window_minutes: int = Field(default=15, ge=1)
    staff_idle_minutes: int = Field(default=30, ge=1)
    staff_session_hours: int = Field(default=12, ge=1)

    @field_validator("sms_countries")
    @classmethod
    def _known_countries(cls, value: str) -> str:
        codes = [code.strip().upper() for code in value.split(",") if code.strip()]
        if not codes:
            raise ValueError("VISITS_SMS_COUNTRIES names no country (e.g. PE, or PE,BO)")
        unknown = [code for code in codes if code not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(
                f"VISITS_SMS_COUNTRIES: not ISO 3166 country codes with phone numbers: "
                f"{', '.join(unknown)}"
            )
        return ",".join(dict.fromkeys(codes))

    @field_validator("public_base_url")
    @classmethod
    def _leaves_room_in_sms(cls, value: str) -> str:
        too_long = texts_too_long(value)
        if too_long:
            raise ValueError(
                f"VISITS_PUBLIC_BASE_URL ({len(value)} characters) is too long for the SMS "
                f"texts that carry it: {', '.join(too_long)} would cost more segments each. "
                "Use a shorter address (a short domain, no path)"
            )
        return value

    @property
    def phone_countries(self) -> tuple[str, ...]:
        return tuple(self.sms_countries.split(","))

    @model_validator(mode="after")
    def _retention_covers_lookback(self) -> Settings:
        lookback = max(self.tracing_lookback_days, self.tracing_smear_negative_lookback_days)
        if self.tracing_retention_days < lookback:
            raise ValueError(
                f"VISITS_TRACING_RETENTION_DAYS ({self.tracing_retention_days}) must be at "
                f"least the longest lookback, VISITS_TRACING_LOOKBACK_DAYS or "
                f"VISITS_TRACING_SMEAR_NEGATIVE_LOOKBACK_DAYS ({lookback}): visits would be "
                "purged before they could be traced"
            )
        return self

    @model_validator(mode="after")
    def _one_sms_sender(self) -> Settings:
        """Twilio wholly, or the console where that is meant; never a silent console on a site
        families use. Errors name settings, never their values (the token is a secret)."""
        given = [name for name in TWILIO_SETTINGS if _is_set(getattr(self, name))]
        if given:
            missing = [
                " or ".join(_env(name) for name in names)
                for names in (
                    ("twilio_account_sid",),
                    ("twilio_auth_token",),
                    ("twilio_from", "twilio_messaging_service_sid"),
                )
                if not any(name in given for name in names)
            ]
            if missing:
                raise ValueError(
                    f"Twilio is half set: {', '.join(map(_env, given))} set, missing "
                    f"{', and '.join(missing)} (set them all, or none for the console sender)"
                )
        elif self.is_public_site and not self.sms_console:
            raise ValueError(
                "VISITS_PUBLIC_BASE_URL is https, a site families use, but no Twilio is set: "
                "texts would be printed, not sent. Set VISITS_TWILIO_ACCOUNT_SID, "
                "VISITS_TWILIO_AUTH_TOKEN and VISITS_TWILIO_FROM (or "
                "VISITS_TWILIO_MESSAGING_SERVICE_SID), or VISITS_SMS_CONSOLE=true on a staging "
                "or training site"
            )
        return self

    @property
    def is_public_site(self) -> bool:
        """Served over https: real families use it (no demo accounts, no console sender)."""
        return self.public_base_url.startswith("https://")

    @property
    def tracing_policy(self) -> TracingPolicy:
        return TracingPolicy(
            lookback_days=self.tracing_lookback_days,
            smear_negative_lookback_days=self.tracing_smear_negative_lookback_days,
            retention_days=self.tracing_retention_days,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def jobs_in_process(self) -> bool:
        if self.run_jobs_in_process is None:
            return self.is_sqlite
        return self.run_jobs_in_process

    @property
    def twilio_configured(self) -> bool:
        # All or nothing (_one_sms_sender): the SID stands for the rest.
        return _is_set(self.twilio_account_sid)

    def signing_key(self) -> str:
        """The key that signs cookies and derives manage tokens.

        Without ``VISITS_SECRET_KEY`` a random key is created once in ``secret_key_file`` so that
        links sent to families keep working across restarts of the demo.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.secret_key_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(secrets.token_urlsafe(48))
            tmp.chmod(0o600)
            # link() is atomic and refuses to overwrite: of several processes starting at
            # once, exactly one key wins and every process reads that one.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
            tmp.unlink()
        return path.read_text().strip()


TWILIO_SETTINGS = ("twilio_account_sid", "twilio_auth_token", "twilio_from",
                   "twilio_messaging_service_sid")  # fmt: skip


def _is_set(value: str | SecretStr | None) -> bool:
    """Given and not blank: ``VISITS_TWILIO_FROM=`` is as good as unset."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return bool(value and value.strip())


def _env(name: str) -> str:
    return f"VISITS_{name.upper()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
