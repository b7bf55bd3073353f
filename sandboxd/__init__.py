"""sandboxd: a hardened code-execution service with a safety watchdog for self-play code reasoners."""

__version__ = "0.1.0"
