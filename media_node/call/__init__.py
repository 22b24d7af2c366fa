"""One call: a sans-I/O core (`core`, `endings`) and the I/O shell that drives it (`session`).

`state`, `events` and `actions` name what the core decides with, is told and asks for;
`transcript` and `watchdog` are its pure helpers.
"""

from media_node.call.session import CallSession

__all__ = ["CallSession"]
