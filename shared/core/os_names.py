"""What people call a device's operating system, from what Graph reports. Pure.

Graph gives `operatingSystem` ("Windows") and `operatingSystemVersion` ("10.0.26100.2314"); an
admin says "Windows 11 24H2". Windows 11 still reports 10.0, so the build number is what tells
the product and its release apart. One function for every place a person reads it: the CLI, the
read API's `os`, the HTML report and the Teams cards.
"""

from __future__ import annotations

# Build -> release, from Microsoft's Windows release information pages (learn.microsoft.com,
# windows/release-health: "Windows 10 release information" and "Windows 11 release
# information"). A build not listed (an Insider build, a release newer than this table) is
# still named by its product, without a release.
WINDOWS_10_RELEASES: dict[int, str] = {
    10240: "1507",
    10586: "1511",
    14393: "1607",
    15063: "1703",
    16299: "1709",
    17134: "1803",
    17763: "1809",
    18362: "1903",
    18363: "1909",
    19041: "2004",
    19042: "20H2",
    19043: "21H1",
    19044: "21H2",
    19045: "22H2",
}
WINDOWS_11_RELEASES: dict[int, str] = {
    22000: "21H2",
    22621: "22H2",
    22631: "23H2",
    26100: "24H2",
    26200: "25H2",
}
WINDOWS_11_FIRST_BUILD = 22000
# Windows Server shares the 10.0 version and names releases by year (release-health: "Windows
# Server release information").
WINDOWS_SERVER_RELEASES: dict[int, str] = {
    14393: "2016",
    17763: "2019",
    20348: "2022",
    26100: "2025",
}
LEGACY_WINDOWS: dict[tuple[str, str], str] = {("6", "3"): "8.1", ("6", "2"): "8", ("6", "1"): "7"}
LEGACY_SERVER: dict[tuple[str, str], str] = {
    ("6", "3"): "2012 R2",
    ("6", "2"): "2012",
    ("6", "1"): "2008 R2",
    ("6", "0"): "2008",
}


def _build(parts: list[str]) -> int | None:
    return int(parts[2]) if len(parts) >= 3 and parts[2].isdigit() else None


def _windows(name: str, parts: list[str]) -> str:
    major, minor, build = parts[0], parts[1], _build(parts)
    if name.lower().startswith("windows server"):
        if (major, minor) == ("10", "0"):
            year = WINDOWS_SERVER_RELEASES.get(build) if build is not None else None
            return f"Windows Server {year}" if year else "Windows Server"
        legacy = LEGACY_SERVER.get((major, minor))
        return f"Windows Server {legacy}" if legacy else f"Windows Server {major}.{minor}"
    if (major, minor) == ("10", "0"):
        if build is not None and build >= WINDOWS_11_FIRST_BUILD:
            release = WINDOWS_11_RELEASES.get(build)
            return f"Windows 11 {release}" if release else "Windows 11"
        release = WINDOWS_10_RELEASES.get(build) if build is not None else None
        return f"Windows 10 {release}" if release else "Windows 10"
    legacy = LEGACY_WINDOWS.get((major, minor))
    return f"Windows {legacy}" if legacy else f"Windows {major}.{minor}"


def os_label(operating_system: str | None, version: str | None) -> str:
    """'Windows 11 24H2' for 10.0.26100.x, 'Windows 10 22H2' for 10.0.19045.x, 'Windows 11' for
    a build from 22000 on that the table does not know, 'Windows 8.1' for 6.3, 'Windows Server
    2022' for a server on 10.0.20348; other systems by name and major version as Graph gives
    them ('Android 14', 'iOS 17')."""
    name = (operating_system or "").strip() or "unknown OS"
    parts = (version or "").strip().split(".")
    if name.lower().startswith("windows") and len(parts) >= 2 and parts[0].isdigit():
        return _windows(name, parts)
    head = parts[0] if parts and parts[0] else ""
    return f"{name} {head}".strip()
