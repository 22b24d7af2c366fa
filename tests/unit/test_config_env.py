"""Numbers and text from the environment: one set of helpers, one-line errors naming them."""

from __future__ import annotations

import pytest

from mapokezi.config import ConfigError, Settings, env_float, env_int, env_str


def test_unset_or_blank_gives_the_default() -> None:
    for env in ({}, {"N": ""}, {"N": "  "}):
        assert env_int(env, "N", 7) == 7
        assert env_float(env, "N", 1.5) == 1.5
        assert env_str(env, "N", "x") == "x"


def test_values_are_stripped_and_parsed() -> None:
    env = {"N": " 42 ", "F": " 0.25", "S": " hello "}
    assert env_int(env, "N", 0, low=1, high=100) == 42
    assert env_float(env, "F", 0.0, low=0.0) == 0.25
    assert env_str(env, "S", "") == "hello"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: env_int({"N": "4.5"}, "N", 0), "N must be a whole number, got '4.5'"),
        (lambda: env_int({"N": "0"}, "N", 1, low=1), "N must be at least 1, got 0"),
        (lambda: env_int({"N": "9"}, "N", 1, high=8), "N must be at most 8, got 9"),
        (lambda: env_int({"N": "9"}, "N", 1, low=1, high=8), "N must be between 1 and 8, got 9"),
        (lambda: env_float({"F": "soon"}, "F", 0.0), "F must be a number, got 'soon'"),
        (lambda: env_float({"F": "inf"}, "F", 0.0), "F must be a finite number, got 'inf'"),
        (lambda: env_float({"F": "-1"}, "F", 0.0, low=0.0), "F must be at least 0, got -1"),
    ],
)
def test_bad_values_are_one_line_errors(call: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        call()  # type: ignore[operator]
    assert str(caught.value) == message


def test_shared_settings_use_the_helpers() -> None:
    assert Settings.from_env({"MAX_CALLS": " 12 ", "CALLS_TABLE": " "}).max_calls == 12
    assert Settings.from_env({"CALLS_TABLE": " "}).calls_table == "mapokezi-calls"
    with pytest.raises(ConfigError, match="MEDIA_NODE_PORT must be between 0 and 65535"):
        Settings.from_env({"MEDIA_NODE_PORT": "70000"})
