"""Drum engines behind one interface: the built-in kit (embedded default) and DARC (a checkpoint)."""

from __future__ import annotations

from typing import Any

from darc_bridge.engines.base import (
    CancelToken,
    Engine,
    GenerationParams,
    GenerationResult,
    ProgressCallback,
    no_progress,
)
from darc_bridge.errors import InputError

ENGINE_NAMES = ("kit", "darc")


def create_engine(name: str = "kit", **options: Any) -> Engine:
    """Build an engine by name. Options go to its constructor (kit_dir for kit; checkpoint, device for darc)."""
    if name == "kit":
        from darc_bridge.engines.kit import KitEngine

        return KitEngine(**options)
    if name == "darc":
        from darc_bridge.engines.darc import DarcEngine

        return DarcEngine(**options)
    raise InputError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINE_NAMES)}")


__all__ = [
    "ENGINE_NAMES",
    "CancelToken",
    "Engine",
    "GenerationParams",
    "GenerationResult",
    "ProgressCallback",
    "create_engine",
    "no_progress",
]
