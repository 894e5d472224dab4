"""scripts/secured/acl_client.py: Consul's answers sorted into retry, refused and failed, through py-consul."""

from __future__ import annotations

import pytest
import requests
from consul.base import Response

from scripts.secured.acl_client import AclClient, AclError, AclNotReady, retry


class CannedHttp:
    """py-consul's transport answering every request with one status and body; records what was asked."""

    def __init__(self, code: int, body: str) -> None:
        self.code, self.body = code, body
        self.asked: list[tuple[str, str, dict]] = []

    def _answer(self, method: str, callback, path: str, headers=None, **_):
        self.asked.append((method, path, headers or {}))
        if self.code == 0:
            raise requests.ConnectionError("refused")
        return callback(Response(self.code, {}, self.body))

    def get(self, callback, path, params=None, headers=None, raw=False):
        return self._answer("GET", callback, path, headers)

    def put(self, callback, path, params=None, data="", headers=None):
        return self._answer("PUT", callback, path, headers)


def client_answering(code: int, body: str) -> tuple[AclClient, CannedHttp]:
    client = AclClient("127.0.0.1:1")
    client.consul.http = http = CannedHttp(code, body)
    return client, http


@pytest.mark.parametrize(
    "code, body",
    [
        (0, ""),
        (500, "The ACL system is currently in legacy mode."),
        (500, "No cluster leader"),
        (401, "ACL support disabled"),
    ],
)
def test_no_answer_no_leader_or_acls_starting_up_mean_retry(code, body):
    client, _ = client_answering(code, body)
    with pytest.raises(AclNotReady):
        client.bootstrap()


def test_bootstrap_after_an_earlier_bootstrap_is_none():
    client, _ = client_answering(403, "Permission denied: ACL bootstrap no longer allowed (reset index: 9)")
    assert client.bootstrap() is None


def test_bootstrap_refused_for_another_reason_is_an_error():
    client, _ = client_answering(403, "Permission denied")
    with pytest.raises(AclError):
        client.bootstrap()


def test_a_token_consul_does_not_know_has_no_record():
    client, http = client_answering(403, "ACL not found")
    assert client.token_self("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0") is None
    assert http.asked == [("GET", "/v1/acl/token/self", {"X-Consul-Token": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"})]


def test_a_refused_management_call_is_an_error():
    client, _ = client_answering(403, "Permission denied")
    with pytest.raises(AclError):
        client.policies("not-management")


def test_the_node_name_is_asked_with_the_management_token():
    client, http = client_answering(200, '{"Config": {"NodeName": "ner-local"}}')
    assert client.node_name("management") == "ner-local"
    assert http.asked == [("GET", "/v1/agent/self", {"X-Consul-Token": "management"})]


def test_retry_gives_up_with_the_last_reason():
    def never_ready():
        raise AclNotReady("no leader")

    with pytest.raises(TimeoutError, match="no leader"):
        retry(never_ready, timeout=0.05, interval=0.01)
