"""IAB TCF v2 consent strings: decode the core segment, and say what it means for our
purposes.

A TC string is base64url segments joined by '.'; the first is the core segment, a bit
field laid out by the IAB's "Consent string and vendor list formats v2" (fields and widths
in `_CORE`, in the order they are written). The other segments (disclosed vendors,
publisher purposes) carry nothing our purposes need and are not read. Pure: tested against
strings that the IAB's own encoder (`@iabtcf/core`) wrote, tests/fixtures/tcf/.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

from tessera.errors import InvalidField

#: Our purposes and the TCF purposes each needs consent for (all of them). TCF purpose 1
#: is storing or reading on the device, which each of ours relies on; 3 and 4 build and
#: use an advertising profile; 5 and 6 a content profile; 7, 8 and 9 measure. E-mail is no
#: TCF purpose: a TC string says nothing about it.
PURPOSE_MAP: dict[str, tuple[int, ...]] = {
    "advertising": (1, 3, 4),
    "personalisation": (1, 5, 6),
    "analytics": (1, 8, 9),
}

#: Longest TC string accepted; real ones are well under 1 KiB, range-encoded ones a few.
MAX_LENGTH = 16 * 1024


@dataclass(frozen=True)
class TCString:
    """The core segment of a TC string."""

    version: int
    created: datetime
    updated: datetime
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    service_specific: bool
    publisher_country: str
    special_features: frozenset[int]
    purposes_consented: frozenset[int]
    purposes_legitimate_interest: frozenset[int]
    vendor_consents: frozenset[int]
    vendor_legitimate_interests: frozenset[int]

    def purposes(self) -> dict[str, bool]:
        """Our purposes as this string answers them (see PURPOSE_MAP); e-mail is absent."""
        return {
            ours: all(number in self.purposes_consented for number in theirs)
            for ours, theirs in PURPOSE_MAP.items()
        }


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.bits = "".join(f"{byte:08b}" for byte in data)
        self.position = 0

    def take(self, width: int) -> int:
        end = self.position + width
        if end > len(self.bits):
            raise ValueError(f"the string ends at bit {len(self.bits)}, a field needs {end}")
        value = int(self.bits[self.position : end], 2) if width else 0
        self.position = end
        return value

    def flags(self, width: int) -> frozenset[int]:
        """A bit field whose bit i (from 1) says yes to number i."""
        value = self.take(width)
        return frozenset(i + 1 for i in range(width) if value >> (width - 1 - i) & 1)

    def letters(self) -> str:
        return chr(ord("A") + self.take(6)) + chr(ord("A") + self.take(6))

    def moment(self) -> datetime:
        return datetime.fromtimestamp(self.take(36) / 10, UTC)

    def vendors(self) -> frozenset[int]:
        """A vendor section: MaxVendorId, then a bit field or a list of ranges."""
        max_vendor = self.take(16)
        if not self.take(1):
            return self.flags(max_vendor)
        found: set[int] = set()
        for _ in range(self.take(12)):
            is_range = self.take(1)
            start = self.take(16)
            end = self.take(16) if is_range else start
            if end < start or end > max_vendor:
                raise ValueError(f"vendor range {start}-{end} outside 1-{max_vendor}")
            found.update(range(start, end + 1))
        return frozenset(found)


def decode(text: str) -> TCString:
    """The core segment of `text`.

    Raises:
        InvalidField: not base64url, not version 2, or cut short.
    """
    text = text.strip()
    if not text or len(text) > MAX_LENGTH:
        raise InvalidField(
            f"a TCF consent string has 1 to {MAX_LENGTH} characters, got {len(text)}",
            field="gdpr_consent",
        )
    core = text.split(".", 1)[0]
    try:
        data = base64.urlsafe_b64decode(core + "=" * (-len(core) % 4))
    except (binascii.Error, ValueError) as e:
        raise InvalidField(
            f"the TCF consent string {text[:40]!r} is not base64url: {e}", field="gdpr_consent"
        ) from e
    bits = _Bits(data)
    try:
        version = bits.take(6)
        if version != 2:
            raise ValueError(f"version {version}; only TCF v2 strings are read")
        created, updated = bits.moment(), bits.moment()
        cmp_id, cmp_version, screen = bits.take(12), bits.take(12), bits.take(6)
        language = bits.letters()
        vendor_list, policy = bits.take(12), bits.take(6)
        service_specific = bool(bits.take(1))
        bits.take(1)  # UseNonStandardTexts
        special = bits.flags(12)
        consented, interests = bits.flags(24), bits.flags(24)
        bits.take(1)  # PurposeOneTreatment
        country = bits.letters()
        vendor_consents = bits.vendors()
        vendor_interests = bits.vendors()
    except ValueError as e:
        raise InvalidField(
            f"the TCF consent string {text[:40]!r} cannot be read: {e}", field="gdpr_consent"
        ) from e
    return TCString(
        version=version,
        created=created,
        updated=updated,
        cmp_id=cmp_id,
        cmp_version=cmp_version,
        consent_screen=screen,
        consent_language=language,
        vendor_list_version=vendor_list,
        policy_version=policy,
        service_specific=service_specific,
        publisher_country=country,
        special_features=special,
        purposes_consented=consented,
        purposes_legitimate_interest=interests,
        vendor_consents=vendor_consents,
        vendor_legitimate_interests=vendor_interests,
    )


def purposes_of(text: str) -> dict[str, bool] | None:
    """Our purposes as the TC string `text` answers them; None when it cannot be read (an
    unreadable string is no consent, and one bad string must not stop a batch)."""
    try:
        return decode(text).purposes()
    except InvalidField:
        return None
