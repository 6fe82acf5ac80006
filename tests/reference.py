"""The gateway reference shipped with the repo (docs/reference/), read by the tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"
COLLECTION = REFERENCE / "kapital-txpg.postman_collection.json"


@dataclass(frozen=True)
class Example:
    """One request of the collection and, if it has one, one example response."""

    folder: str
    name: str
    method: str
    url: str
    body: Any
    response_name: str | None
    response_body: Any


def load_collection() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(COLLECTION.read_text(encoding="utf-8"))
    return data


def examples() -> Iterator[Example]:
    """Every request of the collection, once per example response (or once if it has none)."""
    for folder in load_collection()["item"]:
        for item in folder.get("item", []):
            request = item["request"]
            url = request["url"] if isinstance(request["url"], str) else request["url"]["raw"]
            raw = request.get("body", {}).get("raw") or ""
            body = json.loads(raw) if raw.strip() else None
            responses = [r for r in item.get("response", []) if (r.get("body") or "").strip()]
            if not responses:
                yield Example(
                    folder["name"], item["name"], request["method"], url, body, None, None
                )
            for response in responses:
                yield Example(
                    folder["name"],
                    item["name"],
                    request["method"],
                    url,
                    body,
                    response["name"],
                    json.loads(response["body"]),
                )
