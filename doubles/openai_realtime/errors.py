"""Errors the Realtime double reports, in the service's words, and the checks that raise them.

The codes and message shapes are the API's own: ``missing_required_parameter`` ("Missing
required parameter: 'session.type'."), ``unknown_parameter`` ("Unknown parameter:
'session.modalities'."), ``invalid_type``, ``invalid_value`` ("Invalid value: 'x'. Supported
values are: 'a' and 'b'.") and ``integer_above_max_value``-style range errors.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RealtimeError",
    "expect_integer",
    "expect_list",
    "expect_number",
    "expect_object",
    "expect_string",
    "invalid_type",
    "invalid_value",
    "missing_parameter",
    "reject_unknown",
]


class RealtimeError(Exception):
    """A client mistake reported with an ``error`` event (the session stays open)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.error_type = error_type


def reject_unknown(given: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in given:
        if key not in allowed:
            raise RealtimeError(
                "unknown_parameter", f"Unknown parameter: '{where}.{key}'.", param=f"{where}.{key}"
            )


def expect_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_type(path, "an object", value)
    return value


def expect_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid_type(path, "an array", value)
    return value


def expect_string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise invalid_type(path, "a string", value)
    return value


def expect_integer(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(path, "an integer", value)
    _check_range(value, path, low, high, "integer")
    return value


def expect_number(value: Any, path: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type(path, "a decimal", value)
    _check_range(value, path, low, high, "decimal")
    return value


def _check_range(value: float, path: str, low: float, high: float, kind: str) -> None:
    if value < low:
        raise RealtimeError(
            f"{kind}_below_min_value",
            f"Invalid '{path}': {kind} below minimum value. Expected a value >= {low}, "
            f"but got {value} instead.",
            param=path,
        )
    if value > high:
        raise RealtimeError(
            f"{kind}_above_max_value",
            f"Invalid '{path}': {kind} above maximum value. Expected a value <= {high}, "
            f"but got {value} instead.",
            param=path,
        )


def missing_parameter(path: str) -> RealtimeError:
    return RealtimeError(
        "missing_required_parameter", f"Missing required parameter: '{path}'.", param=path
    )


def invalid_type(path: str, expected: str, value: Any) -> RealtimeError:
    return RealtimeError(
        "invalid_type",
        f"Invalid type for '{path}': expected {expected}, but got {_describe(value)} instead.",
        param=path,
    )


def invalid_value(path: str, value: Any, supported: tuple[Any, ...]) -> RealtimeError:
    quoted = [f"'{item}'" for item in supported]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" and {quoted[-1]}"
    if len(quoted) > 2:
        listed = ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
    return RealtimeError(
        "invalid_value",
        f"Invalid value: '{value}'. Supported values are: {listed}.",
        param=path,
    )


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
