"""Logging into the host's log, attributed to this plugin. Always available:
it grants no authority. The host truncates and rate-limits messages."""

from wit_world.imports import log as _log

Level = _log.Level


def log(level: "Level", message: str) -> None:
    """Writes ``message`` at ``level``."""
    _log.log(level, str(message))


def trace(message: str) -> None:
    log(Level.TRACE, message)


def debug(message: str) -> None:
    log(Level.DEBUG, message)


def info(message: str) -> None:
    log(Level.INFO, message)


def warn(message: str) -> None:
    log(Level.WARN, message)


def error(message: str) -> None:
    log(Level.ERROR, message)
