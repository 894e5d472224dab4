"""What crosses the loopback to and from one TCP port, read from a raw packet socket (needs root or CAP_NET_RAW).

A packet capture in the standard library: no tcpdump on the test machines. Only IPv4 TCP segments
with payload are kept, each once (the loopback shows every packet as sent and as received).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

import pytest

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # the sender's copy; the receiver's copy (PACKET_HOST) is kept
ETH_HEADER = 14


@dataclass(frozen=True)
class Segment:
    src_port: int
    dst_port: int
    payload: bytes


def tcp_segment(frame: bytes) -> Segment | None:
    """The TCP ports and payload of an Ethernet-framed IPv4 packet, or None for anything else."""
    if len(frame) < ETH_HEADER + 20 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[ETH_HEADER:]
    header_len, total_len = (ip[0] & 0x0F) * 4, struct.unpack("!H", ip[2:4])[0]
    if ip[9] != socket.IPPROTO_TCP or len(ip) < header_len + 20:
        return None
    tcp = ip[header_len:total_len]
    src_port, dst_port = struct.unpack("!HH", tcp[:4])
    payload = tcp[(tcp[12] >> 4) * 4 :]
    return Segment(src_port, dst_port, payload) if payload else None


class LoopbackCapture:
    """Segments to or from `port` on lo while the with-block runs (at most max_seconds, then it stops)."""

    def __init__(self, port: int, max_seconds: float = 120.0) -> None:
        self.port = port
        self.max_seconds = max_seconds
        self.segments: list[Segment] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoopbackCapture:
        try:
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            pytest.skip("a loopback capture needs root or CAP_NET_RAW")
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                frame, address = self._sock.recvfrom(65535)
            except socket.timeout:
                continue
            if address[2] == PACKET_OUTGOING:
                continue
            segment = tcp_segment(frame)
            if segment is not None and self.port in (segment.src_port, segment.dst_port):
                self.segments.append(segment)

    def client_streams(self) -> dict[int, bytes]:
        """What each client connection (by its local port) sent to the port, in capture order."""
        streams: dict[int, bytes] = {}
        for segment in self.segments:
            if segment.dst_port == self.port:
                streams[segment.src_port] = streams.get(segment.src_port, b"") + segment.payload
        return streams

    def payloads(self, excluding: int = 0) -> list[bytes]:
        """Every payload, both directions, but those of the connection from local port `excluding`."""
        return [segment.payload for segment in self.segments if excluding not in (segment.src_port, segment.dst_port)]
