"""`python -m processor`."""

import sys

from lull.processor.service import main

sys.exit(main())
