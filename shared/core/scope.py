"""Which devices a policy's device controls apply to: platforms and profile types. Pure.

entra-docs `concept-conditional-access-grant.md`: "Require Microsoft Entra hybrid joined device"
"only supports domain-joined Windows down-level (before Windows 10) and Windows current (Windows
10+) devices"; "Require device to be marked as compliant" "only supports Windows 10+, iOS,
Android, macOS, and Linux Ubuntu devices". devicemon cannot read the policy's platform condition
or device filter, so it assumes the policy targets the platforms its controls support: a hybrid
only (or compliant AND hybrid) policy targets Windows, a policy that accepts compliance targets
the compliant control's platforms. A device outside that scope, or one whose profileType says it
is no user's device (a printer, a secure VM, an IoT device: entra-docs `concept-condition-filters-for-devices.md`
lists RegisteredDevice as the default and SecureVM, Printer, Shared, IoT besides), is not judged.
"""

from __future__ import annotations

from enum import StrEnum

from shared.core.models import DeviceSnapshot, Policy


class Platform(StrEnum):
    WINDOWS = "windows"
    IOS = "ios"
    MACOS = "macos"
    ANDROID = "android"
    LINUX = "linux"
    OTHER = "other"  # a platform neither control supports (ChromeOS, Windows Phone, ...)
    UNKNOWN = "unknown"  # operatingSystem absent or not recognised: judged, never hidden


# operatingSystem as Entra and Intune write it (lower-cased): "Windows", "iOS", "IPad",
# "MacMDM", "Mac OS X", "AndroidForWork", "Linux", ...
_PREFIXES: tuple[tuple[str, Platform], ...] = (
    ("windows phone", Platform.OTHER),
    ("windowsphone", Platform.OTHER),
    ("windowsmobile", Platform.OTHER),
    ("windows", Platform.WINDOWS),
    ("ios", Platform.IOS),
    ("ipados", Platform.IOS),
    ("ipad", Platform.IOS),
    ("iphone", Platform.IOS),
    ("macos", Platform.MACOS),
    ("mac os", Platform.MACOS),
    ("macmdm", Platform.MACOS),
    ("osx", Platform.MACOS),
    ("android", Platform.ANDROID),
    ("linux", Platform.LINUX),
    ("ubuntu", Platform.LINUX),
    ("chrome", Platform.OTHER),
)
HYBRID_PLATFORMS = frozenset({Platform.WINDOWS})
COMPLIANT_PLATFORMS = frozenset(
    {Platform.WINDOWS, Platform.IOS, Platform.MACOS, Platform.ANDROID, Platform.LINUX}
)
# Profile types that name no user's device (devices.md: "RegisteredDevice (default)"). Shared is
# not one of them: a shared device (frontline shared device mode, shared PCs) is where many users
# sign in, and Conditional Access judges those sign-ins like any other; hiding it would hide the
# device whose loss locks out a whole shift.
UNTARGETED_PROFILES = frozenset({"securevm", "printer", "iot"})


def platform_of(device: DeviceSnapshot) -> Platform:
    name = (device.operating_system or "").strip().lower()
    if not name:
        return Platform.UNKNOWN
    for prefix, platform in _PREFIXES:
        if name.startswith(prefix):
            return platform
    return Platform.UNKNOWN


def windows_major_version(device: DeviceSnapshot) -> int | None:
    """The major version of a Windows device (6 for 8.1 / Server 2012 R2), None otherwise."""
    if platform_of(device) is not Platform.WINDOWS:
        return None
    head = (device.operating_system_version or "").split(".", 1)[0].strip()
    return int(head) if head.isdigit() else None


def down_level_windows(device: DeviceSnapshot) -> bool:
    major = windows_major_version(device)
    return major is not None and major < 10


def policy_platforms(policy: Policy) -> frozenset[Platform]:
    """The platforms a policy of this shape targets (see the module's note)."""
    if policy in (Policy.HYBRID, Policy.COMPLIANT_AND_HYBRID):
        return HYBRID_PLATFORMS
    return COMPLIANT_PLATFORMS


def hybrid_applies(device: DeviceSnapshot) -> bool:
    """Whether the hybrid control can be met by this device at all (Windows only); a device whose
    platform is unknown keeps the benefit of the doubt."""
    return platform_of(device) in (Platform.WINDOWS, Platform.UNKNOWN)


def untargeted_profile(device: DeviceSnapshot) -> str | None:
    """The profileType that puts the device outside every device-based policy, if any."""
    profile = (device.profile_type or "").lower()
    return device.profile_type if profile in UNTARGETED_PROFILES else None


def targeted(device: DeviceSnapshot, policy: Policy) -> bool:
    """Whether the policy's device controls apply to the device (the module's note)."""
    if untargeted_profile(device):
        return False
    platform = platform_of(device)
    return platform is Platform.UNKNOWN or platform in policy_platforms(policy)
