"""What ``visits serve`` becomes: uvicorn serving :func:`web.app.create_app`.

Run as ``python -m web.serve OPTIONS`` (OPTIONS: uvicorn.run's keyword arguments as JSON)
by ``visits serve`` only; the tests' ``tests.clocked_server`` calls :func:`main` to serve the
same app on a clock of its own. It is a module of its own so that the supervisor process
imports uvicorn and nothing else of weight (:mod:`visits.reference`, which hides manage
links in its log lines, needs only the standard library), and the spawned workers, which
import the parent's main module again, import no more than this.
"""

from __future__ import annotations

import json
import sys

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter, DefaultFormatter

from visits.reference import HidesLinks


class HidingFormatter(HidesLinks, DefaultFormatter):
    pass


class HidingAccessFormatter(HidesLinks, AccessFormatter):
    pass


# Uvicorn's logging, and our packages' INFO lines beside its own: without them the jobs run
# in-process say nothing (which SMS sender runs, what was dispatched); only errors came out.
LOG_CONFIG = {
    **LOGGING_CONFIG,
    "formatters": {
        "default": {**LOGGING_CONFIG["formatters"]["default"], "()": HidingFormatter},
        "access": {**LOGGING_CONFIG["formatters"]["access"], "()": HidingAccessFormatter},
    },
    "loggers": {
        **LOGGING_CONFIG["loggers"],
        **{
            package: {"handlers": ["default"], "level": "INFO", "propagate": False}
            for package in ("visits", "notifications", "web")
        },
    },
}


def main(options: str, app: str = "web.app:create_app") -> None:
    """Serve the app that the factory ``app`` (an import string: spawned workers import it
    again) builds, as ``visits serve`` does."""
    uvicorn.run(
        app,
        factory=True,
        log_config=LOG_CONFIG,
        access_log=False,
        server_header=False,
        **json.loads(options),
    )


if __name__ == "__main__":
    main(sys.argv[1])
