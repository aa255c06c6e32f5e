"""
lxml and xmlsec must run on one libxml2: xmlsec works on lxml's trees, and a
mismatch corrupts memory or fails at random.
"""

from __future__ import annotations

import xmlsec
from lxml import etree


def test_lxml_and_xmlsec_link_the_same_libxml2() -> None:
    """
    The libxml2 version lxml runs with is the one xmlsec runs with.
    """
    assert xmlsec.get_libxml_version() == etree.LIBXML_VERSION


def test_both_were_built_against_what_they_run_with() -> None:
    """
    Each library runs the libxml2 version it was compiled against.
    """
    assert etree.LIBXML_COMPILED_VERSION == etree.LIBXML_VERSION
    assert xmlsec.get_libxml_compiled_version() == xmlsec.get_libxml_version()
