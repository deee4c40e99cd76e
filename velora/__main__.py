"""``python -m velora``: the velora command line (see :mod:`velora.cli`)."""

import sys

from velora.cli import main

if __name__ == "__main__":
    sys.exit(main())
