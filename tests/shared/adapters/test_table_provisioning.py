"""Who creates devicemon's tables (issue 18 item 6): the app with a connection string (Azurite),
infra in Azure, where the identity's table-scoped role cannot create one.

The decision is pure (a client's credential, no request); one test reads Azurite's answer for a
missing table, so the message an operator gets in Azure is the one tested here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from azure.core.credentials import AccessToken, AzureNamedKeyCredential, AzureSasCredential
from azure.data.tables.aio import TableClient, TableServiceClient

from local import stack as local_stack
from shared.adapters.store import DeviceStore, make_service
from shared.adapters.table_adapter import TableAdapter, TableMissing, creates_tables, ensure_tables
from shared.settings import Settings
from tests.conftest import unique

AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
ENDPOINT = "https://stdevicemon.table.core.windows.net"


class FakeTokenCredential:
    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise AssertionError("deciding must not ask for a token")


def settings(**overrides: Any) -> Settings:
    return Settings(client_state="x" * 32, allowed_tenant_ids=frozenset({"t"}), **overrides)


# --- the decision, pure --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("credential", "creates"),
    [
        (AzureNamedKeyCredential("devstoreaccount1", "a2V5"), True),  # connection string: Azurite
        (AzureSasCredential("sv=2024-08-04&sig=x"), True),  # a SAS connection string
        (FakeTokenCredential(), False),  # Entra token: managed identity, DefaultAzureCredential
    ],
    ids=["account-key", "sas", "token"],
)
def test_only_a_key_or_sas_connection_creates_tables(credential: object, creates: bool) -> None:
    assert creates_tables(credential) is creates


async def test_the_settings_decide_through_the_client_make_service_builds() -> None:
    """Built, not used: no request leaves the process."""
    cases = {
        "connection string (local)": (settings(tables_connection_string=AZURITE), True),
        "identity (Azure)": (settings(tables_endpoint=ENDPOINT), False),
        # make_service prefers the connection string, and so does the decision.
        "both": (settings(tables_connection_string=AZURITE, tables_endpoint=ENDPOINT), True),
    }
    for case, (config, creates) in cases.items():
        service = make_service(config)
        try:
            assert creates_tables(service.credential) is creates, case
        finally:
            await service.close()


class FakeService:
    """Records what ensure_tables asks of the Table service; never reached over the network."""

    def __init__(self, credential: object) -> None:
        self.credential = credential
        self.created: list[str] = []
        self.tables: dict[str, FakeTable] = {}

    def get_table_client(self, name: str) -> FakeTable:
        return self.tables.setdefault(name, FakeTable(name))

    async def create_table_if_not_exists(self, name: str) -> None:
        self.created.append(name)


class FakeTable:
    def __init__(self, name: str, *, exists: bool = True) -> None:
        self.table_name = name
        self.probed = 0
        self._exists = exists

    async def get_entity(self, partition_key: str, row_key: str) -> dict[str, str]:
        from azure.core.exceptions import ResourceNotFoundError

        self.probed += 1
        error = ResourceNotFoundError("not found")
        error.error_code = "ResourceNotFound" if self._exists else "TableNotFound"  # type: ignore[attr-defined]
        raise error


async def test_with_a_key_the_tables_are_created() -> None:
    service = FakeService(AzureNamedKeyCredential("devstoreaccount1", "a2V5"))
    tables = [FakeTable("DeviceState"), FakeTable("DeviceHistory")]
    await ensure_tables(cast(TableServiceClient, service), cast(list[TableClient], tables))
    assert service.created == ["DeviceState", "DeviceHistory"]
    assert [t.probed for t in tables] == [0, 0]


async def test_with_an_identity_no_table_is_created_only_checked() -> None:
    service = FakeService(FakeTokenCredential())
    tables = [FakeTable("DeviceState"), FakeTable("DeviceHistory")]
    await ensure_tables(cast(TableServiceClient, service), cast(list[TableClient], tables))
    assert service.created == []
    assert [t.probed for t in tables] == [1, 1]


async def test_with_an_identity_a_missing_table_is_named_with_the_fix() -> None:
    service = FakeService(FakeTokenCredential())
    tables = [FakeTable("DeviceState"), FakeTable("PendingAlerts", exists=False)]
    with pytest.raises(TableMissing) as raised:
        await ensure_tables(cast(TableServiceClient, service), cast(list[TableClient], tables))
    assert raised.value.table_name == "PendingAlerts"
    message = str(raised.value)
    for needle in ("'PendingAlerts'", "does not create tables", "storage.bicep", "azd provision"):
        assert needle in message
    assert service.created == []


async def test_the_store_and_every_table_adapter_go_through_the_same_decision() -> None:
    """One place: DeviceStore.ensure_tables and TableAdapter.ensure_table (the base of
    Bookkeeping, PendingAlerts, FailureLog, TeamsStore, RemediationLog) both defer to it."""
    for credential, created, probed in (
        (FakeTokenCredential(), [], ["DevicemonSync", "t1DeviceState", "t1DeviceHistory"]),
        (
            AzureNamedKeyCredential("devstoreaccount1", "a2V5"),
            ["DevicemonSync", "t1DeviceState", "t1DeviceHistory"],
            [],
        ),
    ):
        service = FakeService(credential)
        await TableAdapter(cast(TableServiceClient, service), "DevicemonSync").ensure_table()
        store = DeviceStore(cast(TableServiceClient, service), settings(table_prefix="t1"))
        await store.ensure_tables()
        assert service.created == created
        assert [name for name, table in service.tables.items() if table.probed] == probed


# --- the probe against a real Table service (Azurite) --------------------------------------------


@pytest.fixture
async def azurite(stack: local_stack.Stack) -> AsyncIterator[TableServiceClient]:
    async with TableServiceClient.from_connection_string(stack.tables_connection) as service:
        yield service


async def test_the_probe_tells_a_missing_table_from_an_existing_one(
    azurite: TableServiceClient,
) -> None:
    from shared.adapters.table_adapter import _check_exists

    present, absent = unique("probe"), unique("probe")
    await azurite.create_table(present)
    try:
        async with azurite.get_table_client(present) as table:
            await _check_exists(table)  # exists, no row with the probe key: fine
        async with azurite.get_table_client(absent) as table:
            with pytest.raises(TableMissing, match=absent):
                await _check_exists(table)
    finally:
        await azurite.delete_table(present)
