"""Thin client for the sandboxd HTTP API (filled in by the AZR verification work)."""

__all__: list[str] = []
