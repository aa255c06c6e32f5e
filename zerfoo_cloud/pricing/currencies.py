"""
Currency codes: the ISO 4217 codes of the currencies in circulation.

A price table is in one currency, named by its three-letter code. Codes of
funds (``USN``, ``CLF``, ...), precious metals (``XAU``), the SDR and the
test and "no currency" codes (``XTS``, ``XXX``) are refused: nobody sells
inference for them, and a typo that lands on one should not pass.
"""

from __future__ import annotations

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.pricing._short import short

__all__ = ["CURRENCIES", "check_currency"]

_CODES = """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB
    BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK
    DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL
    HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD
    KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR
    MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
    QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC
    SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES
    VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
"""
#: The ISO 4217 alphabetic codes of the currencies in circulation (the
#: list as amended to 2025: ``HRK``, ``SLL``, ``ZWL`` and ``ANG`` are gone,
#: ``SLE``, ``VED``, ``ZWG`` and ``XCG`` are in).
CURRENCIES = frozenset(_CODES.split())


def check_currency(code: object, *, field: str = "currency") -> str:
    """
    Return *code* if it is the code of a currency in `CURRENCIES`.

    The code must be given in capitals, as ISO 4217 writes it: ``"usd"`` is
    refused rather than guessed at.

    Raises:
        InvalidConfigError: anything else; *field* names the setting.

    .. versionadded:: 0.1.0
    """
    if type(code) is str and code in CURRENCIES:
        return code
    if type(code) is str and code.upper() in CURRENCIES:
        hint = f"; write it in capitals: {code.upper()!r}"
    else:
        hint = "; give an ISO 4217 code such as 'USD' or 'EUR'"
    msg = f"{field}: unknown currency {short(code)}{hint}"
    raise InvalidConfigError(msg, field=field)
