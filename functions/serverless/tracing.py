"""The handlers' tracer: Lambda's own X-Ray segments always, the X-Ray SDK only when asked for.

With ``Tracing: Active`` the Lambda service records every invocation's segment (initialisation,
invocation, overhead) with no SDK in the function. The X-Ray SDK adds subsegments per handler and
per AWS call, but importing it costs more CPU than the rest of a cold start (its global recorder
builds two botocore X-Ray clients at import, and ``patch_all`` imports every library it can
instrument), so a handler loads it only when ``TRACE_DETAIL`` is true. Otherwise the Powertools
:class:`~aws_lambda_powertools.tracing.Tracer` keeps its decorators and methods but hands them a
provider that records nothing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools.tracing import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

#: Environment variable that loads the X-Ray SDK for per-handler and per-AWS-call subsegments.
TRACE_DETAIL = "TRACE_DETAIL"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def detail_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``TRACE_DETAIL`` asks for X-Ray SDK subsegments (default: no).

    Raises:
        ValueError: the value is not a recognisable yes or no, so a typo cannot silently pick one.
    """
    env = os.environ if environ is None else environ
    raw = env.get(TRACE_DETAIL, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{TRACE_DETAIL} must be true or false, got {raw!r}")


class _UnrecordedSegment(BaseSegment):
    """A subsegment nobody records: Lambda's own segment already covers the invocation."""

    def close(self, end_time: int | None = None) -> None:
        return None

    def add_subsegment(self, subsegment: Any) -> None:
        return None

    def remove_subsegment(self, subsegment: Any) -> None:
        return None

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        return None


class LambdaSegmentsOnly(BaseProvider):
    """A tracing provider that leaves tracing to the Lambda service and imports no SDK."""

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[BaseSegment]:
        yield _UnrecordedSegment()

    @asynccontextmanager
    async def in_subsegment_async(
        self, name: str | None = None, **kwargs: Any
    ) -> AsyncIterator[BaseSegment]:
        yield _UnrecordedSegment()

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def patch(self, modules: Sequence[str]) -> None:
        return None

    def patch_all(self) -> None:
        return None


def make_tracer(environ: Mapping[str, str] | None = None) -> Tracer:
    """The handler's tracer: the X-Ray SDK's when ``TRACE_DETAIL`` is true, else one that
    records nothing itself (and imports no SDK) while Lambda traces the invocation."""
    if detail_requested(environ):
        from aws_xray_sdk.core import patch, patch_all, xray_recorder

        # As Powertools wires its default provider. Powertools keeps its configuration on the
        # class, so provider and patching are named explicitly: an earlier tracer in this
        # process cannot leave its own behind.
        xray_recorder.patch = patch
        xray_recorder.patch_all = patch_all
        return Tracer(provider=xray_recorder, auto_patch=True)
    return Tracer(provider=LambdaSegmentsOnly(), auto_patch=False)
