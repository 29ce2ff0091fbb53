"""The one wrapper around calls to Label Studio.

Everything in LabelStack that talks to Label Studio (the operator's wiring, the
backend's image downloads and training-data fetches, the local stack) goes
through :class:`LabelStudioClient`. It owns three concerns so that callers do not:

* tokens: a legacy token is sent as ``Token <t>``; a personal access token is a
  JWT *refresh* token that label-studio-sdk exchanges for short-lived access
  tokens. We reuse the SDK's token handling for raw downloads too, because its
  own ``get_local_path`` helper sends the refresh token as the bearer;
* retries with backoff on connection errors and 5xx answers;
* one exception type, :class:`LabelStudioError`, with the status and a reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import requests
from label_studio_sdk.client import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from labelstack_common.errors import LabelStackError
from labelstack_common.retry import RetryPolicy

__all__ = ["LabelStudioClient", "LabelStudioError", "RetryPolicy", "is_jwt"]

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class LabelStudioError(LabelStackError):
    """A call to Label Studio failed; ``status`` is the HTTP status or 0 when unreachable."""

    def __init__(self, what: str, status: int, reason: str) -> None:
        super().__init__(f"{what}: Label Studio answered {status or 'nothing'}: {reason}")
        self.what = what
        self.status = status
        self.reason = reason

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status in RETRY_STATUSES


def _reason(body: Any) -> str:
    if isinstance(body, dict):
        parts = [str(body[key]) for key in ("detail", "error", "message") if body.get(key)]
        # "Validation error" alone says nothing: name the fields too.
        if body.get("validation_errors"):
            parts.append(str(body["validation_errors"]))
        if parts:
            return ": ".join(parts)
    text = str(body)
    return text if len(text) <= 500 else text[:500] + "..."


def _classify(what: str, exc: BaseException) -> LabelStudioError:
    if isinstance(exc, LabelStudioError):
        return exc
    if isinstance(exc, ApiError):
        return LabelStudioError(what, exc.status_code or 0, _reason(exc.body))
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        resp = exc.response
        try:
            body: Any = resp.json()
        except ValueError:
            body = resp.text
        return LabelStudioError(what, resp.status_code, _reason(body))
    if isinstance(exc, httpx.HTTPStatusError):
        return LabelStudioError(what, exc.response.status_code, _reason(exc.response.text))
    return LabelStudioError(what, 0, f"{type(exc).__name__}: {exc}")


def is_jwt(token: str) -> bool:
    """Personal access tokens are JWTs (three dot-separated parts); legacy tokens are 40 hex chars."""
    return token.count(".") == 2


class LabelStudioClient:
    """Authenticated access to one Label Studio instance, with retries."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not url:
            raise ValueError("Label Studio URL is empty")
        if not api_key:
            raise ValueError("Label Studio API key is empty")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._api_key = api_key
        self._sdk: LabelStudio | None = None
        self._session = requests.Session()

    @property
    def sdk(self) -> LabelStudio:
        """The label-studio-sdk client, created lazily (a PAT is validated on creation)."""
        if self._sdk is None:
            try:
                self._sdk = LabelStudio(
                    base_url=self.url, api_key=self._api_key, timeout=self.timeout, max_retries=0
                )
            except Exception as exc:
                raise _classify("connect", exc) from exc
        return self._sdk

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header for raw requests, with a fresh access token for a PAT."""
        try:
            headers = self.sdk._client_wrapper.get_headers()
        except Exception as exc:
            raise _classify("authenticate", exc) from exc
        return {"Authorization": headers["Authorization"]}

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one SDK call with retries; raise :class:`LabelStudioError` on failure."""
        delays = self.retry.delays()
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                err = _classify(what, exc)
                delay = next(delays, None) if err.retryable else None
                if delay is None:
                    raise err from exc
                log.warning("%s; retrying in %.1fs", err, delay)
                time.sleep(delay)

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        what: str | None = None,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """An authenticated raw HTTP request (for files and endpoints the SDK lacks)."""
        url = path_or_url if "://" in path_or_url else f"{self.url}/{path_or_url.lstrip('/')}"
        label = what or f"{method} {path_or_url}"
        extra_headers = kwargs.pop("headers", {})

        def send() -> requests.Response:
            resp = self._session.request(
                method,
                url,
                headers={**self.auth_headers(), **extra_headers},
                stream=stream,
                timeout=timeout or self.timeout,
                **kwargs,
            )
            resp.raise_for_status()
            return resp

        return self.call(label, send)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def is_up(self) -> bool:
        """True when Label Studio answers its health endpoint."""
        try:
            resp = self._session.get(f"{self.url}/health", timeout=2)
        except requests.RequestException:
            return False
        return resp.status_code == 200

    def wait_until_up(self, timeout: float, interval: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_up():
            if time.monotonic() > deadline:
                raise LabelStudioError("health", 0, f"not answering at {self.url} after {timeout:.0f}s")
            time.sleep(interval)

    @contextmanager
    def closing(self) -> Iterator[LabelStudioClient]:
        try:
            yield self
        finally:
            self._session.close()
