"""The DiracX REST calls corral makes, over one keep-alive ``httpx.AsyncClient``.

Every call carries the current access token; a 401 refreshes it once (see ``auth``) and
retries; a 401 that survives the refresh is "down: login needed". A server that cannot be
reached or answers 5xx is down too (the monitor retries it with back-off); a timeout or 429 is
transient. Calls are counted by route for ``call_counts``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from corral.backends.dirac import observe
from corral.backends.dirac.auth import LOGIN, Tokens, TokenStore
from corral.errors import BackendError, BackendUnavailable, TransientBackendError


class Refused(BackendError):
    """The server refused a request for good (4xx other than 401/403/429)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class Forbidden(Refused):
    """403: with a user token, one unknown or foreign job id in a batch."""


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:300]
    return str(body)[:300]


def search_time(when: datetime) -> str:
    """A ``LastUpdateTime`` value the server accepts (``...SS.ffffffZ``; ``...SSZ`` is 400)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def kill_stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DiracxClient:
    """One server, one token store, one connection pool."""

    def __init__(
        self, url: str, tokens: TokenStore, *, client_id: str, timeout: float, pool: int = 16
    ) -> None:
        self.url = url.rstrip("/")
        self.tokens = tokens
        self.client_id = client_id
        self.calls: Counter[str] = Counter()
        limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, limits=limits)
        # presigned sandbox URLs are fetched WITHOUT the bearer token, by a client of their own
        self._bare = httpx.AsyncClient(timeout=timeout, limits=limits)

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._bare.aclose()

    # ---- the one place a request is made

    async def _refresh(self, refresh_token: str) -> Tokens:
        self.calls["auth/token"] += 1
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.client_id,
        }
        try:
            response = await self._http.post("/api/auth/token", data=form)
        except httpx.TransportError as exc:
            raise _transport(exc) from exc
        if response.status_code != 200:
            raise BackendUnavailable(f"{LOGIN}: refresh refused: {_detail(response)}")
        data = response.json()
        return Tokens.from_response(data)

    async def request(
        self,
        method: str,
        route: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        counted: str | None = None,
    ) -> httpx.Response:
        self.calls[counted or route] += 1
        for attempt in range(2):
            token = await self.tokens.access(self._refresh)
            headers = {"Authorization": f"Bearer {token}"}
            try:
                response = await self._http.request(
                    method, route, json=json, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                raise _transport(exc) from exc
            if response.status_code == 401 and attempt == 0:
                await self.tokens.refresh(token, self._refresh)
                continue
            break
        status = response.status_code
        if 200 <= status < 300:  # 201 from submit, 206 for a partial search page
            return response
        if status == 401:
            raise BackendUnavailable(LOGIN)
        if status == 403:
            raise Forbidden(status, _detail(response))
        if status == 429 or status == 408:
            raise TransientBackendError(f"DiracX {route}: HTTP {status}")
        if status >= 500:
            raise BackendUnavailable(f"DiracX {route}: HTTP {status}: {_detail(response)}")
        raise Refused(status, _detail(response))

    # ---- jobs

    async def submit(self, jdls: Sequence[str]) -> list[str]:
        response = await self.request("POST", "/api/jobs/jdl", json=list(jdls))
        try:
            return observe.submitted_ids(response.json(), len(jdls))
        except (ValueError, KeyError) as exc:
            raise TransientBackendError(f"DiracX submit: {exc}") from exc

    async def search(
        self,
        search: list[dict[str, Any]],
        columns: Sequence[str],
        per_page: int,
    ) -> tuple[list[dict[str, Any]], datetime | None]:
        """Every row of one search: the first page, then the others the ``Content-Range``
        announces, all at once. Returns the rows and the server's clock (``Date``)."""
        body = {"parameters": list(columns), "search": search}
        first = await self.request(
            "POST", "/api/jobs/search", json=body, params={"per_page": per_page}
        )
        rows: list[dict[str, Any]] = list(first.json())
        span = observe.content_range(first.headers.get("content-range"))
        if first.status_code == 206 and span is not None:
            rest = observe.pages(span[2], per_page)[1:]
            answers = await asyncio.gather(
                *(
                    self.request(
                        "POST",
                        "/api/jobs/search",
                        json=body,
                        params={"per_page": per_page, "page": page},
                    )
                    for page in rest
                )
            )
            for answer in answers:
                rows.extend(answer.json())
        return rows, _server_time(first)

    async def set_status(self, updates: Mapping[str, Mapping[str, Mapping[str, str]]]) -> Any:
        response = await self.request("PATCH", "/api/jobs/status", json=dict(updates))
        return response.json()

    # ---- sandboxes

    async def sandbox_upload(self, checksum: str, data: bytes, fmt: str = "tar.bz2") -> str:
        """Ask for an upload slot for this content; upload only if the server lacks it."""
        body = {"checksum_algorithm": "sha256", "checksum": checksum, "size": len(data)}
        body["format"] = fmt
        response = await self.request("POST", "/api/jobs/sandbox", json=body)
        slot = response.json()
        if slot.get("url"):
            self.calls["sandbox-upload"] += 1
            files = {"file": ("sandbox." + fmt, data)}
            try:
                put = await self._bare.post(slot["url"], data=slot.get("fields") or {}, files=files)
            except httpx.TransportError as exc:
                raise _transport(exc) from exc
            if put.status_code not in (200, 201, 204):
                raise TransientBackendError(f"sandbox upload: HTTP {put.status_code}")
        return str(slot["pfn"])

    async def output_sandbox(self, job_id: str) -> list[str]:
        route = f"/api/jobs/{job_id}/sandbox/output"
        response = await self.request("GET", route, counted="/api/jobs/{id}/sandbox/output")
        return [str(p) for p in response.json()]

    async def download(self, pfn: str) -> bytes:
        """A sandbox's bytes: a presigned URL from the server, fetched without the token."""
        response = await self.request("GET", "/api/jobs/sandbox", params={"pfn": pfn})
        url = response.json()["url"]
        self.calls["sandbox-download"] += 1
        try:
            got = await self._bare.get(url)
        except httpx.TransportError as exc:
            raise _transport(exc) from exc
        if got.status_code != 200:
            raise TransientBackendError(f"sandbox download: HTTP {got.status_code}")
        return got.content


def _transport(exc: httpx.TransportError) -> BackendError:
    if isinstance(exc, httpx.TimeoutException):
        return TransientBackendError(f"DiracX timed out: {exc!r}")
    return BackendUnavailable(f"DiracX unreachable: {exc!r}")


def _server_time(response: httpx.Response) -> datetime | None:
    header = response.headers.get("date")
    if not header:
        return None
    try:
        return parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
