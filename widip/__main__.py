"""`python -m widip …` is the same as the `widip` command."""

import sys

from widip.cli import main

sys.exit(main())
