"""Where the console reads calls and profiles: the calls table, or the deployed query API.

Both sources answer the same questions with the same record shapes as ``mapokezi calls``:
:class:`TableSource` reads DynamoDB through ``mapokezi.store`` (the operator's AWS credentials,
or the local stack's moto server); :class:`ApiSource` calls the deployed ``GET /calls`` routes,
SigV4-signed like the CLI. Every method is synchronous (boto3, urllib): the web app runs them
in a worker thread.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Key

from mapokezi import keys, store
from mapokezi.profiles import Profile, parse_profile

#: Calls the overview and the messages page read at most (newest first).
SCAN_LIMIT = 2000


class SourceError(Exception):
    """The source could not answer (AWS, HTTP or a bad cursor); the message says why."""


@dataclass(frozen=True)
class CallQuery:
    """The filters of the calls page, already validated (``calls_api.filters``)."""

    query_kwargs: dict[str, Any]
    query_params: dict[str, str]


class TableSource:
    """Calls and profiles straight from the calls table."""

    kind = "table"

    def __init__(self, table: Any, description: str) -> None:
        self.table = table
        self.description = description

    def list_calls(self, query: CallQuery) -> tuple[list[dict[str, Any]], str | None]:
        """One page of calls, newest first, and the cursor of the next page."""
        try:
            return store.query_calls(self.table, **query.query_kwargs)
        except store.CursorError as exc:
            raise SourceError(str(exc)) from None

    def call(self, call_id: str) -> dict[str, Any] | None:
        """The whole record of one call, or None."""
        return store.call_record(self.table, call_id)

    def profiles(self) -> list[dict[str, Any]]:
        """Every stored profile: ``number``, ``updated_at``, ``profile`` (or ``error``) and
        ``platform``: what was learned about the platform's behaviour on the number, or None."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "FilterExpression": Key(keys.SK).eq("PROFILE"),
            "ProjectionExpression": "#n, #p, updated_at",
            "ExpressionAttributeNames": {"#n": "number", "#p": "profile"},
        }
        while True:
            page = self.table.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        out = []
        for item in sorted(items, key=lambda i: str(i.get("number"))):
            entry: dict[str, Any] = {
                "number": item.get("number"),
                "updated_at": item.get("updated_at"),
            }
            try:
                entry["profile"] = parse_profile(json.loads(item["profile"]), number=item["number"])
            except (ValueError, KeyError) as exc:  # a profile stored by an older version
                entry["error"] = str(exc)
            entry["platform"] = store.platform_behaviour(self.table, str(item.get("number")))
            out.append(entry)
        return out

    def profile(self, number: str) -> Profile | None:
        """The profile of one number, or None."""
        return store.get_profile(self.table, number)

    def put_profile(self, profile: Profile) -> None:
        """Store a validated profile."""
        store.put_profile(self.table, profile)

    @property
    def can_edit_profiles(self) -> bool:
        """Profiles live in the table: they can be listed and uploaded."""
        return True


class ApiSource:
    """Calls from the deployed query API (``GET /calls``, ``GET /calls/{id}``)."""

    kind = "api"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.description = f"API {self.base_url}"

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        from mapokezi_cli.main import CliError, api_get

        try:
            return api_get(self.base_url, path, params)
        except CliError as exc:
            raise SourceError(str(exc)) from None

    def list_calls(self, query: CallQuery) -> tuple[list[dict[str, Any]], str | None]:
        """One page of calls, newest first, and the cursor of the next page."""
        page = self._get("/calls", query.query_params)
        return list(page.get("calls") or []), page.get("next_cursor")

    def call(self, call_id: str) -> dict[str, Any] | None:
        """The whole record of one call, or None when the API says 404."""
        try:
            return self._get(f"/calls/{urllib.parse.quote(call_id, safe='')}")
        except SourceError as exc:
            if "(HTTP 404)" in str(exc):
                return None
            raise

    def profiles(self) -> list[dict[str, Any]]:
        """The query API has no profile routes."""
        return []

    def profile(self, number: str) -> Profile | None:
        """The query API has no profile routes."""
        return None

    def put_profile(self, profile: Profile) -> None:
        """The query API has no profile routes."""
        raise SourceError("profiles are stored in the calls table: run the console without --api")

    @property
    def can_edit_profiles(self) -> bool:
        """Profiles are not reachable through the query API."""
        return False


def recent_calls(source: TableSource | ApiSource, query: CallQuery) -> list[dict[str, Any]]:
    """Up to :data:`SCAN_LIMIT` calls matching ``query``, following cursors."""
    calls: list[dict[str, Any]] = []
    kwargs = dict(query.query_kwargs)
    params = dict(query.query_params)
    kwargs["limit"] = 100
    params["limit"] = "100"
    while len(calls) < SCAN_LIMIT:
        page, cursor = source.list_calls(CallQuery(kwargs, params))
        calls.extend(page)
        if not cursor:
            break
        kwargs["cursor"] = params["cursor"] = cursor
    return calls[:SCAN_LIMIT]
