"""Definition errors that carry a path, and typed readers of JSON-shaped input that raise them."""

from collections.abc import Mapping, Sequence


class DefinitionError(ValueError):
    """A flag definition, segment or constraint is invalid; `path` locates the field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class ConstraintError(DefinitionError):
    """A constraint is invalid: unknown operator, or a value that does not parse."""


ErrorType = type[DefinitionError]


def join(path: str, key: str | int) -> str:
    """Extend a path: `rules` + 2 -> `rules[2]`, `rules[2]` + `version` -> `rules[2].version`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def read_object(value: object, path: str, error: ErrorType) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise error(path, "must be an object")
    return value


def read_list(value: object, path: str, error: ErrorType) -> Sequence[object]:
    if not isinstance(value, list | tuple):
        raise error(path, "must be a list")
    return value


def read_str(value: object, path: str, error: ErrorType) -> str:
    if not isinstance(value, str):
        raise error(path, "must be a string")
    return value


def read_name(value: object, path: str, error: ErrorType) -> str:
    """Read a non-empty string."""
    if not isinstance(value, str) or not value:
        raise error(path, "must be a non-empty string")
    return value


def read_bool(value: object, path: str, error: ErrorType) -> bool:
    if not isinstance(value, bool):
        raise error(path, "must be true or false")
    return value


def read_int(value: object, path: str, error: ErrorType, *, low: int, high: int | None) -> int:
    """Read an integer in [low, high] (no upper bound when `high` is None); booleans are not."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise error(path, "must be an integer")
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise error(path, f"must be {bounds}")
    return value
