"""The model that ships with the project: models/darc-mini, used when no checkpoint is named.

`make model` (darc-bridge train recipe --preset mini) writes it, and only once it passes the eval
gate. `DARC_BRIDGE_MODEL` names another folder (an installed package has no models/ folder beside it).
"""

from __future__ import annotations

import os
from pathlib import Path

from darc_bridge.errors import CheckpointError

SHIPPED_NAME = "darc-mini"
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
ENV_VAR = "DARC_BRIDGE_MODEL"


def shipped_dir() -> Path:
    """Where the shipped model lives (whether or not it exists)."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else MODELS_DIR / SHIPPED_NAME


def default_checkpoint() -> str:
    """The shipped checkpoint folder, or a CheckpointError saying how to make one."""
    folder = shipped_dir()
    if not (folder / "darc.json").is_file():
        raise CheckpointError(f"no DARC model at {folder}: train one with `make model` (darc-bridge train recipe "
                              "--preset mini) or pass --checkpoint DIR")
    return str(folder)
