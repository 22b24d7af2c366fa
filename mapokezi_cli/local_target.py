"""``--local``: point the CLI and the console at the local stack (``make run``), no setup needed.

The stack's ports and names are the ones the running ``make run`` recorded (``local/running.py``),
overridden by the same environment variables ``make run`` reads (``MOTO_PORT``,
``SAUTIKIT_DOUBLE_PORT``, ``CALLS_TABLE``, … see ``local/stack.py``).
"""

from __future__ import annotations

import os

from local import running
from local.stack import StackConfig
from mapokezi import config


def use_local_stack() -> StackConfig:
    """Set this process's AWS and Sautikit settings to the local stack's; returns its config."""
    cfg = StackConfig.from_env({k: v for k, v in running.settings().items() if v})
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": f"http://{cfg.host}:{cfg.moto_port}",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "af-south-1",
            "CALLS_TABLE": cfg.table_name,
            "SAUTIKIT_API_URL": cfg.sautikit_api_url or local_double_url(cfg),
            "SAUTIKIT_API_KEY": cfg.sautikit_api_key,
        }
    )
    os.environ.pop("AWS_PROFILE", None)  # a named profile would win over the keys above
    os.environ.pop("AWS_SESSION_TOKEN", None)
    config.reset_aws_clients()
    return cfg


def local_double_url(cfg: StackConfig) -> str:
    """The local stack's Sautikit API double."""
    return f"http://{cfg.host}:{cfg.sautikit_double_port}"


def local_voice_url(cfg: StackConfig) -> str:
    """The local gateway's voice webhook."""
    return f"http://{cfg.host}:{cfg.gateway_port}/voice"
