"""google-cloud-storage access, emulator-aware."""

from __future__ import annotations

import functools
import os
from urllib.parse import urlparse

from google.cloud import storage


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/key`` -> (bucket, key)."""
    parsed = urlparse(uri)
    if parsed.scheme != "gs" or not parsed.netloc:
        raise ValueError(f"not a gs:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


@functools.lru_cache(maxsize=1)
def client() -> storage.Client:
    """One client per process. With ``STORAGE_EMULATOR_HOST`` set (fake-gcs-server),
    it talks to the emulator anonymously; otherwise it uses Application Default
    Credentials (``GOOGLE_APPLICATION_CREDENTIALS`` or workload identity)."""
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=os.environ.get("GOOGLE_CLOUD_PROJECT", "labelstack"), credentials=AnonymousCredentials()
        )
    return storage.Client()
