"""Logging through loguru: one line per event that matters, UTC timestamps, the session id on each."""

from __future__ import annotations

import sys

from loguru import logger

FORMAT = (
    "{time:YYYY-MM-DDTHH:mm:ss.SSS!UTC}Z | {level: <8} | session={extra[session_id]} | "
    "{extra[actor]} | {message}"
)


def configure_logging(level: str = "INFO") -> None:
    logger.remove()
    logger.configure(extra={"session_id": "-", "actor": "service"})
    logger.add(sys.stderr, level=level.upper(), format=FORMAT, backtrace=False, diagnose=False)
