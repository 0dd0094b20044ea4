"""The local web service and page for crampqa (``crampqa serve``).

Needs the ``web`` extras (fastapi, uvicorn); import :func:`crampqa.web.app.create_app`.
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    """Import the FastAPI app factory lazily, so ``import crampqa.web`` stays light."""
    if name == "create_app":
        from crampqa.web.app import create_app

        return create_app
    raise AttributeError(name)
