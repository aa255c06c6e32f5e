"""
The one hardened XML parser used for every SAML document.

lxml is configured to load no DTD, resolve no entity, touch no network and
keep libxml2's own size limits; on top of that, any DOCTYPE is refused before
parsing (so a billion-laughs document costs a regular-expression match, not
an expansion) and again after it (for encodings the scan cannot read), and
the element depth is bounded.
"""

from __future__ import annotations

import binascii
import codecs
import re
import threading
from typing import Final

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.sso.errors import SAMLParseError, SAMLUnsafeXMLError

with needs_extra("saml", "SAML single sign-on"):
    from lxml import etree

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "check_depth",
    "decode_message",
    "local_name",
    "parse_xml",
    "text_of",
]

#: Largest document accepted, in bytes of XML (after base64 decoding).
DEFAULT_MAX_SIZE: Final = 512 * 1024
#: Deepest element nesting accepted; SAML responses stay under 16.
DEFAULT_MAX_DEPTH: Final = 48

# Whitespace, the XML declaration, comments and processing instructions: what
# may come before the root element, other than a DOCTYPE.
_PROLOG = re.compile(rb"(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
_B64_SPACE = b" \t\r\n\x0b\x0c"
_local = threading.local()


def _parser() -> etree.XMLParser:
    # A parser must not be used by two threads at once; one per thread.
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            load_dtd=False,
            dtd_validation=False,
            no_network=True,
            huge_tree=False,
            remove_comments=False,
            remove_pis=False,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def _too_deep(max_depth: int) -> etree.XPath:
    # Compiled XPath objects are kept per thread, like the parser.
    checks: dict[int, etree.XPath] | None = getattr(_local, "depth_checks", None)
    if checks is None:
        checks = _local.depth_checks = {}
    check = checks.get(max_depth)
    if check is None:
        # True when an element exists at depth max_depth + 1; evaluated in C.
        check = etree.XPath("boolean(/" + "/".join(["*"] * (max_depth + 1)) + ")")
        checks[max_depth] = check
    return check


def decode_message(data: bytes | str, *, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """
    Return the XML bytes of *data*: raw XML, or its base64 form (the
    ``SAMLResponse`` form field, line breaks allowed).

    Raises:
        SAMLParseError: *data* is empty, too large, or neither XML nor base64.
    """
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            msg = "the SAML message is not valid text"
            raise SAMLParseError(msg) from exc
    # base64 is 4/3 of the XML plus line breaks: a cheap bound before decoding.
    if len(data) > max_size * 3 // 2 + 1024:
        msg = f"the SAML message is larger than the limit of {max_size} bytes"
        raise SAMLParseError(msg)
    stripped = data.lstrip()
    if stripped.startswith((b"<", codecs.BOM_UTF8)):
        xml = stripped
    elif not stripped:
        msg = "the SAML message is empty"
        raise SAMLParseError(msg)
    else:
        try:
            xml = binascii.a2b_base64(
                data.translate(None, delete=_B64_SPACE), strict_mode=True
            )
        except (binascii.Error, ValueError) as exc:
            msg = "the SAML message is neither XML nor valid base64"
            raise SAMLParseError(msg) from exc
    if len(xml) > max_size:
        msg = f"the SAML message is larger than the limit of {max_size} bytes"
        raise SAMLParseError(msg)
    return xml


def parse_xml(
    xml: bytes,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    what: str = "SAML document",
) -> etree._Element:
    """
    Parse *xml* with the hardened parser and return its root element.

    Raises:
        SAMLUnsafeXMLError: the document has a DOCTYPE (and so possibly
            entity declarations); it is refused before parsing.
        SAMLParseError: too large, too deep, not well-formed, or not text in
            an ASCII-compatible encoding.
    """
    if len(xml) > max_size:
        msg = f"the {what} is larger than the limit of {max_size} bytes"
        raise SAMLParseError(msg)
    body = xml.removeprefix(codecs.BOM_UTF8)
    prolog = _PROLOG.match(body)
    rest = body[prolog.end() if prolog else 0 :]
    if rest.startswith(b"<!"):
        msg = (
            f"the {what} has a DOCTYPE; DTDs and entities are never accepted "
            "(they are how XXE and entity-expansion attacks start)"
        )
        raise SAMLUnsafeXMLError(msg)
    if not rest.startswith(b"<"):
        msg = f"the {what} is not XML in UTF-8 (or another ASCII-compatible encoding)"
        raise SAMLParseError(msg)
    try:
        root = etree.fromstring(xml, _parser())
    except etree.XMLSyntaxError as exc:
        msg = f"the {what} is not well-formed XML: {exc}"
        raise SAMLParseError(msg) from exc
    except ValueError as exc:  # pragma: no cover - lxml's guard for odd inputs
        msg = f"the {what} cannot be parsed: {exc}"
        raise SAMLParseError(msg) from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # pragma: no cover
        # The scan above finds every DOCTYPE of a document lxml can read as
        # ASCII-compatible text; this is the second line of defence.
        msg = f"the {what} has a DOCTYPE; DTDs and entities are never accepted"
        raise SAMLUnsafeXMLError(msg)
    check_depth(root, max_depth, what=what)
    return root


def check_depth(root: etree._Element, max_depth: int, *, what: str) -> None:
    """
    Refuse a tree that nests elements deeper than *max_depth*.

    Raises:
        SAMLParseError: it does.
    """
    if _too_deep(max_depth)(root):
        msg = f"the {what} nests elements deeper than the limit of {max_depth}"
        raise SAMLParseError(msg)


def text_of(element: etree._Element) -> str:
    """
    Return the full text content of *element*: every text node of it and its
    descendants, with comments and processing instructions skipped.

    Reading ``element.text`` instead would stop at the first comment, which
    is how a NameID ``user@example.com<!---->.evil.com`` becomes another user
    (CVE-2017-11427 and relatives); this never truncates.
    """
    return "".join(element.itertext())


def local_name(element: etree._Element) -> str:
    """
    Return the tag of *element* without its namespace (``"Assertion"``).
    """
    return etree.QName(element).localname
