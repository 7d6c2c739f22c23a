"""Errors that reach the user as one line, and the exit codes they map to.

Anything a user can fix (a bad file, a wrong field, a missing model) is raised as a
`FacewatchError` subclass whose message names the file or field and says what is wrong; the CLI
prints it on one line and exits with `exit_code`.  Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
# Distinct from a crash so that systemd's RestartPreventExitStatus= can stop a restart loop
# on a configuration that will never work (uvicorn uses 3 for the same reason).
EXIT_CONFIG = 3


class FacewatchError(Exception):
    """An error the user can act on; its message is one line."""

    exit_code = EXIT_FAILURE


class BadInputError(FacewatchError):
    """A file, argument or field given by the user is unusable."""

    exit_code = EXIT_BAD_INPUT


class ImageError(BadInputError):
    """An image cannot be decoded or is outside the accepted limits."""


class NoFaceError(BadInputError):
    """An image holds no detectable face where one is required."""


class ModelError(BadInputError):
    """A model file or manifest is missing, corrupt or inconsistent."""


class IntegrityError(ModelError):
    """A downloaded or imported file does not have its pinned sha256."""


class GalleryError(BadInputError):
    """The gallery YAML or one of its images cannot be used."""


class ConfigError(BadInputError):
    """The daemon configuration is invalid."""

    exit_code = EXIT_CONFIG


class SettingError(ConfigError):
    """A stage's setting out of its bounds.  Stages check their own settings once, in their
    settings' `__post_init__`; the config names the YAML line of `field` (its key in the
    stage's section) when it maps a section onto them."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


def require(ok: bool, field: str, message: str) -> None:
    """Raise `SettingError(field, message)` unless `ok`."""
    if not ok:
        raise SettingError(field, message)


class BackendUnavailableError(FacewatchError):
    """The requested inference backend or precision cannot run on this machine."""

    exit_code = EXIT_BAD_INPUT
