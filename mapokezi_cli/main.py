"""``mapokezi``: the operator's command line for calls, messages, receptionist profiles and numbers.

Calls and profiles are read from and written to the calls table with boto3 (``CALLS_TABLE``;
``AWS_ENDPOINT_URL`` points it at a local moto server). With ``--api URL`` (or
``MAPOKEZI_API_URL``) the ``calls`` commands use the deployed ``GET /calls`` routes instead,
signing requests with SigV4 when AWS credentials are available. ``numbers`` commands talk to the
Sautikit REST API (``SAUTIKIT_API_URL``, ``SAUTIKIT_API_KEY``; see ``mapokezi.sautikit_api``).

Exit codes: 0 success, 1 failure (not found, AWS or Sautikit error), 2 invalid input.

Everything printed passes through :func:`mapokezi_cli.safe_text.terminal_safe` (text) or is
ASCII-escaped JSON (``--json``), so no field of a call can drive the operator's terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from calls_api.filters import FilterError, normalise_number, parse_filters
from mapokezi import config, messages, store
from mapokezi.outcomes import call_outcome
from mapokezi.profiles import ProfileError, load_profile_file, parse_profile
from mapokezi.sautikit_api import SautikitApiError, SautikitClient
from mapokezi_cli.safe_text import terminal_safe

EXIT_OK, EXIT_FAILURE, EXIT_INVALID = 0, 1, 2


class CliError(Exception):
    """An expected failure: printed as ``error: …`` and turned into an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- formatting ------------------------------------------------------------------------------


def money(minor: Any, currency: str | None = "KES") -> str:
    """``600`` → ``KES 6.00``; empty when unknown."""
    if not isinstance(minor, int | float):
        return ""
    return f"{currency or ''} {minor / 100:,.2f}".strip()


