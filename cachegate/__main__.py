"""`python -m cachegate ...`: the `cachegate` command."""
from __future__ import annotations

import sys

from cachegate.cli import main

sys.exit(main())
