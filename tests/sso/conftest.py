"""
Keys of the test IdP, an attacker and the SP: generated once per session.
"""

from __future__ import annotations

import pytest

from tests.sso._idp import NOW, KeyPair, make_keypair


@pytest.fixture(scope="session")
def idp_keys() -> KeyPair:
    """
    The IdP's signing key and certificate (the one the metadata pins).
    """
    return make_keypair("idp.example.test")


@pytest.fixture(scope="session")
def attacker_keys() -> KeyPair:
    """
    A key the SP has never seen, with its own self-signed certificate.
    """
    return make_keypair("idp.example.test")


@pytest.fixture(scope="session")
def sp_keys() -> KeyPair:
    """
    The SP's key and certificate (decryption and AuthnRequest signing).
    """
    return make_keypair("sp.example.test")


@pytest.fixture(scope="session")
def expired_keys() -> KeyPair:
    """
    An IdP key whose certificate expired before the test responses were issued.
    """
    return make_keypair("old.idp.example.test", not_after=NOW - 3600)
