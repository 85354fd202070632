"""Who may talk to the daemon: loopback only by default; network mode needs a shared token.

A DAW and the daemon normally share one machine, so the safe default binds to loopback and needs
no secret. Listening on another address must be asked for (`--allow-network`) and then every
message carries the token; an optional allow-list narrows the client addresses further.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass, field

from darc_bridge.errors import DarcError
from darc_bridge.server.protocol import ProtocolError


class ConfigError(DarcError):
    """A server setting that would be unsafe or cannot work."""

    code = "bad_config"


TOKEN_ENV = "DARC_BRIDGE_TOKEN"


def read_token(token: str | None, token_file: str | None, env: dict[str, str]) -> str | None:
    """The shared secret from --token, --token-file or $DARC_BRIDGE_TOKEN (a file or the
    environment keeps it out of `ps`); a file's trailing newline is dropped."""
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as fh:
                return fh.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {token_file}: {exc.strerror or exc}") from None
    if token is not None:
        return token
    return env.get(TOKEN_ENV) or None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class SecurityPolicy:
    """Checks each message's source address and token before anything else happens."""

    host: str = "127.0.0.1"
    allow_network: bool = False
    token: str | None = None
    allow_clients: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.allow_network:
            raise ConfigError(
                f"listening on {self.host} exposes the daemon to the network: add --allow-network and --token"
            )
        if self.allow_network and not self.token:
            raise ConfigError("--allow-network needs a shared secret: add --token SECRET (clients send it too)")
        if self.token is not None and (len(self.token.strip()) < 8 or self.token != self.token.strip()):
            raise ConfigError("the token must hold at least 8 characters and no leading or trailing spaces")
        try:
            self._networks = [ipaddress.ip_network(a, strict=False) for a in self.allow_clients]
        except ValueError as exc:
            raise ConfigError(f"bad --allow-client address: {exc}") from exc

    def check(self, client_ip: str, token: str | None, job_id: str = "") -> None:
        """Raise ProtocolError('unauthorized') for a source or token that is not allowed."""
        try:
            ip = ipaddress.ip_address(client_ip)
        except ValueError as exc:
            raise ProtocolError("unauthorized", f"unknown client address {client_ip!r}", job_id) from exc
        if not self.allow_network and not ip.is_loopback:
            raise ProtocolError("unauthorized", "this daemon accepts loopback clients only", job_id)
        if self._networks and not ip.is_loopback and not any(ip in n for n in self._networks):
            raise ProtocolError("unauthorized", f"client {client_ip} is not in the allow-list", job_id)
        if self.allow_network:
            expected = (self.token or "").encode()
            if token is None or not hmac.compare_digest(token.encode(), expected):
                raise ProtocolError("unauthorized", "missing or wrong token (end the message with \"token\", SECRET)",
                                    job_id)
