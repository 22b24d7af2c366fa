"""The shared AWS session: models found directly, identical to botocore's, clients that work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader

from mapokezi import aws_session, config

BOTO3_DATA = str(Path(boto3.__file__).parent / "data")


class CountingLoader(aws_session.DirectModelLoader):
    """Counts the full service listings it is asked for."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.listings: list[str] = []

    def list_available_services(self, type_name: str) -> Any:
        self.listings.append(type_name)
        return super().list_available_services(type_name)


@pytest.mark.parametrize(
    ("service", "type_name"),
    [
        ("dynamodb", "service-2"),
        ("dynamodb", "resources-1"),
        ("dynamodb", "endpoint-rule-set-1"),
        ("sqs", "service-2"),
        ("secretsmanager", "service-2"),
        ("autoscaling", "paginators-1"),  # has sdk extras merged into it
    ],
)
def test_models_are_botocore_s_own(service: str, type_name: str) -> None:
    stock = Loader(extra_search_paths=[BOTO3_DATA])
    direct = CountingLoader(extra_search_paths=[BOTO3_DATA])
    assert direct.load_service_model(service, type_name) == stock.load_service_model(
        service, type_name
    )
    assert direct.listings == []


def test_a_botocore_without_the_private_extras_takes_its_own_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runtime's botocore is not pinned: a release without the private parts the loader
    relies on gets its own loading path, not an error."""

    class RenamedExtras(aws_session.DirectModelLoader):
        @property
        def _find_extras(self) -> Any:
            raise AttributeError("renamed in this botocore")

    asked: list[tuple[str, str, str | None]] = []

    def botocore_s_own(self: Loader, service: str, type_name: str, api_version: Any = None) -> Any:
        asked.append((service, type_name, api_version))
        return {"from": "botocore"}

    monkeypatch.setattr(Loader, "load_service_model", botocore_s_own)
    loader = RenamedExtras(extra_search_paths=[BOTO3_DATA])
    assert loader.load_service_model("dynamodb", "service-2") == {"from": "botocore"}
    assert asked == [("dynamodb", "service-2", None)]


def test_an_unknown_service_is_refused_with_the_list_of_known_ones() -> None:
    direct = CountingLoader()
    with pytest.raises(UnknownServiceError, match="dynamodb"):
        direct.load_service_model("dynamodbb", "service-2")
    assert direct.listings == ["service-2"]


def test_an_explicit_api_version_is_loaded_as_asked() -> None:
    direct = CountingLoader()
    old = direct.load_service_model("dynamodb", "endpoint-rule-set-1", api_version="2011-12-05")
    assert old == Loader().load_service_model(
        "dynamodb", "endpoint-rule-set-1", api_version="2011-12-05"
    )


def test_sessions_load_with_the_direct_loader_and_honour_aws_data_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    session = aws_session.new_session()
    loader = session._session.get_component("data_loader")
    assert isinstance(loader, aws_session.DirectModelLoader)
    assert loader.search_paths[0] == str(tmp_path)
    assert BOTO3_DATA in loader.search_paths  # boto3 adds its resource models


def test_every_client_comes_from_one_session_and_talks_to_aws(calls_table: Any) -> None:
    sqs = config.aws_client("sqs")
    url = sqs.create_queue(QueueName="shared-session")["QueueUrl"]
    assert sqs.get_queue_url(QueueName="shared-session")["QueueUrl"] == url
    config.calls_table().put_item(Item={"pk": "P", "sk": "S", "n": 1})
    assert config.calls_table().get_item(Key={"pk": "P", "sk": "S"})["Item"]["n"] == 1
    loader = aws_session.shared_session()._session.get_component("data_loader")
    assert isinstance(loader, aws_session.DirectModelLoader)
    config.reset_aws_clients()
    assert aws_session.shared_session()._session.get_component("data_loader") is not loader
