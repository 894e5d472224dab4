"""Secured mode: Consul ACLs (default deny, one token per role), gossip encryption, gateway limits.

    ratelimit      the gateway's per-client rate limit (nginx snippet); also runs as a lone file
    secretfiles    0600 secret files in a 0700 directory, and the gossip key among them
    acl_policies   what each role may do in Consul
    acl_client     the ACL calls, through py-consul
    acl_setup      bootstrap once, then one policy and one token per role
    __main__       `python -m scripts.secured gossip-key|init` (compose one-shots, operators)

See docs/SECURITY.md.
"""
