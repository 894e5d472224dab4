"""The gateway's per-client rate limit: settings from NER_GATEWAY_RATE / _BURST, and the nginx snippet.

Standard library only, so the gateway image runs this file as it is (mounted, no package around it):

    python3 ratelimit.py limits --out FILE      # secure-mode defaults unless the variables say otherwise
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

RATE_RE = re.compile(r"^[1-9]\d*r/[sm]$")
NORMAL_RATE, NORMAL_BURST = "1000r/s", 2000
SECURE_RATE, SECURE_BURST = "20r/s", 40


@dataclass(frozen=True)
class RateLimit:
    """Per-client request rate at the gateway; rate None = off."""

    rate: str | None
    burst: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str], secure: bool) -> "RateLimit":
        """NER_GATEWAY_RATE ("20r/s", "600r/m" or "off") and NER_GATEWAY_BURST, per mode defaults."""
        rate = environ.get("NER_GATEWAY_RATE", "").strip() or (SECURE_RATE if secure else NORMAL_RATE)
        burst_text = environ.get("NER_GATEWAY_BURST", "").strip()
        if rate.lower() == "off":
            return cls(None, 0)
        if not RATE_RE.fullmatch(rate):
            raise ValueError(f"NER_GATEWAY_RATE={rate!r}: expected e.g. 20r/s, 600r/m or off")
        if burst_text and not burst_text.isdigit():
            raise ValueError(f"NER_GATEWAY_BURST={burst_text!r}: expected a whole number")
        burst = int(burst_text) if burst_text else (SECURE_BURST if secure else NORMAL_BURST)
        return cls(rate, burst)


def limits_snippet(limit: RateLimit, mode: str) -> str | None:
    """The nginx http-level snippet nginx.conf.tmpl includes from PREFIX/limits.d/; None = off.

    $ner_rate_key (defined in nginx.conf.tmpl) is the client address, empty for the gateway's
    own health URL: nginx does not count requests with an empty key.
    """
    if limit.rate is None:
        return None
    if not RATE_RE.fullmatch(limit.rate) or limit.burst < 0:
        raise ValueError(f"bad rate limit {limit}")
    return (
        f"# Written by scripts/secured/ratelimit.py ({mode} mode); see docs/SECURITY.md.\n"
        f"# Per client address: {limit.rate}, bursts of {limit.burst} answered at once,\n"
        "# beyond that 429 (JSON, Retry-After) until the client slows down.\n"
        f"limit_req_zone $ner_rate_key zone=ner_per_client:10m rate={limit.rate};\n"
        f"limit_req zone=ner_per_client burst={limit.burst} nodelay;\n"
    )


def main(argv: list[str] | None = None) -> int:
    """`limits --out FILE`: the secured gateway's snippet, or no file when the limit is off."""
    parser = argparse.ArgumentParser(description="the gateway's per-client rate-limit snippet")
    sub = parser.add_subparsers(dest="command", required=True)
    limits = sub.add_parser(
        "limits", help="write the snippet (secure defaults) from NER_GATEWAY_RATE / NER_GATEWAY_BURST"
    )
    limits.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        snippet = limits_snippet(RateLimit.from_env(os.environ, secure=True), "secure")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    if snippet is None:
        args.out.unlink(missing_ok=True)
    else:
        args.out.write_text(snippet)
    print(f"gateway rate limit: {snippet.splitlines()[1][2:] if snippet else 'off'}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
