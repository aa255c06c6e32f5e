"""
A real OpenID provider for tests: Starlette on uvicorn, in a thread, on
127.0.0.1 and a free port. It auto-approves one configured user.

Use::

    with OIDCTestProvider() as idp:            # starts; stops on exit
        idp.issuer                              # "http://127.0.0.1:<port>"
        idp.client_id, idp.client_secret        # what the relying party uses
        idp.user = TestUser("alice", "alice@example.com", groups=("zc-admins",))
        idp.faults.nonce = "wrong"              # misbehave (see Faults)
        idp.rotate()                            # sign with a new RSA key
        idp.reset()                             # default user, no faults

Endpoints (all JSON but authorize):

- ``GET /.well-known/openid-configuration``: discovery (issuer,
  authorization/token endpoints, ``jwks_uri``, S256).
- ``GET /authorize?response_type=code&client_id&redirect_uri&state&nonce
  &code_challenge&code_challenge_method=S256``: no login page; redirects
  (302) at once to ``redirect_uri?code=...&state=...&iss=...`` for
  `user`. A bad client id or challenge method answers 400.
- ``POST /token`` (form): ``grant_type=authorization_code``, ``code``,
  ``redirect_uri``, ``code_verifier``; the client authenticates with HTTP
  Basic or ``client_secret`` in the form (or not at all when
  ``client_secret`` is ``None``: a public client). Each code works once;
  the verifier must match the challenge (S256). Answers ``access_token``,
  ``id_token`` (signed with the current RSA key, or the EC key when
  ``faults.alg`` is ``ES256``), ``token_type``, ``expires_in``; errors
  as ``{"error": ...}`` with 400 or 401.
- ``GET /jwks``: the public keys (RSA ``rsa-1`` and EC ``ec-1``; after
  `rotate`, also ``rsa-2``...).

For a browser test (Chromium): point the service's ``--oidc`` file at
`issuer` with `client_id` and a secret file holding `client_secret`; the
provider redirects the browser straight back to the service's callback.
`requests` counts the calls each endpoint answered. As a process::

    python -m tests._oidc_provider --groups zc-admins,zc-viewers --sub alice
    # prints one JSON line {"issuer", "client_id", "client_secret"} and
    # serves until it is terminated
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import attrs
import uvicorn
from cryptography.hazmat.primitives import serialization
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route


@attrs.define
class TestUser:
    """
    The user the provider signs in: the ``sub``, ``email`` and ``groups``
    claims of its ID tokens, plus any *claims* (e.g. ``{"hd": ...}``).
    """

    __test__ = False

    sub: str = "alice"
    email: str = "alice@example.com"
    groups: tuple[str, ...] = ("zc-admins",)
    claims: dict[str, Any] = attrs.Factory(dict)


@attrs.define
class Faults:
    """
    Switches that make the provider misbehave (all off by default).

    Attributes:
        issuer: the ``iss`` claim (``None``: the real issuer).
        discovery_issuer: the issuer the discovery document names.
        audience: the ``aud`` claim (``None``: the client id).
        azp: an ``azp`` claim to add.
        nonce: ``"keep"`` (the login's), ``"wrong"`` or ``"missing"``.
        exp, iat, nbf: seconds added to now for those claims (``nbf`` is
            left out while ``None``).
        alg: ``"RS256"``, ``"PS256"``, ``"ES256"``, ``"none"`` (unsigned),
            or ``"HS256-public"`` (HMAC keyed with the RSA public key PEM).
        kid: the header's key id (``None``: the signing key's own).
        tamper: flip a byte of the signature.
        at_hash: ``"keep"``, ``"wrong"`` or ``"missing"``.
        token_delay: seconds the token endpoint waits before answering.
        token_padding: bytes of padding added to the token answer.
        jwks_padding: bytes of padding added to the JWK set.
        check_verifier: refuse a wrong PKCE verifier (turn off to see that
            the relying party itself does not rely on it).
    """

    issuer: str | None = None
    discovery_issuer: str | None = None
    audience: Any = None
    azp: str | None = None
    nonce: str = "keep"
    exp: float = 300
    iat: float = 0
    nbf: float | None = None
    alg: str = "RS256"
    kid: str | None = None
    tamper: bool = False
    at_hash: str = "keep"
    token_delay: float = 0
    token_padding: int = 0
    jwks_padding: int = 0
    check_verifier: bool = True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@attrs.define
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    user: TestUser


class OIDCTestProvider:
    """
    The provider; a context manager that serves it while open.
    """

    __test__ = False

    def __init__(
        self, client_id: str = "zerfoo-console", client_secret: str | None = "s3cret"
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.rsa_keys = [RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})]
        self.ec_key = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
        self.user = TestUser()
        self.faults = Faults()
        self.requests: Counter[str] = Counter()
        self._codes: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- control ------------------------------------------------------------

    def reset(self) -> None:
        """
        The default user, no faults, no request counted.
        """
        self.user = TestUser()
        self.faults = Faults()
        self.requests.clear()

    def rotate(self) -> str:
        """
        Add a new RSA key and sign with it from now on; return its key id.
        """
        kid = f"rsa-{len(self.rsa_keys) + 1}"
        self.rsa_keys.append(RSAKey.generate_key(2048, parameters={"kid": kid}))
        return kid

    def __enter__(self) -> OIDCTestProvider:  # noqa: PYI034 - final in practice
        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
                Route("/jwks", self._jwks),
            ]
        )
        config = uvicorn.Config(
            app, lifespan="off", log_level="critical", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[self._sock])),
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "the test OpenID provider did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.should_exit = True
        self._thread.join(30)
        self._sock.close()

    # -- tokens -------------------------------------------------------------

    def id_token(self, nonce: str | None, access_token: str) -> str:
        """
        An ID token for `user`, shaped by `faults`.
        """
        f = self.faults
        now = time.time()
        claims: dict[str, Any] = {
            "iss": f.issuer if f.issuer is not None else self.issuer,
            "sub": self.user.sub,
            "aud": f.audience if f.audience is not None else self.client_id,
            "exp": int(now + f.exp),
            "iat": int(now + f.iat),
            "email": self.user.email,
            "email_verified": True,
            "groups": list(self.user.groups),
            **self.user.claims,
        }
        if f.nbf is not None:
            claims["nbf"] = int(now + f.nbf)
        if f.azp is not None:
            claims["azp"] = f.azp
        if f.nonce == "keep" and nonce is not None:
            claims["nonce"] = nonce
        elif f.nonce == "wrong":
            claims["nonce"] = "not-the-nonce"
        if f.at_hash != "missing":
            digest = hashlib.sha256(access_token.encode()).digest()[:16]
            claims["at_hash"] = _b64(digest) if f.at_hash == "keep" else _b64(b"x" * 16)
        return self.sign(claims)

    def sign(self, claims: dict[str, Any]) -> str:
        """
        *claims* as a compact JWS, as `faults` says (algorithm, key id,
        tampering).
        """
        f = self.faults
        payload = json.dumps(claims).encode()
        rsa = self.rsa_keys[-1]
        if f.alg in ("none", "HS256-public"):
            alg = "none" if f.alg == "none" else "HS256"
            header = {"alg": alg, "kid": f.kid or rsa.kid}
            head = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}"
            if alg == "none":
                return head + "."
            pem = rsa.get_op_key("verify").public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
            mac = hmac.new(pem, head.encode(), hashlib.sha256).digest()
            return f"{head}.{_b64(mac)}"
        key = self.ec_key if f.alg == "ES256" else rsa
        header = {"alg": f.alg, "kid": f.kid or key.kid, "typ": "JWT"}
        token = jws.serialize_compact(header, payload, key, algorithms=[f.alg])
        if f.tamper:
            head, body, sig = token.split(".")
            raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
            raw[0] ^= 1
            token = f"{head}.{body}.{_b64(bytes(raw))}"
        return token

    # -- endpoints ----------------------------------------------------------

    async def _discovery(self, request: Request) -> Response:
        self.requests["discovery"] += 1
        f = self.faults
        return JSONResponse(
            {
                "issuer": f.discovery_issuer or self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        self.requests["jwks"] += 1
        keys = [k.as_dict(private=False) for k in self.rsa_keys]
        keys.append(self.ec_key.as_dict(private=False))
        body: dict[str, Any] = {"keys": keys}
        if self.faults.jwks_padding:
            body["padding"] = "x" * self.faults.jwks_padding
        return JSONResponse(body)

    async def _authorize(self, request: Request) -> Response:
        self.requests["authorize"] += 1
        q = request.query_params
        if q.get("client_id") != self.client_id or q.get("response_type") != "code":
            return JSONResponse({"error": "unauthorized_client"}, 400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return JSONResponse({"error": "invalid_request"}, 400)
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Grant(
                self.client_id,
                q["redirect_uri"],
                q["code_challenge"],
                q.get("nonce"),
                attrs.evolve(self.user),
            )
        query = urllib.parse.urlencode(
            {"code": code, "state": q.get("state", ""), "iss": self.issuer}
        )
        return RedirectResponse(f"{q['redirect_uri']}?{query}", 302)

    def _client_of(self, request: Request, form: Any) -> str | None:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            raw = base64.b64decode(header[6:]).decode()
            client, _, secret = raw.partition(":")
            client, secret = (
                urllib.parse.unquote_plus(client),
                urllib.parse.unquote_plus(secret),
            )
        else:
            client, secret = form.get("client_id", ""), form.get("client_secret")
        if client != self.client_id:
            return None
        if self.client_secret is None:
            return client if secret is None else None
        if secret is None or not hmac.compare_digest(secret, self.client_secret):
            return None
        return client

    async def _token(self, request: Request) -> Response:
        self.requests["token"] += 1
        f = self.faults
        if f.token_delay:
            await asyncio.sleep(f.token_delay)
        form = await request.form()
        if self._client_of(request, form) is None:
            return JSONResponse({"error": "invalid_client"}, 401)
        with self._lock:
            grant = self._codes.pop(str(form.get("code", "")), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "invalid_grant"}, 400)
        if form.get("redirect_uri") != grant.redirect_uri:
            return JSONResponse({"error": "invalid_grant"}, 400)
        verifier = str(form.get("code_verifier", ""))
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        if f.check_verifier and not hmac.compare_digest(challenge, grant.challenge):
            return JSONResponse({"error": "invalid_grant"}, 400)
        access_token = secrets.token_urlsafe(32)
        saved, self.user = self.user, grant.user
        try:
            id_token = self.id_token(grant.nonce, access_token)
        finally:
            self.user = saved
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }
        if f.token_padding:
            body["padding"] = "x" * f.token_padding
        return JSONResponse(body)


@contextmanager
def oidc_test_provider(**options: Any) -> Iterator[OIDCTestProvider]:
    """
    An `OIDCTestProvider` serving for the block.
    """
    with OIDCTestProvider(**options) as provider:
        yield provider


def main(argv: list[str] | None = None) -> None:
    """
    Serve a provider until terminated; print its issuer and client as one
    JSON line first.
    """
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="A test OpenID provider.")
    parser.add_argument("--client-id", default="zerfoo-console")
    parser.add_argument("--client-secret", default="s3cret")
    parser.add_argument("--sub", default="alice")
    parser.add_argument("--email", default="alice@example.com")
    parser.add_argument("--groups", default="zc-admins")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with OIDCTestProvider(args.client_id, args.client_secret) as provider:
        groups = tuple(g for g in args.groups.split(",") if g)
        provider.user = TestUser(args.sub, args.email, groups)
        info = {"issuer": provider.issuer, "client_id": provider.client_id}
        info["client_secret"] = provider.client_secret or ""
        print(json.dumps(info), flush=True)
        with suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
