"""`python -m sender`."""

import sys

from sender.service import main

sys.exit(main())
