"""A local stand-in for API Gateway (HTTP API): real HTTP in, the real Lambda handlers behind.

Routes come from template.yaml's ``HttpApi`` events, so the local routes cannot drift from the
deployed ones. Each request becomes an HTTP API payload v2 event (bodies other than JSON and
text are base64-encoded, as API Gateway does for form posts) and is handed to the function's
``lambda_handler`` in-process, one event at a time across all functions: Powertools resolvers
keep the current event on a class attribute shared by every resolver in the process, so two
functions running at once would read each other's request (in AWS each function has its own
process).

Routes that need IAM authorization in AWS are served unsigned here: the gateway only listens on
loopback unless told otherwise.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.lambda_path import add_functions_to_path
from local.template import resources_of_type

log = logging.getLogger("mapokezi.gateway")

_TEXT_TYPES = ("application/json", "text/", "application/xml")
_MAX_BODY = 1 << 20  # API Gateway's own limit is 10 MB; webhooks are tiny


@dataclass
class Route:
    """One HttpApi route of the template."""

    method: str
    path: str
    function: str
    handler: str
    iam: bool
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        self.pattern = re.compile(f"^{regex}$")


def routes_from_template() -> list[Route]:
    """Every ``HttpApi`` event of every function in template.yaml."""
    routes = []
    for name, props in resources_of_type("AWS::Serverless::Function").items():
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            ev = event.get("Properties", {})
            auth = (ev.get("Auth") or {}).get("Authorizer")
            routes.append(
                Route(ev["Method"].upper(), ev["Path"], name, props["Handler"], auth == "AWS_IAM")
            )
    return routes


@dataclass
class FakeLambdaContext:
    """The parts of the Lambda context object the handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self.invoked_function_arn = (
            f"arn:aws:lambda:af-south-1:000000000000:function:{self.function_name}"
        )

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class HandlerRegistry:
    """Imports handlers lazily and runs one invocation at a time, whatever the function.

    A lock per function is not enough: Powertools sets ``BaseRouter.current_event`` on the
    class, so concurrent invocations of two different functions share one current event.
    """

    def __init__(self) -> None:
        add_functions_to_path()
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._guard = threading.Lock()
        self._invoking = threading.Lock()

    def load(self, handler: str) -> Callable[..., Any]:
        """Import ``handler`` (``module.attr``) once, like a Lambda cold start."""
        with self._guard:
            if handler not in self._handlers:
                module_name, attr = handler.rsplit(".", 1)
                self._handlers[handler] = getattr(importlib.import_module(module_name), attr)
            return self._handlers[handler]

    def invoke(self, function: str, handler: str, event: dict[str, Any]) -> Any:
        """Run ``handler`` for ``event`` the way Lambda would, one event at a time."""
        run = self.load(handler)
        with self._invoking:
            return run(event, FakeLambdaContext(function))


def build_http_event(
    route: Route,
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    path_parameters: dict[str, str],
    host: str,
    source_ip: str,
) -> dict[str, Any]:
    """An HTTP API payload v2 event as API Gateway would send it."""
    content_type = headers.get("content-type", "")
    is_text = any(content_type.startswith(t) for t in _TEXT_TYPES)
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{route.method} {route.path}",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{route.method} {route.path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": bool(body) and not is_text,
    }
    if raw_query:
        event["queryStringParameters"] = dict(parse_qsl(raw_query, keep_blank_values=True))
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        event["body"] = (
            body.decode("utf-8", "replace") if is_text else base64.b64encode(body).decode()
        )
    return event


class Gateway:
    """The local HTTP API: ``start()`` serves on a thread, ``stop()`` shuts it down."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 3000,
        *,
        routes: list[Route] | None = None,
        status_page: Callable[[], str] | None = None,
    ) -> None:
        self.routes = routes if routes is not None else routes_from_template()
        self.registry = HandlerRegistry()
        self.status_page = status_page or (lambda: "Mapokezi local gateway\n")
        #: Where GET / redirects (the console), instead of the plain-text status page.
        self.home_url: str | None = None
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:3000``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, *, warm: bool = False) -> Gateway:
        """Serve on a background thread; ``warm`` imports every handler first."""
        if warm:
            for route in self.routes:
                self.registry.load(route.handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """The route for ``method path``, its path parameters, and whether the path exists."""
        path_known = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found:
                path_known = True
                if route.method == method:
                    return route, found.groupdict(), True
        return None, {}, path_known

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("%s " + format, self.address_string(), *args)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._dispatch("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._dispatch("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._dispatch("PUT")

            def do_PATCH(self) -> None:  # noqa: N802
                self._dispatch("PATCH")

            def do_DELETE(self) -> None:  # noqa: N802
                self._dispatch("DELETE")

            def _dispatch(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                if length > _MAX_BODY:
                    self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": "too large"})
                    return
                body = self.rfile.read(length) if length else b""
                if method == "GET" and parts.path == "/":
                    if gateway.home_url:  # the console shows the stack live
                        self.send_response(HTTPStatus.FOUND)
                        self.send_header("Location", gateway.home_url)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self._reply_raw(200, "text/plain; charset=utf-8", gateway.status_page())
                    return
                route, params, path_known = gateway.match(method, parts.path)
                if route is None:
                    status = HTTPStatus.METHOD_NOT_ALLOWED if path_known else HTTPStatus.NOT_FOUND
                    self._reply(status, {"message": status.phrase})
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                event = build_http_event(
                    route,
                    method=method,
                    raw_path=parts.path,
                    raw_query=parts.query,
                    headers=headers,
                    body=body,
                    path_parameters=params,
                    host=headers.get("host", "127.0.0.1"),
                    source_ip=self.client_address[0],
                )
                try:
                    result = gateway.registry.invoke(route.function, route.handler, event)
                except Exception:
                    # API Gateway answers 500 when the integration fails; keep the traceback.
                    log.exception("handler %s failed", route.handler)
                    self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"message": "Internal Error"})
                    return
                self._reply_lambda(result)

            def _reply_lambda(self, result: Any) -> None:
                if not isinstance(result, dict) or "statusCode" not in result:
                    # payload v2 lets a function return a bare value: it becomes a JSON 200
                    self._reply(HTTPStatus.OK, result)
                    return
                body = result.get("body") or ""
                raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
                headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
                for key, values in (result.get("multiValueHeaders") or {}).items():
                    headers.setdefault(key.lower(), ", ".join(values))
                content_type = headers.pop("content-type", "application/json")
                self._reply_raw(int(result["statusCode"]), content_type, raw, headers)

            def _reply(self, status: int, payload: Any) -> None:
                self._reply_raw(status, "application/json", json.dumps(payload))

            def _reply_raw(
                self,
                status: int,
                content_type: str,
                body: str | bytes,
                headers: dict[str, str] | None = None,
            ) -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    if key != "content-length":
                        self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
