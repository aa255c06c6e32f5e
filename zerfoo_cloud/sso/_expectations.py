"""
What this service provider expects of every SAML Response it accepts.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Expectations:
    """
    The values a Response and its assertion are checked against.

    Attributes:
        idp_entity_id: the IdP's entity id; every Issuer must equal it.
        sp_entity_id: this SP's entity id, which must be an Audience;
            ``None`` skips the audience check.
        acs_url: this SP's assertion consumer service URL, which the
            Destination and the bearer Recipient must equal; ``None`` skips
            those checks.
        clock_skew: seconds tolerated on both sides of every validity window.
    """

    idp_entity_id: str
    sp_entity_id: str | None
    acs_url: str | None
    clock_skew: float
