"""`python -m processor`."""

import sys

from processor.service import main

sys.exit(main())
