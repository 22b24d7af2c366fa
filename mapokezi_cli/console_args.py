"""The ``mapokezi console`` options (kept apart so building the CLI parser loads no web stack)."""

from __future__ import annotations

import argparse
import os

DEFAULT_PORT = 8099


def add_console_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``mapokezi console`` options."""
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("CONSOLE_PORT") or DEFAULT_PORT),
        help=f"port (default $CONSOLE_PORT or {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--listen-anywhere",
        action="store_true",
        help="listen on every interface instead of 127.0.0.1 (anyone who can reach this "
        "machine then sees your calls)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--api",
        default=os.environ.get("MAPOKEZI_API_URL"),
        help="read calls from the deployed API at URL (default $MAPOKEZI_API_URL)",
    )
    where.add_argument(
        "--local",
        action="store_true",
        dest="console_local",
        help="read the local stack (`make run`) and call its voice webhook",
    )
    parser.add_argument(
        "--voice-url",
        help="voice webhook the talk page calls "
        "(default: the local gateway with --local, else <api>/voice)",
    )
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("SAUTIKIT_WEBHOOK_SECRET"),
        help="sign the talk page's webhooks (default $SAUTIKIT_WEBHOOK_SECRET)",
    )
    parser.add_argument(
        "--number",
        default=os.environ.get("DEMO_NUMBER") or "+254700000100",
        help="the number the talk page dials by default",
    )
    parser.add_argument(
        "--price",
        action="append",
        default=[],
        metavar="NAME=USD",
        help="model price per million tokens: text_in, audio_in, cached_in, "
        "text_out, audio_out (see the README for defaults)",
    )
