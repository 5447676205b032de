"""`python -m ingest`."""

import sys

from ingest.service import main

sys.exit(main())
