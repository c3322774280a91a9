"""Loggers that import the ``logging`` package only when a record is kept.

git starts lfs-agent for every filter run, and importing ``logging`` (with ``traceback``
and the rest) is a sizeable part of that start. The CLI states the level first
(:func:`configure`); records below it are dropped without importing anything, and the
first record kept sets up ``logging`` with our handler. Without :func:`configure`
(lfs-agent used as a library, the tests), every call goes straight to ``logging``.
What the handler writes has credentials masked and control characters escaped.

The SDK backends (S3, GCS, HTTP) use ``logging`` directly: their SDKs import it anyway.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when the first record is kept, not at start-up
    import logging

__all__ = ["DEBUG", "ERROR", "INFO", "LEVELS", "WARNING", "Logger", "configure", "get_logger"]

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
#: The level names :func:`configure` accepts, as ``logging`` spells them.
LEVELS = {"DEBUG": DEBUG, "INFO": INFO, "WARNING": WARNING, "ERROR": ERROR}
#: Our records' root logger.
ROOT = "lfs_agent"


class _State:
    # The level configure() set; None: not configured, every call goes to logging.
    threshold: int | None = None
    # What starts each line on stderr.
    prefix = "lfs-agent: "
    # The logging package, once imported and set up.
    logging: Any = None
    # Held while setting up: the first records may come from several threads at once.
    lock = threading.Lock()


_state = _State()


def configure(level: int, prefix: str = "lfs-agent: ") -> None:
    """Send records of ``level`` and above to stderr, each line starting with ``prefix``.

    Nothing is imported until the first such record, except when debugging: then the SDK
    backends' records (which go to ``logging`` directly) must find the handler in place.
    """
    _state.threshold = level
    _state.prefix = prefix
    if level <= DEBUG:
        _setup()


def _setup() -> Any:
    """Import ``logging`` once, giving our root logger its handler (or a NullHandler)."""
    if _state.logging is not None:
        return _state.logging
    with _state.lock:
        if _state.logging is None:
            import logging

            root = logging.getLogger(ROOT)
            if _state.threshold is None:
                root.addHandler(logging.NullHandler())  # a library: the application decides
            else:
                handler = logging.StreamHandler(sys.stderr)
                handler.setFormatter(_shown_formatter(f"{_state.prefix}%(message)s"))
                root.addHandler(handler)
                root.setLevel(_state.threshold)
            _state.logging = logging
    return _state.logging


def _shown_formatter(fmt: str) -> logging.Formatter:
    """A ``logging.Formatter`` whose every line is safe to show.

    A record may hold a remote URL with its password, or a file name or a remote's
    message with escape sequences; so may a traceback. The final text, traceback
    included, has credentials masked (:func:`~lfs_agent.redact.redact_text`) and
    control characters escaped (:func:`~lfs_agent.termtext.printable`).
    """
    import logging

    from lfs_agent.redact import redact_text
    from lfs_agent.termtext import printable

    class ShownFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return printable(redact_text(super().format(record)), keep_newlines=True)

    return ShownFormatter(fmt)


class Logger:
    """The calls of ``logging.Logger`` that lfs-agent uses, for one logger name."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def is_enabled_for(self, level: int) -> bool:
        """Whether a record of ``level`` may be kept (``logging.Logger.isEnabledFor``).

        For hot loops, which ask once and skip the calls (and their arguments) when not.
        Unconfigured, ``logging`` decides each record, so this says True.
        """
        return _state.threshold is None or level >= _state.threshold

    def _log(self, level: int, msg: str, args: tuple[object, ...], **kwargs: Any) -> None:
        if _state.threshold is not None and level < _state.threshold:
            return
        _setup().getLogger(self.name).log(level, msg, *args, stacklevel=3, **kwargs)

    def log(self, level: int, msg: str, *args: object, **kwargs: Any) -> None:
        """Log at ``level`` (``logging.Logger.log``)."""
        self._log(level, msg, args, **kwargs)

    def debug(self, msg: str, *args: object, **kwargs: Any) -> None:
        """Log at DEBUG (``logging.Logger.debug``)."""
        self._log(DEBUG, msg, args, **kwargs)

    def info(self, msg: str, *args: object, **kwargs: Any) -> None:
        """Log at INFO."""
        self._log(INFO, msg, args, **kwargs)

    def warning(self, msg: str, *args: object, **kwargs: Any) -> None:
        """Log at WARNING."""
        self._log(WARNING, msg, args, **kwargs)

    def error(self, msg: str, *args: object, **kwargs: Any) -> None:
        """Log at ERROR."""
        self._log(ERROR, msg, args, **kwargs)

    def exception(self, msg: str, *args: object, **kwargs: Any) -> None:
        """Log at ERROR with the current exception's traceback."""
        kwargs.setdefault("exc_info", True)
        self._log(ERROR, msg, args, **kwargs)


def get_logger(name: str) -> Logger:
    """The logger for ``name`` (a module's ``__name__``)."""
    return Logger(name)
