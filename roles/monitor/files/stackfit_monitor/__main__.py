"""`python -m stackfit_monitor ...`: what the launcher bin/stackfit-monitor runs."""
import sys

from .cli import main

sys.exit(main())
