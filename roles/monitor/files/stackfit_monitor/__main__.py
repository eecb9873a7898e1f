"""python -m stackfit_monitor ... (the launcher /opt/stackfit/bin/stackfit-monitor does the same)."""
import sys

from .cli import main

sys.exit(main())
