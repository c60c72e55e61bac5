"""Entry script for the cluster launcher: `ray submit CLUSTER.yaml pipelines/cluster/submit_entry.py -- VERB ARGS...`.

`ray submit` copies one Python file to the head node and runs it there, so this file only hands its arguments to
the `hybridmask` command line, which the cluster's setup commands installed on every node. RAY_ADDRESS defaults
to "auto" so that a verb that starts Ray joins the running cluster, and fails if there is none, instead of
quietly starting a one-machine Ray instance on the head.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    os.environ.setdefault("RAY_ADDRESS", "auto")
    from pipelines.cli.main import main as hybridmask

    return hybridmask(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
