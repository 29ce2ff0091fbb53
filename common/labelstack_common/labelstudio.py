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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import requests
from label_studio_sdk.client import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from labelstack_common.errors import LabelStackError
from labelstack_common.retry import RetryPolicy

__all__ = ["LabelStudioClient", "LabelStudioError", "RetryPolicy", "UserSession", "is_jwt"]

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


@dataclass(frozen=True)
class TaskRow:
    """A task as bulk pre-labeling sees it."""

    id: int
    data: dict[str, Any]
    versions: frozenset[str]  # model versions of its predictions

    def as_task(self) -> dict[str, Any]:
        return {"id": self.id, "data": self.data}


@dataclass(frozen=True)
class TaskPage:
    total: int  # tasks in the project
    tasks: list[TaskRow]


def _versions(joined: Any) -> frozenset[str]:
    """Label Studio joins a task's prediction versions with commas (LabelStack's names have none)."""
    return frozenset(v.strip() for v in str(joined or "").split(",") if v.strip())


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

    # -- bulk pre-labeling ---------------------------------------------------------------------
    def label_config(self, project: int) -> str:
        info = self.call(f"get project {project}", self.sdk.projects.get, id=project)
        return str(info.label_config or "")

    def task_pages(self, project: int, page_size: int = 100) -> Iterator[TaskPage]:
        """The project's tasks one page at a time, through label-studio-sdk: each task's id, its
        data as stored (what Label Studio sends to /predict) and the model versions of its
        predictions. Pages are by task id, so predictions written meanwhile do not shift them."""
        what = f"list the tasks of project {project}"
        pager = self.call(
            what,
            self.sdk.tasks.list,
            project=project,
            fields="all",  # predictions_model_versions is empty without it
            include="id,data,predictions_model_versions",
            resolve_uri=False,
            page_size=page_size,
        )
        page: Any = pager
        seen = 0
        while page is not None:
            total = int(getattr(page.response, "total", 0) or 0)
            tasks = [
                TaskRow(
                    int(t.id), dict(t.data or {}), _versions(getattr(t, "predictions_model_versions", ""))
                )
                for t in page.items or []
                if t.id is not None
            ]
            if not tasks:
                return
            yield TaskPage(total, tasks)
            seen += len(page.items or [])
            # The SDK always says there is a next page; Label Studio answers 404 past the last.
            more = page.has_next and len(page.items or []) == page_size and seen < total
            page = self.call(what, page.next_page) if more else None

    def import_predictions(self, project: int, predictions: Sequence[Mapping[str, Any]]) -> int:
        """Write many predictions in one request (``POST /api/projects/{id}/import/predictions``);
        returns how many Label Studio created. Not retried: a retried write that had landed would
        leave duplicates, so a failure goes to the caller, whose next pass sees what was stored."""
        if not predictions:
            return 0
        what = f"import {len(predictions)} predictions into project {project}"
        url = f"{self.url}/api/projects/{project}/import/predictions"
        try:
            resp = self._session.post(
                url, json=list(predictions), headers=self.auth_headers(), timeout=self.timeout
            )
            resp.raise_for_status()
            return int(resp.json().get("created", 0))
        except LabelStudioError:
            raise
        except Exception as exc:
            raise _classify(what, exc) from exc

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

    def invite_token(self) -> str:
        """The organisation's invite token: the one way to sign up while sign-up is closed."""
        return str(self.json("GET", "/api/invite", what="read the invite link")["token"])

    @contextmanager
    def closing(self) -> Iterator[LabelStudioClient]:
        try:
            yield self
        finally:
            self._session.close()


class UserSession:
    """Label Studio as one user sees it: its sign-up and log-in forms, then that user's own API token.

    Label Studio 1.23 has no API that sets a password or issues a token for another user, so an
    account is made the way a person makes one: signing up through the organisation's invite link.
    """

    def __init__(self, url: str, email: str, password: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.email = email
        self._password = password
        self.timeout = timeout
        self._session = requests.Session()

    def _csrf(self) -> str:
        return self._session.cookies.get("csrftoken") or ""

    def _form(self, path: str, data: dict[str, str], what: str) -> requests.Response:
        try:
            self._session.get(f"{self.url}{path}", timeout=self.timeout).raise_for_status()
            return self._session.post(
                f"{self.url}{path}",
                data={**data, "csrfmiddlewaretoken": self._csrf()},
                headers={"Referer": f"{self.url}{path}"},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise _classify(what, exc) from exc

    def log_in(self) -> bool:
        """True when the email and password are right (a redirect); False when the form comes back."""
        what = f"log in as {self.email}"
        resp = self._form("/user/login/", {"email": self.email, "password": self._password}, what)
        if resp.status_code >= 400:
            raise LabelStudioError(what, resp.status_code, resp.text[:200])
        return resp.status_code in (301, 302)

    def sign_up(self, invite_token: str | None) -> bool:
        """True when the account was created; False when the email is taken already."""
        what = f"sign up {self.email}"
        path = "/user/signup/" + (f"?token={invite_token}" if invite_token else "")
        resp = self._form(path, {"email": self.email, "password": self._password}, what)
        if resp.status_code in (301, 302):
            return True
        if resp.status_code == 200 and "already exists" in resp.text:
            return False
        reason = "sign-up refused" if resp.status_code == 403 else "the sign-up form was refused"
        raise LabelStudioError(what, resp.status_code if resp.status_code != 200 else 400, reason)

    def _api(self, method: str, path: str) -> Any:
        what = f"{method} {path} as {self.email}"
        try:
            resp = self._session.request(
                method,
                f"{self.url}{path}",
                headers={"X-CSRFToken": self._csrf(), "Referer": f"{self.url}/"},
                timeout=self.timeout,
            )
            resp.raise_for_status()
            return resp.json()
        except requests.RequestException as exc:
            raise _classify(what, exc) from exc

    def token(self) -> str:
        """This user's legacy API token (needs LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN)."""
        return str(self._api("GET", "/api/current-user/token")["token"])

    def reset_token(self) -> str:
        """A new token for this user; the old one stops working at once."""
        return str(self._api("POST", "/api/current-user/reset-token/")["token"])

    def project_titles(self) -> list[str]:
        """The titles of the projects this user sees."""
        body = self._api("GET", "/api/projects?page_size=1000")
        items = body.get("results", []) if isinstance(body, dict) else body
        return [str(p["title"]) for p in items]

    def close(self) -> None:
        self._session.close()
