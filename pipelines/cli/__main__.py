"""`python -m pipelines.cli VERB ...`: the same as `hybridmask VERB ...`, for uploaded working dirs without the script."""

import sys

from pipelines.cli.main import main

sys.exit(main())
