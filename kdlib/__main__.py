"""`python -m kdlib`: the same command line as `kdlib`."""

import sys

from kdlib.cli import main

sys.exit(main())