def to_json(data: Any) -> str:
    """Indented JSON with every non-ASCII and control character escaped (valid, inert)."""
    return json.dumps(data, indent=2, ensure_ascii=True)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain left-aligned text table (cells made terminal-safe)."""
    cells = [[terminal_safe(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def outcome_at_a_glance(call: dict[str, Any]) -> str:
    """The call's outcome (``mapokezi.outcomes``), with the handoff's path, last state and time
    to a person when there was one, e.g. ``rescued (rescue: connected in 6.2 s)``."""
    outcome = str(call_outcome(call))
    handoff = call.get("handoff") or {}
    if not handoff or handoff.get("kind", "transfer") != "transfer":
        return outcome
    detail = f"{handoff.get('path') or 'pending'}: {handoff.get('state', '?')}"
    if isinstance(handoff.get("time_to_person_ms"), int):
        detail += f" in {handoff['time_to_person_ms'] / 1000:.1f} s"
    return f"{outcome} ({detail})"


def format_calls(calls: Sequence[dict[str, Any]]) -> str:
    """The readable ``calls list`` table."""
    if not calls:
        return "no calls"
    rows = []
    for c in calls:
        cdr = c.get("cdr") or {}
        handoff = c.get("handoff") or {}
        rows.append(
            [
                c.get("started_at", ""),
                c.get("call_id", ""),
                c.get("from", ""),
                c.get("to", ""),
                c.get("status", ""),
                outcome_at_a_glance(c),
                handoff.get("target") or handoff.get("kind") or "",
                cdr.get("duration_seconds", ""),
                money(cdr.get("cost_minor"), cdr.get("cost_currency")),
            ]
        )
    headers = ["STARTED", "CALL", "FROM", "TO", "STATUS", "OUTCOME", "HANDOFF", "SECONDS", "COST"]
    return format_table(headers, rows)


def format_messages(items: Sequence[dict[str, Any]]) -> str:
    """The readable ``messages list`` table."""
    if not items:
        return "no messages"
    rows = [
        [
            m.get("created_at", ""),
            m.get("message_id", ""),
            m.get("state", ""),
            m.get("urgency", ""),
            m.get("name", ""),
            m.get("callback_number", ""),
            m.get("to", ""),
            m.get("message", ""),
        ]
        for m in items
    ]
    headers = ["TAKEN", "ID", "STATE", "URGENCY", "NAME", "CALL BACK", "FOR", "MESSAGE"]
    return format_table(headers, rows)


def _clock(at_ms: Any) -> str:
    seconds = (at_ms or 0) / 1000
    return f"{int(seconds // 60):02d}:{seconds % 60:04.1f}"


def format_call(record: dict[str, Any]) -> str:
    """The readable ``calls show`` view: summary, transcript, handoff, metrics and CDR.

    Every value from the record is made terminal-safe (one line each).
    """
    safe = terminal_safe
    out = [
        f"call      {safe(record.get('call_id'))}",
        f"from      {safe(record.get('from'))}",
        f"to        {safe(record.get('to'))}",
        f"status    {safe(record.get('status'))}",
        f"outcome   {call_outcome(record).value}",
        f"answer    {safe(record.get('answer') or '-')}",
        f"started   {safe(record.get('started_at'))}",
        f"ended     {safe(record.get('ended_at') or '-')}",
    ]
    if record.get("incomplete"):
        missing = (record["incomplete"] or {}).get("missing") or []
        out.append(f"incomplete  missing {safe(', '.join(map(str, missing)))}")
    out += ["", "transcript"]
    turns = record.get("transcript") or []
    for turn in turns:
        note = " [interrupted]" if turn.get("interrupted") else ""
        role, text = safe(turn.get("role")), safe(turn.get("text"))
        out.append(f"  [{_clock(turn.get('at_ms'))}] {role}: {text}{note}")
    if not turns:
        out.append("  (none)")
    handoff = record.get("handoff")
    out += ["", "handoff"]
    if handoff:
        out += [f"  {safe(k)}: {safe(v)}" for k, v in handoff.items()]
    else:
        out.append("  (none)")
    metrics = record.get("metrics") or {}
    out += ["", "metrics"]
    out += [f"  {safe(k)}: {json.dumps(v)}" for k, v in metrics.items()] or ["  (none)"]
    cdr = record.get("cdr")
    out += ["", "cdr"]
    if cdr:
        out += [f"  {safe(k)}: {safe(v)}" for k, v in cdr.items()]
        if isinstance(cdr.get("cost_minor"), int):
            out.append(f"  cost: {money(cdr['cost_minor'], cdr.get('cost_currency'))}")
    else:
        out.append("  (not fetched yet)")
    return "\n".join(out)


def format_learned(learned: dict[str, Any] | None, strategy: str) -> str:
    """What the platform was seen to do after a stream on this number, and what that means."""
    from mapokezi import handoff

    if not learned:
        seen = "nothing yet (no handoff after a stream has been seen)"
    else:
        counts = ", ".join(
            f"{k.removeprefix('seen_')} x{v}" for k, v in learned.items() if k.startswith("seen_")
        )
        seen = (
            f"{learned.get('after_stream')} (last seen {learned.get('learned_at')} on call "
            f"{learned.get('from_call')}; {counts})"
        )
    path = handoff.choose_path(strategy, (learned or {}).get("after_stream"))
    return f"learned after a stream: {seen}\nnext handoff path: {path} (strategy {strategy})"


def format_numbers(numbers: Sequence[dict[str, Any]]) -> str:
    """Inventory or owned numbers as a table."""
    if not numbers:
        return "no numbers"
    rows = [
        [
            n.get("id") or n.get("inventory_id"),
            n.get("number") or n.get("e164"),
            n.get("country") or n.get("country_iso2"),
            n.get("status", ""),
            money(n.get("monthly_price_minor", n.get("monthly_retail_minor")), n.get("currency")),
            n.get("voice_callback_url") or n.get("routing_url") or "",
        ]
        for n in numbers
    ]
    return format_table(["ID", "NUMBER", "COUNTRY", "STATUS", "MONTHLY", "VOICE URL"], rows)


# -- data sources ----------------------------------------------------------------------------


def _table(args: argparse.Namespace) -> Any:
    return config.dynamodb_table(args.table) if args.table else config.calls_table()


def api_get(base_url: str, path: str, params: dict[str, str] | None = None) -> Any:
    """GET a query-API route; SigV4-signed (execute-api) when AWS credentials are available."""
    query = urllib.parse.urlencode(params or {}, quote_via=urllib.parse.quote)
    url = base_url.rstrip("/") + path + (f"?{query}" if query else "")
    headers = {"Accept": "application/json", **_sigv4_headers(url)}
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
        try:
            reason = json.loads(raw).get("error") or json.loads(raw).get("message")
        except (ValueError, AttributeError):
            reason = raw[:200].decode("utf-8", "replace")
        code = EXIT_INVALID if exc.code == 400 else EXIT_FAILURE
        raise CliError(f"{reason} (HTTP {exc.code})", code) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CliError(f"cannot reach {base_url}: {getattr(exc, 'reason', exc)}") from None


def _sigv4_headers(url: str) -> dict[str, str]:
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        return {}
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(credentials, "execute-api", session.region_name or "us-east-1").add_auth(request)
    return dict(request.headers.items())


# -- commands --------------------------------------------------------------------------------


def _print_page(
    args: argparse.Namespace,
    out: TextIO,
    key: str,
    items: Sequence[dict[str, Any]],
    cursor: str | None,
    formatter: Callable[[Sequence[dict[str, Any]]], str],
) -> int:
    """Print one page of a listing: JSON with ``--json``, else the table and the next cursor."""
    if args.json:
        print(to_json({key: items, "next_cursor": cursor}), file=out)
        return EXIT_OK
    print(formatter(items), file=out)
    if cursor:
        print(f"\nmore: add --cursor {terminal_safe(cursor)}", file=out)
    return EXIT_OK


def cmd_calls_list(args: argparse.Namespace, out: TextIO) -> int:
    params = {
        "number": args.number,
        "caller": args.caller,
        "since": args.since,
        "until": args.until,
        "status": args.status,
        "handoffs": "true" if args.handoffs else None,
        "limit": None if args.limit is None else str(args.limit),
        "cursor": args.cursor,
    }
    filters = parse_filters({k: v for k, v in params.items() if v is not None})
    if args.api:
        page = api_get(args.api, "/calls", filters.query_params())
        calls, cursor = page.get("calls", []), page.get("next_cursor")
    else:
        calls, cursor = store.query_calls(_table(args), **filters.query_kwargs())
    return _print_page(args, out, "calls", calls, cursor, format_calls)


def cmd_calls_show(args: argparse.Namespace, out: TextIO) -> int:
    if args.api:
        record = api_get(args.api, f"/calls/{urllib.parse.quote(args.call_id, safe='')}")
    else:
        record = store.call_record(_table(args), args.call_id)
        if record is None:
            raise CliError(f"call {args.call_id!r} not found")
    print(to_json(record) if args.json else format_call(record), file=out)
    return EXIT_OK


def cmd_calls_delete(args: argparse.Namespace, out: TextIO) -> int:
    deleted = store.delete_call(_table(args), args.call_id)
    if not deleted:
        raise CliError(f"call {args.call_id!r} not found")
    if args.json:
        print(json.dumps({"call_id": args.call_id, "deleted_items": deleted}), file=out)
    else:
        print(
            f"deleted call {args.call_id} ({deleted} items: record, transcript, events)", file=out
        )
    return EXIT_OK


def cmd_console(args: argparse.Namespace, out: TextIO) -> int:
    from mapokezi_cli import console  # aiohttp is loaded only for the console

    try:
        return console.run(args, out)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_INVALID) from None
    except OSError as exc:
        raise CliError(f"cannot listen on port {args.port}: {exc.strerror or exc}") from None


def cmd_profile_put(args: argparse.Namespace, out: TextIO) -> int:
    number = normalise_number("--number", args.number)
    try:
        profile = parse_profile(load_profile_file(args.file), number=number)
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}", EXIT_INVALID) from None
    store.put_profile(_table(args), profile)
    name = terminal_safe(profile.business_name)
    print(f"stored profile for {terminal_safe(profile.number)} ({name})", file=out)
    return EXIT_OK


def cmd_profile_show(args: argparse.Namespace, out: TextIO) -> int:
    number = normalise_number("number", args.number)
    profile = store.get_profile(_table(args), number)
    if profile is None:
        raise CliError(f"no profile for {number}")
    data = profile.to_dict()
    learned = store.platform_behaviour(_table(args), number)
    if args.json:
        print(to_json({**data, "learned": learned}), file=out)
    else:
        import yaml  # available where the CLI runs; never imported by the Lambda functions

        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip()
        print(terminal_safe(text, keep_newlines=True), file=out)
        print("", file=out)
        print(
            terminal_safe(format_learned(learned, profile.handoff.strategy), keep_newlines=True),
            file=out,
        )
    return EXIT_OK


def cmd_messages_list(args: argparse.Namespace, out: TextIO) -> int:
    number = normalise_number("--number", args.number) if args.number else None
    if args.limit is not None and not 1 <= args.limit <= 100:
        raise CliError("--limit must be from 1 to 100", EXIT_INVALID)
    try:
        items, cursor = messages.list_messages(
            _table(args),
            number=number,
            open_only=args.open,
            limit=args.limit or 50,
            cursor=args.cursor,
        )
    except store.CursorError as exc:
        raise CliError(f"--cursor: {exc}", EXIT_INVALID) from None
    return _print_page(args, out, "messages", items, cursor, format_messages)


def cmd_messages_done(args: argparse.Namespace, out: TextIO) -> int:
    done = messages.mark_done(_table(args), args.message_id)
    if done is None:
        raise CliError(f"message {terminal_safe(args.message_id)!r} not found")
    if args.json:
        print(to_json(done), file=out)
    else:
        name = terminal_safe(str(done.get("name")))
        print(f"message {terminal_safe(args.message_id)} from {name} marked done", file=out)
    return EXIT_OK


def cmd_numbers_claim(args: argparse.Namespace, out: TextIO) -> int:
    client = SautikitClient.from_env()
    if not args.inventory_id:
        available = client.list_available(country=args.country)
        result: Any = available
        text = format_numbers(available) + "\n\nclaim one with: mapokezi numbers claim ID"
    else:
        number = client.claim_number(args.inventory_id)
        result = number
        text = (
            f"claimed {number.get('number') or number.get('e164')} "
            f"(number id {number.get('id')}, status {number.get('status')})\n"
            f"next: mapokezi numbers route {number.get('id')} --url https://<your api>/voice"
        )
    print(to_json(result) if args.json else terminal_safe(text, keep_newlines=True), file=out)
    return EXIT_OK


def cmd_numbers_route(args: argparse.Namespace, out: TextIO) -> int:
    for flag, url in (("--url", args.url), ("--events-url", args.events_url)):
        if url is not None and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise CliError(f"{flag}: {url!r} must be an http(s) URL", EXIT_INVALID)
    number = SautikitClient.from_env().route_number(
        args.number_id, args.url, events_url=args.events_url
    )
    if args.json:
        print(to_json(number), file=out)
    else:
        text = (
            f"routed {number.get('number') or number.get('e164') or args.number_id} to "
            f"{args.url}" + (f" (events: {args.events_url})" if args.events_url else "")
        )
        print(terminal_safe(text), file=out)
    return EXIT_OK


def cmd_numbers_list(args: argparse.Namespace, out: TextIO) -> int:
    numbers = SautikitClient.from_env().list_numbers()
    print(to_json(numbers) if args.json else format_numbers(numbers), file=out)
    return EXIT_OK


# -- argument parsing ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``mapokezi`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="mapokezi", description="Operator command line for calls, profiles and numbers."
    )
    parser.add_argument("--table", help="calls table (default: $CALLS_TABLE)")
    parser.add_argument(
        "--local",
        action="store_true",
        help="use the local stack (`make run`): its moto table and Sautikit API double",
    )
    groups = parser.add_subparsers(dest="group", required=True)

    def command(sub: Any, name: str, handler: Callable[..., int], help_text: str) -> Any:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        p.add_argument("--json", action="store_true", help="print JSON")
        return p

    calls = groups.add_parser("calls", help="list and inspect calls").add_subparsers(
        dest="command", required=True
    )
    api_help = "query the deployed API at URL instead of DynamoDB (default: $MAPOKEZI_API_URL)"
    listing = command(calls, "list", cmd_calls_list, "list calls, newest first")
    listing.add_argument("--number", help="dialled number (E.164)")
    listing.add_argument("--caller", help="caller number (E.164)")
    listing.add_argument("--since", help="ISO-8601 time, e.g. 2026-11-21T08:00:00+03:00")
    listing.add_argument("--until", help="ISO-8601 time")
    listing.add_argument("--status", help="active or ended")
    listing.add_argument("--handoffs", action="store_true", help="only calls with a handoff")
    listing.add_argument("--limit", type=int, help="page size 1-100 (default 25)")
    listing.add_argument("--cursor", help="next_cursor of the previous page")
    listing.add_argument("--api", default=os.environ.get("MAPOKEZI_API_URL"), help=api_help)
    show = command(calls, "show", cmd_calls_show, "show one call's full record")
    show.add_argument("call_id", metavar="ID")
    show.add_argument("--api", default=os.environ.get("MAPOKEZI_API_URL"), help=api_help)

    delete = command(calls, "delete", cmd_calls_delete, "delete every stored item of a call")
    delete.add_argument("call_id", metavar="ID")

    console = groups.add_parser(
        "console",
        help="the operator's web console on 127.0.0.1",
        description="Serve the operator's web console (calls, messages, numbers, overview, "
        "talk to the receptionist) on 127.0.0.1.",
    )
    console.set_defaults(handler=cmd_console)
    from mapokezi_cli.console_args import add_console_arguments

    add_console_arguments(console)

    profile = groups.add_parser("profile", help="receptionist profiles").add_subparsers(
        dest="command", required=True
    )
    put = command(profile, "put", cmd_profile_put, "validate and store a profile file")
    put.add_argument("file", metavar="FILE", help="YAML or JSON profile")
    put.add_argument("--number", required=True, help="the Sautikit number it answers (E.164)")
    shown = command(profile, "show", cmd_profile_show, "show the stored profile of a number")
    shown.add_argument("number", metavar="N")

    notes = groups.add_parser("messages", help="messages taken for the business")
    notes_sub = notes.add_subparsers(dest="command", required=True)
    listed = command(notes_sub, "list", cmd_messages_list, "list messages, newest first")
    listed.add_argument("--number", help="only messages for this dialled number (E.164)")
    listed.add_argument("--open", action="store_true", help="only messages not yet done")
    listed.add_argument("--limit", type=int, help="page size 1-100 (default 50)")
    listed.add_argument("--cursor", help="next_cursor of the previous page")
    done = command(notes_sub, "done", cmd_messages_done, "mark a message as dealt with")
    done.add_argument("message_id", metavar="ID")

    numbers = groups.add_parser("numbers", help="Sautikit numbers").add_subparsers(
        dest="command", required=True
    )
    claim = command(numbers, "claim", cmd_numbers_claim, "claim a number (list them without ID)")
    claim.add_argument("inventory_id", metavar="INVENTORY_ID", nargs="?")
    claim.add_argument("--country", default="KE", help="inventory country (default KE)")
    route = command(numbers, "route", cmd_numbers_route, "point a number at the voice webhook")
    route.add_argument("number_id", metavar="ID")
    route.add_argument("--url", required=True, help="voice webhook, e.g. https://…/voice")
    route.add_argument("--events-url", help="events webhook, e.g. https://…/events")
    command(numbers, "list", cmd_numbers_list, "numbers this workspace owns")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        if args.local:
            from mapokezi_cli.local_target import use_local_stack

            use_local_stack()
        return args.handler(args, out)
    except CliError as exc:
        _error(f"error: {exc}")
        return exc.exit_code
    except ProfileError as exc:
        _error(f"error: invalid profile {getattr(args, 'file', '')}".rstrip())
        for line in exc.errors:
            _error(f"  {line}")
        return EXIT_INVALID
    except FilterError as exc:
        _error(f"error: {exc}")
        return EXIT_INVALID
    except SautikitApiError as exc:
        _error(f"error: Sautikit API: {exc}")
        return EXIT_FAILURE
    except config.ConfigError as exc:
        _error(f"error: {exc}")
        return EXIT_FAILURE
    except (ClientError, BotoCoreError) as exc:
        _error(f"error: AWS: {exc}")
        return EXIT_FAILURE


def _error(message: str) -> None:
    # Error texts can quote what a server or a record said.
    print(terminal_safe(message), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
