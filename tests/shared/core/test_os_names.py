"""The OS as people name it, from Graph's operatingSystem and operatingSystemVersion: pure."""

from __future__ import annotations

import pytest

from shared.core.os_names import (
    WINDOWS_10_RELEASES,
    WINDOWS_11_FIRST_BUILD,
    WINDOWS_11_RELEASES,
    WINDOWS_SERVER_RELEASES,
    os_label,
)


@pytest.mark.parametrize(
    ("system", "version", "label"),
    [
        ("Windows", "10.0.26100.2314", "Windows 11 24H2"),
        ("Windows", "10.0.26200.6584", "Windows 11 25H2"),
        ("Windows", "10.0.22631.4460", "Windows 11 23H2"),
        ("Windows", "10.0.22621.4317", "Windows 11 22H2"),
        ("Windows", "10.0.22000.1", "Windows 11 21H2"),
        ("Windows", "10.0.26120.1", "Windows 11"),  # an Insider build: the product, no release
        ("Windows", "10.0.99999.0", "Windows 11"),
        ("Windows", "10.0.19045.5131", "Windows 10 22H2"),
        ("Windows", "10.0.19043.1165", "Windows 10 21H1"),  # Graph's device-get example
        ("Windows", "10.0.17763.1", "Windows 10 1809"),
        ("Windows", "10.0.19000.1", "Windows 10"),
        ("Windows", "10.0", "Windows 10"),
        ("Windows", "10.0.x", "Windows 10"),
        ("windows", " 10.0.26100.1 ", "Windows 11 24H2"),
        ("Windows", "6.3.9600", "Windows 8.1"),
        ("Windows", "6.2.9200", "Windows 8"),
        ("Windows", "6.1.7601", "Windows 7"),
        ("Windows", "5.1.2600", "Windows 5.1"),
        ("Windows Server", "10.0.20348.2849", "Windows Server 2022"),
        ("Windows Server", "10.0.26100.1", "Windows Server 2025"),
        ("Windows Server", "10.0.17763.1", "Windows Server 2019"),
        ("Windows Server", "10.0.14393.1", "Windows Server 2016"),
        ("Windows Server", "10.0.25398.1", "Windows Server"),
        ("Windows Server", "6.3.9600", "Windows Server 2012 R2"),
        ("Windows Server", "6.0.6002", "Windows Server 2008"),
        ("Windows Server", "5.2.3790", "Windows Server 5.2"),
        ("Android", "14", "Android 14"),
        ("iOS", "17.5.1", "iOS 17"),
        ("macOS", "14.6.1", "macOS 14"),
        ("MacMDM", None, "MacMDM"),
        ("Linux", "", "Linux"),
        (None, None, "unknown OS"),
        ("Windows", "garbage", "Windows garbage"),
        ("Windows", None, "Windows"),
    ],
)
def test_os_label(system: str | None, version: str | None, label: str) -> None:
    assert os_label(system, version) == label


@pytest.mark.parametrize(
    ("build", "release"), [*WINDOWS_10_RELEASES.items(), *WINDOWS_11_RELEASES.items()]
)
def test_every_known_client_build_names_its_product_and_release(build: int, release: str) -> None:
    product = "Windows 11" if build >= WINDOWS_11_FIRST_BUILD else "Windows 10"
    assert os_label("Windows", f"10.0.{build}.1234") == f"{product} {release}"


@pytest.mark.parametrize(("build", "year"), WINDOWS_SERVER_RELEASES.items())
def test_every_known_server_build_names_its_year(build: int, year: str) -> None:
    assert os_label("Windows Server", f"10.0.{build}.1") == f"Windows Server {year}"


def test_releases_are_in_build_order() -> None:
    for table in (WINDOWS_10_RELEASES, WINDOWS_11_RELEASES, WINDOWS_SERVER_RELEASES):
        assert list(table) == sorted(table)
    assert max(WINDOWS_10_RELEASES) < WINDOWS_11_FIRST_BUILD == min(WINDOWS_11_RELEASES)
