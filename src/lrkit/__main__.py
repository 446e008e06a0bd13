"""``python -m lrkit``: the ``lrkit`` command, for where the script is not on PATH."""

import sys

from lrkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
