"""A backend process that pre-labels one project, for the kill-and-resume test.

``python -m tests.support.prelabel_proc <project> --kill-after N`` builds the real service from
the environment (as a gunicorn worker does), starts pre-labeling, and SIGKILLs itself right after
its N-th bulk write has landed in Label Studio, before it records its progress: the worst moment.
Without ``--kill-after`` it only starts the service, whose start resumes the interrupted run, and
waits for that run to end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from labelstack_backend.server.wsgi import build_service
from labelstack_backend.settings import Settings
from labelstack_common.labelstudio import LabelStudioClient


def main() -> int:
    args = argparse.ArgumentParser()
    args.add_argument("project")
    args.add_argument("--kill-after", type=int, default=0)
    opts = args.parse_args()
    if opts.kill_after:
        real = LabelStudioClient.import_predictions
        writes = [0]

        def import_then_die(
            self: LabelStudioClient, project: int, predictions: Sequence[Mapping[str, Any]]
        ) -> int:
            created = real(self, project, predictions)
            writes[0] += 1
            if writes[0] >= opts.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            return created

        LabelStudioClient.import_predictions = import_then_die  # type: ignore[method-assign]
    service = build_service(Settings.from_env())
    service.start_loading()
    if not service.wait_ready(120):
        print(json.dumps({"error": service.reason}))
        return 1
    assert service.prelabeler is not None
    if opts.kill_after:
        service.prelabel(opts.project)
    progress = service.prelabeler.wait(opts.project, 300)
    print(json.dumps(progress.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
