"""``python -m labelstack_backend.server.healthcheck``: the backend image's HEALTHCHECK.

Exits 0 when ``/health`` answers 200 (the model is loaded), 1 otherwise, with the reason
on stderr. Standard library only, so a check never pays for importing torch.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from labelstack_common import contract
from labelstack_common.contract import Env

DEFAULT_TIMEOUT = 3.0


def health_url(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return f"http://127.0.0.1:{env.get(Env.PORT, str(contract.PORT))}{contract.HEALTH_PATH}"


def check(url: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, str]:
    """(healthy, what /health said or why it could not be asked)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (our own loopback URL)
            return response.status == 200, f"{response.status} {response.read(200).decode(errors='replace')}"
    except urllib.error.HTTPError as exc:  # 503 while loading or after a failed load
        return False, f"{exc.code} {exc.read(200).decode(errors='replace')}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {getattr(exc, 'reason', exc)}"


def main() -> int:
    healthy, detail = check(health_url())
    if not healthy:
        print(f"unhealthy: {detail}", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
