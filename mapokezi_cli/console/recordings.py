"""A call's recording on Sautikit: ``GET /v1/calls/{id}/recording`` through the REST client."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mapokezi.sautikit_api import SautikitApiError, SautikitClient

log = logging.getLogger("mapokezi.console")


@dataclass
class RecordingLookup:
    """Asks Sautikit for recordings; the page plays the presigned URL it answers with."""

    client: SautikitClient

    def lookup(self, call_id: str) -> dict[str, Any]:
        """``{"state": "ready", "url"}``, ``{"state": "pending", "retry_after_seconds"}`` or
        ``{"state": "none", "reason"}``; never raises."""
        try:
            found = self.client.get_recording(call_id)
        except SautikitApiError as exc:
            if exc.status in (404, 410):
                return {"state": "none", "reason": "Sautikit has no recording of this call."}
            log.warning("recording lookup for %s failed: %s", call_id, exc)
            return {"state": "none", "reason": f"Sautikit did not answer: {exc}"}
        return found
