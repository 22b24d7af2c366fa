"""``python -m local`` (``make run``): the local stack in the foreground until Ctrl-C."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from local import running
from local.stack import LocalStack, StackConfig


def main() -> int:
    """Start every part, print what runs where, and stop cleanly on Ctrl-C or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("werkzeug", "botocore", "websockets"):  # per-request lines drown the story
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stack = LocalStack(StackConfig.from_env())
    try:
        stack.start()
    except Exception as exc:  # a port in use, a missing dependency: say it in one line
        print(f"mapokezi: the local stack did not start: {exc}", file=sys.stderr)
        return 1
    running.write(stack.settings())  # `make call` and `mapokezi --local` find these ports
    print(stack.status_page(), flush=True)
    print(
        f"Ready. Open {stack.console_url} or, in another terminal: make call"
        "    (Ctrl-C stops everything)",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        running.remove()
        print("\nStopping…", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
