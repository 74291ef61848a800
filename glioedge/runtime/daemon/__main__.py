"""``python -m glioedge.runtime.daemon {watch,receive} ...``."""

import sys

from glioedge.runtime.daemon.commands import main

sys.exit(main())
