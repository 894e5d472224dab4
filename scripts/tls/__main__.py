"""`python -m scripts.tls ...`: see scripts/tls/cli.py."""

import sys

from scripts.tls.cli import main

sys.exit(main())
