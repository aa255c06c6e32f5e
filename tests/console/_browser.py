"""
A client of the console that keeps cookies like a browser (over HTTPS, so
``Secure`` cookies come back), and reads the forms' CSRF tokens.
"""

from __future__ import annotations

import asyncio
import re
from http.cookies import SimpleCookie
from typing import Any

import httpx

from zerfoo_cloud.http.admin import AdminAPI

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """
    The CSRF token of the first form on a page.
    """
    found = _CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found[1]


class Browser:
    """
    Sends requests to *app* in process, keeping the cookies it is given.
    """

    def __init__(
        self,
        app: AdminAPI,
        *,
        base_url: str = "https://console.test",
        client: tuple[str, int] = ("203.0.113.7", 4000),
    ) -> None:
        self.app = app
        self.base_url = base_url
        self.client = client
        self.cookies: dict[str, str] = {}

    def _keep(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """
        Send one request (no redirect followed) and keep its cookies.
        """

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=self.client)
            async with httpx.AsyncClient(
                transport=transport, base_url=self.base_url, cookies=self.cookies
            ) as http:
                return await http.request(method, path, **kwargs)

        response = asyncio.run(go())
        self._keep(response)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """
        GET *path*.
        """
        return self.request("GET", path, **kwargs)

    def post(
        self, path: str, data: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """
        POST the form *data* to *path*.
        """
        return self.request("POST", path, data=data or {}, **kwargs)

    def submit(self, page: str, action: str, data: dict[str, str]) -> httpx.Response:
        """
        Load *page*, then POST *data* with the page's CSRF token to *action*.
        """
        html = self.get(page).text
        return self.post(action, {"csrf": csrf_of(html), **data})
