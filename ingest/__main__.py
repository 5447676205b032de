"""`python -m ingest`."""

import sys

from lull.ingest.service import main

sys.exit(main())
