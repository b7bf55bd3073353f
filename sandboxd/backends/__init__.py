"""Sandbox backends. The core talks to them only through :mod:`sandboxd.backends.base`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandboxd.settings import Settings

    from .base import Backend

# name -> "module:factory"; imported lazily so the core never imports an engine SDK by accident.
BACKENDS: dict[str, str] = {"docker": "sandboxd.backends.docker:DockerBackend"}


def load_backend(settings: Settings) -> Backend:
    module_name, _, attribute = BACKENDS[settings.backend].partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    backend: Backend = factory(settings)
    return backend
