"""Asking GitHub again for the deliveries the App missed.

GitHub does not redeliver a failed webhook by itself. After downtime (or on a schedule)
the App lists its hook's recent deliveries (``GET /app/hook/deliveries``, as the App),
and for every delivery id (``guid``) that has no successful attempt and that the App has
not handled, asks for one more attempt (``POST /app/hook/deliveries/{id}/attempts``).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)


def _time(text: Any) -> float:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def list_deliveries(gh, since: float, page_size: int = 100) -> list[dict[str, Any]]:
    """Deliveries newer than ``since``, newest first, following the cursor pagination."""
    url = gh._build_url("app", "hook", "deliveries")
    params: dict[str, Any] | None = {"per_page": page_size}
    out: list[dict[str, Any]] = []
    while url:
        response = gh._get(url, params=params)
        data = gh._json(response, 200) or []
        for item in data:
            if _time(item.get("delivered_at")) < since:
                return out
            out.append(item)
        url = response.links.get("next", {}).get("url")
        params = None  # the next link carries its own query
    return out


def failed_deliveries(deliveries: list[dict[str, Any]], seen) -> list[dict[str, Any]]:
    """The newest attempt of each guid with no 2xx attempt that ``seen(guid)`` denies."""
    ok: set[str] = set()
    newest: dict[str, dict[str, Any]] = {}
    for d in deliveries:
        guid = d.get("guid")
        if not isinstance(guid, str):
            continue
        code = d.get("status_code")
        if isinstance(code, int) and 200 <= code < 300:
            ok.add(guid)
        elif guid not in newest or _time(d.get("delivered_at")) > _time(newest[guid].get("delivered_at")):
            newest[guid] = d
    return [d for g, d in newest.items() if g not in ok and not seen(g)]


def redeliver_failed(gh, store, lookback: float) -> dict[str, int]:
    deliveries = list_deliveries(gh, time.time() - lookback)
    todo = failed_deliveries(deliveries, store.delivery_seen)
    asked = 0
    for d in todo:
        url = gh._build_url("app", "hook", "deliveries", str(d["id"]), "attempts")
        response = gh._post(url)
        if response.status_code == 202:
            asked += 1
        else:
            log.warning("redelivery of %s (%s) refused: %s", d.get("guid"), d.get("event"), response.status_code)
    return {"listed": len(deliveries), "failed": len(todo), "redelivered": asked}
