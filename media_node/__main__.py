"""``python -m media_node``: run the media node until SIGTERM/SIGINT, then drain and exit 0.

Configuration comes from the environment (see :mod:`media_node.node_settings`); a missing or
malformed setting stops the process at once with a one-line message and exit status 2.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from typing import Any

import boto3
from botocore.config import Config

from mapokezi.config import ConfigError
from media_node import event_loop
from media_node.logging_setup import configure_logging
from media_node.node_settings import NodeSettings, logging_level
from media_node.server import MediaServer, SessionFactory, default_session_factory

logger = logging.getLogger("media_node")

#: DynamoDB calls from the node fail fast: a handoff write the caller is waiting on must not sit
#: out botocore's defaults (60 s timeouts, up to 10 attempts) when the table does not answer.
#: Record writes that fail are retried in the background (`media_node.records`).
NODE_DYNAMODB_CONFIG = Config(
    connect_timeout=1.0, read_timeout=3.0, retries={"mode": "standard", "total_max_attempts": 3}
)


def node_table(name: str) -> Any:
    """The calls table as the node uses it: a client with short timeouts and few attempts."""
    return boto3.resource("dynamodb", config=NODE_DYNAMODB_CONFIG).Table(name)


async def serve_node(node: NodeSettings, session_factory: SessionFactory | None = None) -> int:
    """Run a :class:`MediaServer` until a stop signal has been handled; returns the exit status.

    The first SIGTERM or SIGINT starts the drain; a second one shortens it.
    """
    table = node_table(node.settings.calls_table)
    server = MediaServer(node, table, session_factory or default_session_factory(node, table))
    try:
        await server.start()
    except OSError as exc:
        logger.error(
            "cannot listen", extra={"host": node.host, "port": node.port, "error": str(exc)}
        )
        return 1
    # What exists now (imports, boto3's service models: ~76k objects) lives as long as the
    # process. Frozen, it is left out of every full collection, which otherwise walks it all
    # (~35 ms) while every call's frames wait.
    gc.freeze()
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        logger.info("stop signal received", extra={"signal": signum.name})
        server.request_stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await server.wait_stopped()
    return 0


def main() -> int:
    """Entry point of ``python -m media_node``."""
    try:
        node = NodeSettings.from_env()
        loop_name, factory = event_loop.loop_factory(node.event_loop)
    except ConfigError as exc:
        print(f"media_node: {exc}", file=sys.stderr)
        return 2
    configure_logging(logging_level(node.log_level), service=node.service_name)
    logger.info("starting", extra={"event_loop": loop_name, "node_id": node.node_id})
    return event_loop.run(serve_node(node), factory)


if __name__ == "__main__":
    sys.exit(main())
