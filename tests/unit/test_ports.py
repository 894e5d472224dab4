"""Ports for test and benchmark clusters: outside the range outgoing connections take theirs from."""

from __future__ import annotations

import socket

from scripts import ports


def test_a_free_port_is_never_in_the_ephemeral_range():
    low, high = ports.ephemeral_range()
    chosen = [ports.free_port() for _ in range(50)]
    assert all(not low <= port <= high for port in chosen)


def test_no_port_is_handed_out_twice_in_one_process():
    chosen = [ports.free_port() for _ in range(200)]
    assert len(set(chosen)) == len(chosen)


def test_a_block_of_worker_ports_does_not_overlap_ports_handed_out_after_it():
    first = ports.free_port_block(ports.WORKER_PORT_BLOCK)
    block = set(range(first, first + ports.WORKER_PORT_BLOCK))
    later = {ports.free_port() for _ in range(200)}
    assert block.isdisjoint(later)


def test_a_port_someone_listens_on_is_not_free():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not ports.port_is_free(sock.getsockname()[1])


def test_the_ephemeral_range_falls_back_to_the_linux_default_when_unreadable(monkeypatch, tmp_path):
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE_FILE", tmp_path / "missing")
    assert ports.ephemeral_range() == (32768, 60999)
