"""Settings and clients for one command: the function app's settings (Settings.from_env), read from
the environment and optionally a local.settings.json, and the clients built from them.

The CLI never creates a table (an operator with a read-only data role can run every read, and a
mistyped TABLE_PREFIX must not leave tables behind): a missing one is named, exit 4. It fails fast
when storage cannot be reached: a CLI should say so in seconds, not retry for a minute.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.errors import CONFIG, NOT_FOUND, USAGE, CliError
from shared.settings import SERVICE_BUS_CONNECTION, TABLES_CONNECTION, Settings, SettingsError

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

    from shared.adapters.bookkeeping import Bookkeeping
    from shared.adapters.store import DeviceStore
    from shared.runtime import Runtime

# Commands that never send the clientState to anyone still go through Settings.from_env, which
# requires GRAPH_CLIENT_STATE: they get this stand-in, so an operator reading the fleet does not
# need the webhook's secret.
UNUSED_CLIENT_STATE = "devicemon-cli-client-state-unused"
# Fail within seconds on a closed port or a wrong host; still ride out one transient error.
TABLES_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_connect": 2,
    "retry_backoff_factor": 0.5,
    "connection_timeout": 10,
    "read_timeout": 60,
}


def settings_values(path: str) -> dict[str, str]:
    """The "Values" of a local.settings.json (Azure Functions Core Tools' format)."""
    file = Path(path)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"settings file {path} does not exist", USAGE) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CliError(f"settings file {path} is not readable JSON: {exc}", CONFIG) from None
    values = document.get("Values") if isinstance(document, dict) else None
    if not isinstance(values, dict):
        raise CliError(f'settings file {path} has no "Values" object', CONFIG)
    return {str(k): "" if v is None else str(v) for k, v in values.items()}


def merged_env(env: Mapping[str, str], settings_file: str | None) -> dict[str, str]:
    """The file's values under the environment's: an exported variable always wins."""
    values = settings_values(settings_file) if settings_file else {}
    values.update(env)
    return values


def load_settings(env: Mapping[str, str], *, client_state: bool = False) -> Settings:
    if not client_state and not env.get("GRAPH_CLIENT_STATE"):
        env = {**env, "GRAPH_CLIENT_STATE": UNUSED_CLIENT_STATE}
    try:
        return Settings.from_env(env)
    except SettingsError as exc:
        raise CliError(str(exc), CONFIG) from None


def require_tables(settings: Settings) -> None:
    if not (settings.tables_connection_string or settings.tables_endpoint):
        raise CliError(
            "Table storage is not configured: set TablesConnection__tableServiceUri "
            "(e.g. https://<account>.table.core.windows.net, signed in with az login or a "
            "managed identity) or TablesConnection (a connection string, local stack)",
            CONFIG,
        )


def check_tables_connection(settings: Settings) -> None:
    """A malformed setting is a configuration error naming it, not a ValueError from the SDK."""
    if settings.tables_connection_string:
        from azure.data.tables.aio import TableServiceClient

        try:
            client = TableServiceClient.from_connection_string(settings.tables_connection_string)
            # The SDK decodes the key only when it signs the first request (a SAS has none).
            key = getattr(getattr(client.credential, "named_key", None), "key", None)
            if key is not None:
                base64.b64decode(key, validate=True)
        except ValueError as exc:  # binascii.Error is one
            raise CliError(
                f"{TABLES_CONNECTION} is not a valid Table storage connection string ({exc}); "
                "expected AccountName=...;AccountKey=<base64>;TableEndpoint=... or "
                "UseDevelopmentStorage=true",
                CONFIG,
            ) from None
    elif settings.tables_endpoint and not settings.tables_endpoint.startswith("https://"):
        raise CliError(
            f"{TABLES_CONNECTION}__tableServiceUri={settings.tables_endpoint!r} is not an https:// "
            "URL: an Entra token is only sent over HTTPS (locally, use the TablesConnection "
            "connection string)",
            CONFIG,
        )


