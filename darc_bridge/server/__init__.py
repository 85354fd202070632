"""The OSC daemon: one resident engine, jobs over UDP, a crash-proof journal (docs/daemon.md)."""

from darc_bridge.server.app import DarcServer, serve
from darc_bridge.server.config import ServerConfig

__all__ = ["DarcServer", "ServerConfig", "serve"]
