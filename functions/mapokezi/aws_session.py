"""The process's boto3 session, on a model loader that finds a service's files directly.

botocore's loader checks every service name against a listing of its whole data folder (about 440
service folders, one directory listing and one file check each, per model type) before it reads
the one model it was asked for. The listing is only needed to name the alternatives when a
service is unknown, yet a Lambda cold start pays it for every model type its clients load: tens
of milliseconds of a first request. :class:`DirectModelLoader` reads a known service's files
straight away and keeps botocore's behaviour, listing included, for an unknown one.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.exceptions import DataNotFoundError
from botocore.loaders import Loader, instance_cache


class DirectModelLoader(Loader):
    """A botocore :class:`~botocore.loaders.Loader` that skips the service listing on the way to a
    service's model."""

    @instance_cache
    def load_service_model(
        self, service_name: str, type_name: str, api_version: str | None = None
    ) -> Any:
        """The model of ``type_name`` (e.g. ``service-2``) for ``service_name``, with extras.

        Raises:
            UnknownServiceError: no folder holds a ``type_name`` model for ``service_name``.
        """
        # Private parts of botocore's loader (the Lambda runtime's botocore is not pinned): a
        # botocore without them takes its own path, listing and all, instead of failing.
        find_extras = getattr(self, "_find_extras", None)
        extras_processor = getattr(self, "_extras_processor", None)
        if find_extras is None or extras_processor is None:
            return super().load_service_model(service_name, type_name, api_version)
        if api_version is None:
            try:
                api_version = self.determine_latest_version(service_name, type_name)
            except DataNotFoundError:
                # Unknown here: botocore's own path lists the services and names them.
                return super().load_service_model(service_name, type_name)
        model = self.load_data(str(Path(service_name, api_version, type_name)))
        # What botocore's own load_service_model does after its listing.
        extras_processor.process(model, find_extras(service_name, type_name, api_version))
        return model


def new_session() -> boto3.Session:
    """A boto3 session whose botocore session loads models with :class:`DirectModelLoader`.

    ``AWS_DATA_PATH`` is honoured as botocore honours it.
    """
    core = botocore.session.get_session()
    data_path = core.get_config_variable("data_path")
    paths = (
        [str(Path(os.path.expandvars(path)).expanduser()) for path in data_path.split(os.pathsep)]
        if data_path
        else []
    )
    core.register_component("data_loader", DirectModelLoader(extra_search_paths=paths))
    return boto3.Session(botocore_session=core)


@cache
def shared_session() -> boto3.Session:
    """The session every client of this process is made from (created on first use)."""
    return new_session()
