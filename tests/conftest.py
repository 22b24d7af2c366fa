"""Shared fixtures: fake AWS credentials, moto, and the calls table built from template.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import moto_atomic
from local.template import create_tables
from mapokezi import config

moto_atomic.install()  # conditional writes are atomic in DynamoDB; make them so in moto too

TABLE_NAME = "test-calls"


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Never reach real AWS: fake credentials, a fixed region, and no endpoint override."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "af-south-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "MapokeziTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "mapokezi-test")
    config.reset_aws_clients()
    yield
    config.reset_aws_clients()


@pytest.fixture
def aws() -> Iterator[None]:
    """An in-process moto mock of every AWS service."""
    with mock_aws():
        config.reset_aws_clients()
        yield
    config.reset_aws_clients()


@pytest.fixture
def calls_table(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The calls table, created in moto from template.yaml's definition."""
    create_tables(boto3.client("dynamodb"), {"CallsTable": TABLE_NAME})
    monkeypatch.setenv("CALLS_TABLE", TABLE_NAME)
    return boto3.resource("dynamodb").Table(TABLE_NAME)
