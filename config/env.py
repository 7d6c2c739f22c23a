"""`${VAR}` and `${VAR:-default}` in string values, so secrets can stay out of the file.

Only the braced form is expanded (passwords and URLs often contain a bare `$`); `$${` writes a
literal `${`.  `${VAR:-default}` uses the default when VAR is unset *or empty*, as the shell
does.  The environment is passed in, never read here, and values are never put in messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

Location = tuple[str | int, ...]

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


class SubstitutionError(Exception):
    """A reference that cannot be expanded; `loc` is where in the document it is."""

    def __init__(self, loc: Location, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def substitute(data: Any, environ: Mapping[str, str], loc: Location = ()) -> Any:
    """A copy of `data` (plain YAML data) with references in string values expanded.

    Keys are not expanded, but made strings: YAML reads `1:` or `on:` as a number or a boolean,
    and no config key is either, so they are reported as unknown keys like any other.
    """
    if isinstance(data, dict):
        return {str(key): substitute(value, environ, (*loc, str(key))) for key, value in data.items()}
    if isinstance(data, list):
        return [substitute(value, environ, (*loc, i)) for i, value in enumerate(data)]
    if isinstance(data, str) and "$" in data:
        return expand(data, environ, loc)
    return data


def expand(text: str, environ: Mapping[str, str], loc: Location = ()) -> str:
    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$${":
            return "${"
        name = match.group(1)
        if name is None:
            raise SubstitutionError(
                loc, "malformed ${...} reference: write ${NAME} or ${NAME:-default} with NAME made "
                     "of letters, digits and _, or $${ for a literal ${")
        default = match.group(2)
        value = environ.get(name)
        if default is not None:
            return value if value else default
        if value is None:
            raise SubstitutionError(
                loc, f"environment variable {name} is not set (write ${{{name}:-default}} to "
                     f"give a default)")
        return value

    return _REFERENCE.sub(replace, text)
