"""`python3 -m upstream_renderer`: the renderer, or `fill-nginx-conf`, from the command line."""

import sys

from upstream_renderer.cli import main

if __name__ == "__main__":
    sys.exit(main())
