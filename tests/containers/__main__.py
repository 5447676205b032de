"""`python -m tests.containers` (make containers)."""

import sys

from tests.containers.run import main

sys.exit(main())
