"""The client on Windows: a datagram sent to a closed port makes the next `recvfrom` raise
ConnectionResetError (WinError 10054) there, where Linux raises ConnectionRefusedError. A dead
daemon must look like silence (retries, then a clear no_reply error), never crash the client."""

from __future__ import annotations

import pytest

from darc_bridge.client.client import DarcClient, NoReply


class WindowsSocket:
    """Stands in for the client's UDP socket the way Windows behaves after an ICMP port-unreachable."""

    def __init__(self, real, replies: list[bytes]) -> None:
        self.real = real
        self.replies = replies
        self.sent = []
        self.resets = 0

    def sendto(self, data, address):
        self.sent.append((data, address))

    def settimeout(self, t):
        pass

    def recvfrom(self, size):
        if self.replies:
            return self.replies.pop(0), ("127.0.0.1", 9001)
        self.resets += 1
        if self.resets > 50:
            raise TimeoutError
        raise ConnectionResetError(10054, "An existing connection was forcibly closed by the remote host")

    def close(self):
        self.real.close()


def test_a_reset_from_a_dead_daemon_reads_as_silence():
    client = DarcClient(port=9, timeout=0.05, retries=1)
    client.sock = WindowsSocket(client.sock, [])
    with client:
        assert client.receive(0.05) is None
        with pytest.raises(NoReply):
            client.request("/darc/ping", (client.reply_port,), ("/darc/pong",))
    assert len(client.sock.sent) == 2, "the request was resent once, then given up"


def test_a_reply_after_a_reset_is_still_received():
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder("/darc/pong")
    for a in ("0.1.0", "kit", "cpu"):
        b.add_arg(a)
    pong = b.build().dgram
    client = DarcClient(port=9, timeout=0.5, retries=0)
    sock = WindowsSocket(client.sock, [])
    client.sock = sock
    calls = {"n": 0}
    real_recv = sock.recvfrom

    def recv_reset_then_pong(size):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionResetError(10054, "reset")
        sock.replies.append(pong)
        return real_recv(size)

    sock.recvfrom = recv_reset_then_pong
    with client:
        reply = client.receive(0.5)
    assert reply is not None and reply.address == "/darc/pong"
