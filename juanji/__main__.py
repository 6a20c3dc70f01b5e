"""`python -m juanji` runs the command line."""

import sys

from juanji.cli import main

sys.exit(main())
