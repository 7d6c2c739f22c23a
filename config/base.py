"""What every config section shares: strict, frozen models and errors that point at a field.

Validators here only check the text they are given: no network, no devices, no reading other
files.  Anything that depends on the machine (relative paths, `$STATE_DIRECTORY`, secret files)
is done afterwards by `facewatch.config.resolve`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

# Error type of `located_error`, and the context key holding the location below the model.
LOCATED_ERROR = "facewatch_located"


class Section(BaseModel):
    """Base of every config model: unknown keys are errors and a loaded config is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False)


def located_error(at: tuple[str | int, ...], message: str) -> PydanticCustomError:
    """An error for a field *inside* the model whose validator raises it.

    Pydantic reports errors from a model validator at the model itself; the loader appends `at`
    so that `cameras[2]` + ("name",) is reported as `cameras[2].name` with that key's line.
    """
    return PydanticCustomError(LOCATED_ERROR, "{message}", {"message": message, "at": at})


def stage_checked(make: Callable[[], object]) -> None:
    """Build a stage's settings from a section (`facewatch.config.stages`) so that the stage's
    own bounds are the config's: a `SettingError` becomes an error at that field's line."""
    from facewatch.errors import SettingError

    try:
        make()
    except SettingError as exc:
        raise located_error((exc.field,), exc.detail) from None


def _non_empty_path(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise PydanticCustomError("empty_path", "an empty string is not a path")
    if not isinstance(value, (str, Path)):
        raise PydanticCustomError("path_type", "expected a path (a string)")
    return value


# A filesystem path as written in the file; relative ones are made absolute by `resolve()`.
ConfigPath = Annotated[Path, BeforeValidator(_non_empty_path)]
