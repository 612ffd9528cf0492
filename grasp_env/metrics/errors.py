"""The metrics' own error, apart so that every metrics module can raise it without a cycle."""

from __future__ import annotations

__all__ = ["MetricUnavailable"]


class MetricUnavailable(RuntimeError):
    """A metric whose package or model is not available on this machine."""
