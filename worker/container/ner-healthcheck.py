#!/usr/bin/env python3
"""Container health check: exit 0 only when the URL answers 200 (no curl in slim images).

An argument without spaces, because some engines split a health check's command on them.
"""

import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]) if len(sys.argv) > 2 else 2.0) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as error:  # noqa: BLE001 - any failure is "unhealthy", with the reason in the log
    print(f"unhealthy: {error}")
    sys.exit(1)