def check_service_bus_connection(settings: Settings) -> None:
    if settings.service_bus_connection_string:
        from azure.servicebus import parse_connection_string

        try:
            parse_connection_string(settings.service_bus_connection_string)
        except ValueError as exc:
            raise CliError(
                f"{SERVICE_BUS_CONNECTION} is not a valid Service Bus connection string ({exc}); "
                "expected Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...",
                CONFIG,
            ) from None


def require_service_bus(settings: Settings) -> None:
    if not (settings.service_bus_connection_string or settings.service_bus_namespace):
        raise CliError(
            "Service Bus is not configured: set ServiceBusConnection__fullyQualifiedNamespace "
            "(e.g. <namespace>.servicebus.windows.net) or ServiceBusConnection (a connection "
            "string, local stack)",
            CONFIG,
        )


# A key no row has: reading it costs one request and tells a missing table (TableNotFound) from
# a missing row, with nothing more than the read right on that table.
_PROBE_KEY = "devicemon-cli-probe"


class Context:
    """The clients of one command, made on first use and closed together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tables: TableServiceClient | None = None
        self._store: DeviceStore | None = None
        self._books: Bookkeeping | None = None
        self._runtime: Runtime | None = None
        # DefaultAzureCredential opens HTTP sessions of its own, which closing a client leaves
        # open ("Unclosed client session" at exit): the command closes it when it made one.
        self._signed_in = False

    @property
    def tables_key(self) -> str | None:
        """The setting whose account key signs Table requests, when a key does."""
        return TABLES_CONNECTION if self.settings.tables_connection_string else None

    def tables(self) -> TableServiceClient:
        if self._tables is None:
            from azure.data.tables.aio import TableServiceClient

            require_tables(self.settings)
            s = self.settings
            if s.tables_connection_string:
                self._tables = TableServiceClient.from_connection_string(
                    s.tables_connection_string, **TABLES_CLIENT_OPTIONS
                )
            else:
                from shared.adapters.identity import credential

                assert s.tables_endpoint is not None
                self._signed_in = True
                self._tables = TableServiceClient(
                    s.tables_endpoint, credential=credential(s, aio=True), **TABLES_CLIENT_OPTIONS
                )
        return self._tables

    def store(self) -> DeviceStore:
        if self._store is None:
            from shared.adapters.store import DeviceStore

            self._store = DeviceStore(self.tables(), self.settings)
        return self._store

    async def books(self) -> Bookkeeping:
        """DevicemonSync, which the function app creates (locally) or infra does (Azure)."""
        if self._books is None:
            from shared.adapters.bookkeeping import Bookkeeping

            await self.require_table(self.settings.sync_table)
            self._books = Bookkeeping(self.tables(), self.settings.sync_table)
        return self._books

    async def require_table(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import TableErrorCode

        table = self.tables().get_table_client(name)
        try:
            await table.get_entity(_PROBE_KEY, _PROBE_KEY)
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == TableErrorCode.TABLE_NOT_FOUND:
                raise CliError(
                    f"there is no {name} table: the function app has not run in this storage "
                    "account yet (its first sync or subscription upkeep creates it), or "
                    "TABLE_PREFIX is wrong; devicemon's CLI never creates tables",
                    NOT_FOUND,
                ) from None
        finally:
            await table.close()

    def runtime(self) -> Runtime:
        """The function app's Runtime: Graph and Service Bus clients exactly as the app builds."""
        if self._runtime is None:
            from shared.runtime import Runtime

            s = self.settings
            self._signed_in |= bool(s.service_bus_namespace) or s.graph_credential == "default"
            self._runtime = Runtime(s)
        return self._runtime

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
        if self._books is not None:
            await self._books.close()
        if self._runtime is not None:
            await self._runtime.close()
        if self._tables is not None:
            await self._tables.close()
        if self._signed_in:
            from shared.adapters.identity import credential

            await credential(self.settings, aio=True).close()
