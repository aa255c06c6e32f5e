"""
An OpenID provider's signing keys (its JWK set), fetched and cached; a key
id the cache lacks refetches the set, at most once per interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from zerfoo_cloud.errors import OIDCError

__all__ = ["JWKSCache", "SigningKey"]

SigningKey = RSAKey | ECKey
#: The key type each algorithm family needs.
_KTY = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
_IMPORTERS: dict[str, Any] = {"RSA": RSAKey, "EC": ECKey}
#: Keys in a set are read up to this many; the rest are ignored.
_MAX_KEYS = 100
#: The whole set is refetched when older than this many seconds.
_MAX_AGE = 3600.0


def _public_keys(document: Any) -> list[tuple[str | None, str | None, SigningKey]]:
    """
    The usable public signing keys of a JWK set as ``(kid, alg, key)``:
    RSA and EC keys whose ``use`` is ``sig`` or absent. Symmetric keys,
    private parts and keys that cannot be read are left out.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        msg = "the JWK set is not an object with a list of keys"
        raise OIDCError(msg, code="oidc_discovery")
    keys: list[tuple[str | None, str | None, SigningKey]] = []
    for item in document["keys"][:_MAX_KEYS]:
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            continue
        importer = _IMPORTERS.get(str(item.get("kty")))
        if importer is None:
            continue
        public = {
            k: v for k, v in item.items() if k not in ("d", "p", "q", "dp", "dq", "qi")
        }
        try:
            key = importer.import_key(public)
        except (JoseError, ValueError, TypeError):
            continue
        kid, alg = item.get("kid"), item.get("alg")
        keys.append(
            (
                kid if isinstance(kid, str) else None,
                alg if isinstance(alg, str) else None,
                key,
            )
        )
    return keys


class JWKSCache:
    """
    The provider's keys, fetched by *fetch* (the parsed JWK set) and kept
    for an hour; `key_for` refetches them when asked for a key id they lack,
    at most once per *refresh_interval* seconds.
    """

    def __init__(
        self,
        fetch: Callable[[], Any],
        *,
        clock: Callable[[], float],
        refresh_interval: float,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._refresh_interval = refresh_interval
        self._keys: list[tuple[str | None, str | None, SigningKey]] | None = None
        self._fetched_at = float("-inf")
        self._refetched_at = float("-inf")
        self._lock = threading.Lock()

    def _refresh(self, *, unless_after: float) -> None:
        with self._lock:
            if self._fetched_at > unless_after:
                return  # another thread refreshed it meanwhile
            keys = _public_keys(self._fetch())
            self._keys, self._fetched_at = keys, self._clock()

    def key_for(self, kid: str | None, alg: str) -> SigningKey:
        """
        The key that may have signed a token of *kid* and *alg*: the one of
        that key id (or, without one, the only key of the right type).
        Blocks on the network when the set must be (re)fetched.

        Raises:
            OIDCError: ``oidc_unknown_key`` when none fits, even after a
                refetch; a fetch error.
        """
        now = self._clock()
        seen = self._fetched_at
        if self._keys is None or now - seen >= _MAX_AGE:
            self._refresh(unless_after=seen)
        found = self._match(kid, alg)
        if found is None and now - self._refetched_at >= self._refresh_interval:
            # Rate-limited apart from the hourly fetch: a key that rotated in
            # just after a fetch is still found at once.
            self._refetched_at = now
            self._refresh(unless_after=self._fetched_at)
            found = self._match(kid, alg)
        if found is None:
            shown = "without a key id" if kid is None else f"with key id {kid[:80]!r}"
            msg = f"the ID token is signed {shown}, which is not among the provider's keys"
            raise OIDCError(msg, code="oidc_unknown_key")
        return found

    def _match(self, kid: str | None, alg: str) -> SigningKey | None:
        kty = _KTY.get(alg[:2])
        fitting = [
            key
            for key_id, key_alg, key in self._keys or []
            if key.key_type == kty
            and key_alg in (None, alg)
            and (kid is None or key_id == kid)
        ]
        if len(fitting) == 1 or (kid is not None and fitting):
            return fitting[0]
        return None
