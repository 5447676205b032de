"""`python -m sender`."""

import sys

from lull.sender.service import main

sys.exit(main())
