"""HTTP helpers shared by the test modules that talk to a real daemon."""

from __future__ import annotations

from typing import Any

import httpx


def posted_results(client: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST ``body`` to ``path``, require a 200, and return the response's ``results`` list."""
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results
