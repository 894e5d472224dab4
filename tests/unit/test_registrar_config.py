"""Registrar configuration, instance IDs and the advertise-address rules."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess

import pytest

from registrar import config as config_module
from registrar.config import ConfigError, load_config, parse_flag
from registrar.identity import new_instance_id
from registrar.network import default_advertise_address, host_port, is_loopback, parse_consul_addr

ID_FORMAT = re.compile(r"^ner-worker-[a-z0-9-]+-[0-9a-f]{8}$")


class TestInstanceId:
    def test_has_service_host_and_eight_hex_random_suffix(self) -> None:
        assert ID_FORMAT.match(new_instance_id("ner-worker", "box1"))
        assert new_instance_id("ner-worker", "box1").startswith("ner-worker-box1-")

    def test_differs_for_two_processes_on_the_same_host(self) -> None:
        ids = {new_instance_id("ner-worker", "same-host") for _ in range(1000)}
        assert len(ids) == 1000

    def test_differs_across_hosts_and_containers(self) -> None:
        a = new_instance_id("ner-worker", "3f2a9c1d0b7e")
        b = new_instance_id("ner-worker", "8c0d1e2f3a4b")
        assert a.split("-")[2] != b.split("-")[2]

    def test_is_url_safe_whatever_the_hostname(self) -> None:
        instance_id = new_instance_id("ner-worker", "My_Host.example.com")
        assert ID_FORMAT.match(instance_id), instance_id
        assert "my-host" in instance_id

    def test_defaults_to_this_machines_hostname(self) -> None:
        host = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower().split(".")[0]).strip("-")
        assert new_instance_id("ner-worker").startswith(f"ner-worker-{host[:40].rstrip('-')}-")


class TestConsulAddress:
    @pytest.mark.parametrize(
        "value, expected",
        [
            ("127.0.0.1:8500", ("http", "127.0.0.1", 8500)),
            ("consul:8500", ("http", "consul", 8500)),
            ("http://10.0.0.5:8501", ("http", "10.0.0.5", 8501)),
            ("https://consul.internal", ("https", "consul.internal", 8501)),
            ("consul", ("http", "consul", 8500)),
            ("[::1]:8500", ("http", "::1", 8500)),
        ],
    )
    def test_accepts_host_port_and_url_forms(self, value: str, expected: tuple) -> None:
        assert parse_consul_addr(value) == expected

    @pytest.mark.parametrize("value", ["unix:///tmp/consul.sock", "http://consul:8500/v1", ":8500", "consul:notaport"])
    def test_rejects_what_the_client_cannot_use(self, value: str) -> None:
        with pytest.raises(ValueError):
            parse_consul_addr(value)


class TestAdvertiseAddress:
    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.0.0.53"])
    def test_is_loopback_when_consul_is_on_loopback(self, host: str) -> None:
        assert default_advertise_address(host, 8500) == "127.0.0.1"

    def test_is_the_routed_local_address_when_consul_is_remote(self, monkeypatch) -> None:
        monkeypatch.setattr("registrar.network.route_source_address", lambda host, port: "10.1.2.3")
        assert default_advertise_address("10.1.2.50", 8500) == "10.1.2.3"

    def test_never_falls_back_to_loopback_when_consul_is_remote(self, monkeypatch) -> None:
        monkeypatch.setattr("registrar.network.route_source_address", lambda host, port: "127.0.0.1")
        assert default_advertise_address("consul.example", 8500) is None

    def test_is_unknown_rather_than_loopback_when_consul_does_not_resolve(self, monkeypatch) -> None:
        def unresolvable(host: str, port: int) -> str:
            raise socket.gaierror("name does not resolve")

        monkeypatch.setattr("registrar.network.route_source_address", unresolvable)
        assert default_advertise_address("consul", 8500) is None

    def test_route_lookup_finds_a_real_non_loopback_source_address(self) -> None:
        """UDP connect to a documentation address: no packet leaves, the kernel picks the source."""
        ip = shutil.which("ip")
        if ip is None:
            pytest.skip("no `ip` command to ask the kernel for the route to 192.0.2.10")
        route = subprocess.run([ip, "-o", "route", "get", "192.0.2.10"], capture_output=True, text=True, timeout=10)
        source = re.search(r"\bsrc (\S+)", route.stdout)
        if route.returncode != 0 or source is None or is_loopback(source.group(1)):
            pytest.skip(f"no non-loopback route to 192.0.2.10 here: {(route.stdout or route.stderr).strip()!r}")
        assert config_module.default_advertise_address("192.0.2.10", 8500) == source.group(1)

    def test_explicit_address_wins(self) -> None:
        config = load_config({"CONSUL_HTTP_ADDR": "127.0.0.1:8500", "NER_ADVERTISE_ADDRESS": "10.9.9.9"})
        assert config.advertise_address == "10.9.9.9"
        assert config.advertise_address_explicit

    def test_ipv6_hosts_are_bracketed_in_urls(self) -> None:
        assert host_port("fd00::5", 8000) == "[fd00::5]:8000"
        assert host_port("10.0.0.1", 8000) == "10.0.0.1:8000"


class TestLoadConfig:
    def test_defaults_match_the_documented_table(self) -> None:
        config = load_config({})
        assert (config.consul_scheme, config.consul_host, config.consul_port) == ("http", "127.0.0.1", 8500)
        assert config.register is True
        assert config.service_name == "ner-worker"
        assert config.advertise_address == "127.0.0.1"
        assert config.advertise_port is None
        assert (config.check_interval, config.check_timeout, config.check_failures) == ("500ms", "2s", 2)
        assert config.deregister_after == "1m"
        assert (config.drain_seconds, config.resync_seconds) == (3.0, 2.0)
        assert config.token == ""

    def test_reads_every_variable(self) -> None:
        config = load_config(
            {
                "CONSUL_HTTP_ADDR": "https://127.0.0.1:8501",
                "CONSUL_HTTP_TOKEN": "secret",
                "NER_REGISTER": "0",
                "NER_SERVICE_NAME": "ner-canary",
                "NER_ADVERTISE_ADDRESS": "10.0.0.7",
                "NER_ADVERTISE_PORT": "9000",
                "NER_CHECK_INTERVAL": "500ms",
                "NER_CHECK_TIMEOUT": "1",
                "NER_DEREGISTER_AFTER": "5m",
                "NER_CHECK_FAILURES": "3",
                "NER_DRAIN_SECONDS": "1.5",
                "NER_RESYNC_SECONDS": "0.5",
                "NER_MODEL_NAME": "raner-base",
                "NER_MODEL_VERSION": "abc123def456",
            }
        )
        assert config.consul_url == "https://127.0.0.1:8501"
        assert config.token == "secret"
        assert config.register is False
        assert config.service_name == "ner-canary"
        assert (config.advertise_address, config.advertise_port) == ("10.0.0.7", 9000)
        assert (config.check_interval, config.check_timeout, config.deregister_after) == ("500ms", "1s", "5m")
        assert config.check_failures == 3
        assert (config.drain_seconds, config.resync_seconds) == (1.5, 0.5)
        assert (config.model_name, config.model_version) == ("raner-base", "abc123def456")

    def test_model_name_defaults_to_the_model_directory_name_like_the_worker(self) -> None:
        config = load_config({"NER_MODEL_DIR": "/models/raner-tiny-random/"})
        assert config.model_name == "raner-tiny-random"
        assert config.model_version == ""

    @pytest.mark.parametrize(
        "name, value",
        [
            ("NER_CHECK_INTERVAL", "soon"),
            ("NER_ADVERTISE_PORT", "70000"),
            ("NER_REGISTER", "maybe"),
            ("NER_DRAIN_SECONDS", "-1"),
            ("NER_RESYNC_SECONDS", "0"),
            ("CONSUL_HTTP_ADDR", "ftp://x:1"),
            ("NER_SERVICE_NAME", "ner worker"),
        ],
    )
    def test_rejects_unusable_values_at_start(self, name: str, value: str) -> None:
        with pytest.raises(ConfigError, match=name if name != "CONSUL_HTTP_ADDR" else "CONSUL"):
            load_config({name: value})

    def test_reads_nothing_at_import_time(self, monkeypatch) -> None:
        monkeypatch.setenv("NER_SERVICE_NAME", "from-environment")
        assert load_config().service_name == "from-environment"
        assert load_config({}).service_name == "ner-worker"

    @pytest.mark.parametrize(
        "raw, expected",
        [
            ("", None),
            ("  ", None),
            ("1", True),
            (" Yes", True),
            ("on", True),
            ("0", False),
            ("FALSE", False),
            ("off", False),
        ],
    )
    def test_on_off_values_read_the_same_for_every_component(self, raw: str, expected: bool | None) -> None:
        assert parse_flag("NER_X", raw) is expected

    def test_an_on_off_value_that_is_neither_names_its_variable(self) -> None:
        with pytest.raises(ValueError, match="NER_X='maybe'"):
            parse_flag("NER_X", "maybe")

    def test_is_frozen(self) -> None:
        config = load_config({})
        with pytest.raises(AttributeError):
            config.service_name = "other"  # type: ignore[misc]
