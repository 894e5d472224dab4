"""`python -m registrar`: the operator CLI."""

from registrar.cli import main

raise SystemExit(main())
