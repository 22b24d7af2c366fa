"""What the platform's retries of the first POST must get back (sans I/O).

Sautikit retries a voice webhook it got no answer to, and API Gateway may run the copies in
parallel. Whichever answer the platform acts on, the call must work: copies sent together must
get the same answer (the same stream token), and a copy sent later must get that same answer or
an empty ``<Response/>`` (the stream is already up), never a new ``<Stream>`` whose token would
replace the one the platform connected with.
"""

from __future__ import annotations

from local.emulator.answer import parse_voice_answer
from local.emulator.webhook import HttpExchange


def concurrent_copies_disagree(first: HttpExchange, copies: list[HttpExchange]) -> list[str]:
    """Errors for copies of the first POST, sent at the same time, that were answered otherwise."""
    errors = []
    for copy in copies:
        if not copy.ok:
            errors.append(f"{copy.label}: HTTP {copy.status or copy.error}")
        elif copy.body != first.body:
            errors.append(
                f"{copy.label}: a concurrent copy of the first POST got a different answer"
                " (the platform may act on either: both must work)"
            )
    return errors


def late_copy_problems(first: HttpExchange, late: HttpExchange) -> list[str]:
    """Errors for a copy of the first POST sent after the call was set up."""
    if not late.ok:
        return [f"{late.label}: HTTP {late.status or late.error}"]
    if late.body == first.body:
        return []
    answer = parse_voice_answer(late.body, late.content_type)
    if not answer.verbs:
        return []
    verbs = ", ".join(v.name for v in answer.verbs)
    return [
        f"{late.label}: a late copy of the first POST got a different answer ({verbs}); acting"
        " on it would fork or break the call the platform already connected"
    ]
