"""A search driver in a process of its own, so a test can kill it (SIGKILL) mid-run and
start it again: ``python drive_search.py ADDRESS CHECKPOINT BUDGET SECONDS``. Prints the
outcome's ``used`` as JSON."""

import json
import sys

from standins import FixedOrder, Slow, ctx

from pytest_aina.changer.executors import RayExecutor
from pytest_aina.changer.search import Checkpoint, run_search
from pytest_aina.changer.settings import Budget


def main(address: str, checkpoint: str, budget: str, seconds: str) -> int:
    with RayExecutor(address, slots=2) as executor:
        out = run_search(
            ctx(),
            [FixedOrder()],
            Slow(float(seconds)),
            Budget(evaluations=int(budget)),
            checkpoint=Checkpoint(checkpoint),
            executor=executor,
        )
    print(json.dumps(out.used), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
