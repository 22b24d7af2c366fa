"""``mapokezi console``: the operator's local web app (calls, messages, numbers, an overview,
and a page to talk to the receptionist from the browser's microphone).

It reads what the CLI reads: the calls table with the operator's AWS credentials
(``CALLS_TABLE``), the deployed query API (``--api URL``), or the local stack (``--local``).
It listens on 127.0.0.1 only, unless ``--listen-anywhere`` says otherwise (with a warning).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any, TextIO

from mapokezi import config
from mapokezi.sautikit_api import SautikitClient
from mapokezi_cli.console.app import ConsoleSettings
from mapokezi_cli.console.platform import SautikitLookup
from mapokezi_cli.console.pricing import ModelPrices
from mapokezi_cli.console.server import ConsoleServer
from mapokezi_cli.console.sources import ApiSource, TableSource
from mapokezi_cli.console.talk import TalkSettings

__all__ = [
    "ConsoleServer",
    "ConsoleSettings",
    "local_settings",
    "run",
    "settings_from_args",
]


def _prices(pairs: list[str]) -> ModelPrices:
    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--price {pair!r}: use NAME=VALUE, e.g. audio_out=64")
        overrides[name.strip()] = value.strip()
    return ModelPrices.from_env(overrides=overrides)


def _sautikit() -> SautikitLookup | None:
    if not (os.environ.get("SAUTIKIT_API_KEY") or os.environ.get("SAUTIKIT_API_KEY_ARN")):
        return None
    try:
        return SautikitLookup(SautikitClient.from_env())
    except config.ConfigError:
        return None


def settings_from_args(args: argparse.Namespace) -> ConsoleSettings:
    """Console settings from ``mapokezi console`` arguments (``--local`` sets the environment).

    Raises:
        ValueError: a bad ``--price``.
    """
    prices = _prices(args.price)
    if args.local or args.console_local:
        from mapokezi_cli.local_target import use_local_stack

        settings = local_settings(use_local_stack(), prices)
        if args.voice_url:
            settings.talk = TalkSettings(args.voice_url, args.webhook_secret, None, args.number)
        return settings
    talk = None
    if args.api:
        source: TableSource | ApiSource = ApiSource(args.api)
        voice = args.voice_url or args.api.rstrip("/") + "/voice"
    else:
        table_name = args.table or os.environ.get("CALLS_TABLE", "mapokezi-calls")
        source = TableSource(config.dynamodb_table(table_name), f"table {table_name}")
        voice = args.voice_url
    if voice:
        talk = TalkSettings(voice, args.webhook_secret, None, args.number)
    return ConsoleSettings(source, prices, talk, _sautikit())


def local_settings(cfg: Any, prices: ModelPrices | None = None) -> ConsoleSettings:
    """Settings for the local stack described by ``cfg`` (a ``local.stack.StackConfig``)."""
    from mapokezi_cli.local_target import local_double_url, local_voice_url

    double = cfg.sautikit_api_url or local_double_url(cfg)
    source = TableSource(
        config.dynamodb_table(cfg.table_name),
        f"local stack: table {cfg.table_name} on moto :{cfg.moto_port}",
    )
    talk = TalkSettings(
        local_voice_url(cfg),
        cfg.webhook_secret or None,
        None if cfg.sautikit_api_url else double,
        cfg.demo_number,
    )
    sautikit = SautikitLookup(SautikitClient(double, cfg.sautikit_api_key))
    return ConsoleSettings(source, prices or ModelPrices.from_env(), talk, sautikit)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Serve until Ctrl-C."""
    settings = settings_from_args(args)
    host = "0.0.0.0" if args.listen_anywhere else "127.0.0.1"
    if args.listen_anywhere:
        print(
            "WARNING: --listen-anywhere: the console (call transcripts, caller numbers, profile "
            "upload) is reachable from other machines, with no login. Use it only on a network "
            "you trust.",
            file=sys.stderr,
        )
    server = ConsoleServer(settings, host, args.port).start()
    shown = f"http://127.0.0.1:{server.port}" if args.listen_anywhere else server.url
    print(f"Mapokezi console: {shown}  ({settings.source.description}; Ctrl-C stops it)", file=out)
    out.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
