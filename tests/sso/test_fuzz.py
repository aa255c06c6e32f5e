"""
Mutated valid responses: whatever is changed, the provider either rejects
with a `SAMLError` or returns exactly the original identity.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.sso._idp import (
    ACS_URL,
    NOW,
    REQUEST_ID,
    SP_ENTITY,
    KeyPair,
    assertion_of,
    build_response,
    metadata_for,
    sign,
    to_bytes,
)
from zerfoo_cloud.errors import SAMLError
from zerfoo_cloud.sso import SAMLProvider, SSOIdentity

_FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class _ForgetfulCache:
    """
    A replay cache that remembers nothing, so the original may come out again.
    """

    def add(self, key: str, expires_at: float, now: float) -> bool:
        return True

    def close(self) -> None:
        pass


@pytest.fixture(scope="module", params=["assertion", "response", "both"])
def original(request: pytest.FixtureRequest, idp_keys: KeyPair) -> bytes:
    """
    One valid response from the test IdP, signed at the given level.
    """
    root = build_response(attributes={"email": ["a@example.com"], "g": ["x", "y"]})
    if request.param in ("assertion", "both"):
        sign(assertion_of(root), idp_keys)
    if request.param in ("response", "both"):
        sign(root, idp_keys)
    return to_bytes(root)


@pytest.fixture(scope="module")
def provider(idp_keys: KeyPair) -> SAMLProvider:
    """
    A provider that trusts the test IdP and never reports replays.
    """
    return SAMLProvider(
        metadata_for(idp_keys),
        "tenant-1",
        sp_entity_id=SP_ENTITY,
        acs_url=ACS_URL,
        clock=lambda: NOW + 1,
        replay_cache=_ForgetfulCache(),
    )


def _outcome(provider: SAMLProvider, data: bytes) -> SSOIdentity | None:
    try:
        return provider.validate_assertion(data, request_id=REQUEST_ID)
    except SAMLError:
        return None


def _check(provider: SAMLProvider, original: bytes, mutated: bytes) -> None:
    expected = provider.validate_assertion(original, request_id=REQUEST_ID)
    got = _outcome(provider, mutated)
    assert got is None or got == expected


@given(data=st.data())
@_FUZZ
def test_byte_mutations(
    provider: SAMLProvider, original: bytes, data: st.DataObject
) -> None:
    """
    Flipped, deleted, inserted or duplicated bytes never yield another identity.
    """
    size = len(original)
    start = data.draw(st.integers(0, size - 1), label="start")
    end = data.draw(st.integers(start, min(size, start + 64)), label="end")
    kind = data.draw(st.sampled_from(["flip", "delete", "insert", "duplicate"]))
    if kind == "flip":
        bit = data.draw(st.integers(0, 7))
        mutated = bytearray(original)
        mutated[start] ^= 1 << bit
        result = bytes(mutated)
    elif kind == "delete":
        result = original[:start] + original[end:]
    elif kind == "insert":
        junk = data.draw(
            st.binary(min_size=1, max_size=32)
            | st.sampled_from(
                [b"<!---->", b"<x/>", b"&amp;", b"<![CDATA[z]]>", b'"', b"<"]
            )
        )
        result = original[:start] + junk + original[start:]
    else:
        result = original[:end] + original[start:end] + original[end:]
    _check(provider, original, result)


_TEXTS = st.sampled_from(
    ["", " ", "admin@evil.test", "_evil", "#_evil", "2099-01-01T00:00:00Z", "x" * 300]
)


@given(data=st.data())
@_FUZZ
def test_tree_mutations(
    provider: SAMLProvider, original: bytes, data: st.DataObject
) -> None:
    """
    Elements changed, removed, duplicated or moved never yield another identity.
    """
    root = etree.fromstring(original)
    elements = list(root.iter("*"))
    target = elements[data.draw(st.integers(0, len(elements) - 1), label="target")]
    kind = data.draw(
        st.sampled_from(["text", "attribute", "remove", "duplicate", "move", "comment"])
    )
    parent = target.getparent()
    if kind == "text":
        target.text = data.draw(_TEXTS)
    elif kind == "attribute":
        names = [*target.attrib.keys(), "ID", "Version"]
        target.set(data.draw(st.sampled_from(names)), data.draw(_TEXTS))
    elif kind == "remove" and parent is not None:
        parent.remove(target)
    elif kind == "duplicate" and parent is not None:
        target.addnext(copy.deepcopy(target))
    elif kind == "move" and parent is not None:
        others = [
            e
            for e in root.iter("*")
            if target not in e.iterancestors() and e is not target
        ]
        destination = others[data.draw(st.integers(0, len(others) - 1), label="to")]
        destination.append(target)
    else:
        target.insert(0, etree.Comment("c"))
    _check(provider, original, etree.tostring(root))
