"""
XML-DSig verification through xmlsec, with keys pinned from metadata only.

A signature is accepted only in the one shape SAML needs: a ``ds:Signature``
that is a direct child of the element it signs, with exactly one Reference
whose URI is ``#`` plus that element's ID, only the enveloped-signature and
exclusive-C14N transforms, and allow-listed digest and signature methods.
Everything else (XPath transforms, HMAC, external URIs, ``ds:Object``,
several references) is refused before xmlsec runs, and xmlsec is restricted
to the same transforms, so the two cannot disagree about what was signed.

``ds:KeyInfo`` is never used to find a key: the keys come from the pinned
certificates, and a certificate in KeyInfo only decides which pinned key is
tried first.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs
from cryptography.hazmat.primitives.serialization import Encoding

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.sso import _ns
from zerfoo_cloud.sso._certs import load_certificate
from zerfoo_cloud.sso._xml import local_name, text_of
from zerfoo_cloud.sso.errors import (
    SAMLAlgorithmError,
    SAMLSignatureError,
    SAMLStructureError,
)

with needs_extra("saml", "SAML single sign-on"):
    import xmlsec

if TYPE_CHECKING:
    from lxml import etree

__all__ = ["SIGNATURE", "PinnedKeys"]

_C = xmlsec.constants
#: xmlsec's transform type is private to its stubs.
_Transform = Any

SIGNATURE: Final = _ns.tag(_ns.DS, "Signature")
_SIGNED_INFO = _ns.tag(_ns.DS, "SignedInfo")
_SIGNATURE_VALUE = _ns.tag(_ns.DS, "SignatureValue")
_KEY_INFO = _ns.tag(_ns.DS, "KeyInfo")
_C14N_METHOD = _ns.tag(_ns.DS, "CanonicalizationMethod")
_SIGNATURE_METHOD = _ns.tag(_ns.DS, "SignatureMethod")
_REFERENCE = _ns.tag(_ns.DS, "Reference")
_TRANSFORMS = _ns.tag(_ns.DS, "Transforms")
_TRANSFORM = _ns.tag(_ns.DS, "Transform")
_DIGEST_METHOD = _ns.tag(_ns.DS, "DigestMethod")
_DIGEST_VALUE = _ns.tag(_ns.DS, "DigestValue")
_X509_CERT = _ns.tag(_ns.DS, "X509Certificate")
_INCLUSIVE_NAMESPACES = _ns.tag(_ns.EC, "InclusiveNamespaces")

# Algorithm URI -> (xmlsec transform, uses SHA-1)
_C14N: Final = {
    t.href: (t, False) for t in (_C.TransformExclC14N, _C.TransformExclC14NWithComments)
}
_REFERENCE_TRANSFORMS: Final = {
    t.href: (t, False)
    for t in (
        _C.TransformEnveloped,
        _C.TransformExclC14N,
        _C.TransformExclC14NWithComments,
    )
}
_SIGNATURE_METHODS: Final = {
    t.href: (t, t in (_C.TransformRsaSha1, _C.TransformEcdsaSha1))
    for t in (
        _C.TransformRsaSha1,
        _C.TransformRsaSha256,
        _C.TransformRsaSha384,
        _C.TransformRsaSha512,
        _C.TransformEcdsaSha1,
        _C.TransformEcdsaSha256,
        _C.TransformEcdsaSha384,
        _C.TransformEcdsaSha512,
    )
}
_DIGEST_METHODS: Final = {
    t.href: (t, t is _C.TransformSha1)
    for t in (
        _C.TransformSha1,
        _C.TransformSha256,
        _C.TransformSha384,
        _C.TransformSha512,
    )
}
_SPACE = re.compile(r"\s+")


@attrs.frozen
class _PinnedKey:
    der: bytes
    key: xmlsec.Key
    not_before: float
    not_after: float


def _only_children(element: etree._Element, allowed: Sequence[str], what: str) -> None:
    for child in element:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions carry no meaning
        if child.tag not in allowed:
            msg = f"{what} has an unexpected child element {child.tag!r}"
            raise SAMLSignatureError(msg)


def _algorithm(
    element: etree._Element | None,
    table: dict[str, tuple[_Transform, bool]],
    what: str,
    *,
    allow_sha1: bool,
) -> _Transform:
    if element is None:
        msg = f"the signature has no {what}"
        raise SAMLSignatureError(msg)
    uri = element.get("Algorithm", "")
    entry = table.get(uri)
    if entry is None:
        msg = f"the {what} {uri!r} is not allowed"
        raise SAMLAlgorithmError(msg, algorithm=uri)
    transform, sha1 = entry
    if sha1 and not allow_sha1:
        msg = (
            f"the {what} {uri!r} uses SHA-1, which is turned off; turn on "
            "allow_sha1 only for an IdP that cannot sign with SHA-256"
        )
        raise SAMLAlgorithmError(msg, algorithm=uri)
    return transform


def _check_c14n_children(element: etree._Element, what: str) -> None:
    _only_children(element, (_INCLUSIVE_NAMESPACES,), what)


class PinnedKeys:
    """
    The IdP's signing keys, loaded once from pinned certificates.
    """

    def __init__(
        self,
        certificates: Sequence[str],
        *,
        allow_sha1: bool = False,
        enforce_cert_validity: bool = False,
    ) -> None:
        keys = []
        for pem in certificates:
            cert = load_certificate(pem)
            try:
                key = xmlsec.Key.from_memory(
                    cert.public_bytes(Encoding.PEM), _C.KeyDataFormatCertPem
                )
            except xmlsec.Error as exc:  # pragma: no cover - cryptography read it
                msg = f"xmlsec cannot load a pinned certificate: {exc}"
                raise SAMLSignatureError(msg) from exc
            keys.append(
                _PinnedKey(
                    der=cert.public_bytes(Encoding.DER),
                    key=key,
                    not_before=cert.not_valid_before_utc.timestamp(),
                    not_after=cert.not_valid_after_utc.timestamp(),
                )
            )
        self._keys = tuple(keys)
        self.allow_sha1 = allow_sha1
        self.enforce_cert_validity = enforce_cert_validity

    def _check_shape(
        self, signature: etree._Element, signed: etree._Element
    ) -> tuple[list[_Transform], list[_Transform]]:
        """
        Refuse every signature that is not the one shape SAML uses; return the
        transforms to enable in xmlsec (signature level, reference level).
        """
        if signature.getparent() is not signed:  # pragma: no cover - callers ensure it
            msg = "the signature is not a direct child of the element it signs"
            raise SAMLSignatureError(msg)
        _only_children(
            signature, (_SIGNED_INFO, _SIGNATURE_VALUE, _KEY_INFO), "ds:Signature"
        )
        signed_info = signature.find(_SIGNED_INFO)
        if signed_info is None or signature.find(_SIGNATURE_VALUE) is None:
            msg = "the signature has no SignedInfo or SignatureValue"
            raise SAMLSignatureError(msg)
        _only_children(
            signed_info,
            (_C14N_METHOD, _SIGNATURE_METHOD, _REFERENCE),
            "ds:SignedInfo",
        )
        sha1 = self.allow_sha1
        c14n_element = signed_info.find(_C14N_METHOD)
        c14n = _algorithm(
            c14n_element, _C14N, "CanonicalizationMethod", allow_sha1=sha1
        )
        assert c14n_element is not None
        _check_c14n_children(c14n_element, "ds:CanonicalizationMethod")
        method = _algorithm(
            signed_info.find(_SIGNATURE_METHOD),
            _SIGNATURE_METHODS,
            "SignatureMethod",
            allow_sha1=sha1,
        )
        references = signed_info.findall(_REFERENCE)
        if len(references) != 1:
            msg = f"the signature has {len(references)} References; exactly one is allowed"
            raise SAMLSignatureError(msg)
        reference = references[0]
        signed_id = signed.get("ID")
        if not signed_id or reference.get("URI") != f"#{signed_id}":
            msg = (
                f"the signature's Reference URI {reference.get('URI')!r} does not "
                f"point at the element it sits in (ID {signed_id!r})"
            )
            raise SAMLSignatureError(msg)
        _only_children(
            reference,
            (_TRANSFORMS, _DIGEST_METHOD, _DIGEST_VALUE),
            "ds:Reference",
        )
        reference_transforms: list[_Transform] = []
        transforms = reference.find(_TRANSFORMS)
        if transforms is not None:
            _only_children(transforms, (_TRANSFORM,), "ds:Transforms")
            for transform in transforms.iterchildren(_TRANSFORM):
                reference_transforms.append(
                    _algorithm(
                        transform, _REFERENCE_TRANSFORMS, "Transform", allow_sha1=sha1
                    )
                )
                _check_c14n_children(transform, "ds:Transform")
        digest = _algorithm(
            reference.find(_DIGEST_METHOD),
            _DIGEST_METHODS,
            "DigestMethod",
            allow_sha1=sha1,
        )
        return [c14n, method], [*reference_transforms, digest]

    def _ordered(self, signature: etree._Element, now: float) -> list[_PinnedKey]:
        keys = list(self._keys)
        if self.enforce_cert_validity:
            keys = [k for k in keys if k.not_before <= now < k.not_after]
            if not keys:
                msg = "no pinned IdP certificate is valid now"
                raise SAMLSignatureError(msg)
        # A certificate in KeyInfo is only a hint of which pinned key to try
        # first; it is never trusted on its own.
        key_info = signature.find(_KEY_INFO)
        if key_info is not None and len(keys) > 1:
            for element in key_info.iter(_X509_CERT):
                try:
                    der = base64.b64decode(_SPACE.sub("", text_of(element)))
                except (binascii.Error, ValueError):
                    continue
                keys.sort(key=lambda k: k.der != der)
                break
        return keys

    def verify(
        self, signature: etree._Element, signed: etree._Element, now: float
    ) -> None:
        """
        Verify *signature*, which must sign *signed* (its parent).

        The document's IDs must already be registered with xmlsec, and be
        unique.

        Raises:
            SAMLAlgorithmError: an algorithm or transform is not allowed.
            SAMLSignatureError: the signature has another shape, or does not
                verify with any pinned key.
        """
        signature_transforms, reference_transforms = self._check_shape(
            signature, signed
        )
        for pinned in self._ordered(signature, now):
            ctx = xmlsec.SignatureContext()
            for transform in signature_transforms:
                ctx.enable_signature_transform(transform)
            for transform in reference_transforms:
                ctx.enable_reference_transform(transform)
            ctx.key = pinned.key
            try:
                ctx.verify(signature)
            except xmlsec.Error:
                continue
            return
        what = local_name(signed)
        msg = (
            f"the signature of the {what} does not verify with any certificate "
            "pinned from the IdP metadata"
        )
        raise SAMLSignatureError(msg)


def register_ids(root: etree._Element) -> dict[str, etree._Element]:
    """
    Check that every ID in the document is unique and register them with
    xmlsec; return the elements by ID.

    ``xml:id`` attributes count too: libxml2 treats them as IDs, so a
    duplicate there could redirect a Reference.

    Raises:
        SAMLStructureError: two elements share an ID.
    """
    by_id: dict[str, etree._Element] = {}
    for element in root.iter("*"):
        for name in ("ID", "{http://www.w3.org/XML/1998/namespace}id"):
            value = element.get(name)
            if value is None:
                continue
            if value in by_id:
                msg = f"the ID {value!r} is used by more than one element"
                raise SAMLStructureError(msg)
            by_id[value] = element
    xmlsec.tree.add_ids(root, ["ID"])
    return by_id
