"""`python -m loadtest.reliability`: see loadtest/reliability/runner.py."""
import sys

from loadtest.reliability.runner import main

sys.exit(main())
