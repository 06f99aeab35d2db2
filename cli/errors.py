"""Exit codes scripts can rely on (docs/cli.md), and how failures map onto them."""

from __future__ import annotations

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.settings import SettingsError

OK = 0
FAILED = 1  # the operation ran and failed (sync failed, Graph refused, webhook answered 4xx/5xx)
USAGE = 2  # bad arguments, or an input file that cannot be read or is not what was expected
CONFIG = 3  # a setting is missing or invalid, or the identity is not allowed in
NOT_FOUND = 4  # unknown device, or a table devicemon reads does not exist
UNREACHABLE = 5  # Table storage, Service Bus or Graph cannot be reached
AMBIGUOUS = 6  # a device name matches several devices
INELIGIBLE = 10  # `evaluate --exit-code`: the device would be ineligible

EXIT_CODES = {
    OK: "success",
    FAILED: "the operation failed (e.g. the sync failed, Graph refused, the webhook said no)",
    USAGE: "usage error: bad arguments or an unreadable / invalid input file",
    CONFIG: "configuration missing or invalid (the message names the setting), or access denied",
    NOT_FOUND: "not found: unknown device, or no DeviceState / DevicemonSync table",
    UNREACHABLE: "storage or service unreachable (Table storage, Service Bus, Graph)",
    AMBIGUOUS: "several devices match the name: use the object id",
    INELIGIBLE: "evaluate --exit-code: the device is ineligible under the policy",
}


class CliError(Exception):
    """A failure to report in one sentence, with its exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def classify(exc: BaseException, what: str = "a service", *, key: str | None = None) -> CliError:
    """Turn an exception from the SDKs into a message and an exit code.

    `key` names the connection-string setting whose account key signed the request to `what`,
    when one did: then a refusal means a wrong key, not a missing role."""
    if isinstance(exc, CliError):
        return exc
    for cause in _chain(exc):
        if isinstance(cause, SettingsError):
            return CliError(str(cause), CONFIG)
        if isinstance(cause, HttpResponseError) and cause.status_code in (401, 403):
            return _refused(cause, what, key)
        if isinstance(cause, ClientAuthenticationError):
            if key is not None:
                return CliError(
                    f"cannot sign requests to {what} with the account key in {key}: "
                    f"{_first_line(cause)}",
                    CONFIG,
                )
            return CliError(
                f"could not authenticate to {what}: {_first_line(cause)} "
                "(sign in with `az login`, or set AZURE_CLIENT_ID for a managed identity)",
                CONFIG,
            )
        if isinstance(cause, ServiceRequestError | ServiceResponseError | ConnectionError):
            return CliError(f"cannot reach {what}: {_first_line(cause)}", UNREACHABLE)
        service = _unreachable_service(cause)
        if service:
            return CliError(f"cannot reach {service}: {_first_line(cause)}", UNREACHABLE)
        if type(cause).__name__ == "ServiceBusAuthenticationError":
            return CliError(f"Service Bus refused the credentials: {_first_line(cause)}", CONFIG)
    if isinstance(exc, AzureError):
        return CliError(f"{what} failed: {_first_line(exc)}", FAILED)
    return CliError(f"{type(exc).__name__}: {_first_line(exc)}", FAILED)


def _refused(exc: HttpResponseError, what: str, key: str | None) -> CliError:
    """401/403. A request signed with an account key is refused for the key itself (Azure
    Storage: AuthenticationFailed; Azurite: AuthorizationFailure): roles do not apply to keys.
    Only an Entra identity is missing a data role."""
    code = str(getattr(exc, "error_code", "") or "")
    status = f"HTTP {exc.status_code}" + (f" {code}" if code else "")
    if key is not None:
        return CliError(
            f"{what} refused the account key in {key} ({status}): check its AccountName and "
            "AccountKey against the storage account's access keys",
            CONFIG,
        )
    if code in ("AuthenticationFailed", "InvalidAuthenticationInfo"):
        return CliError(
            f"{what} did not accept the sign-in ({status}): sign in again with `az login`, "
            "or check AZURE_CLIENT_ID",
            CONFIG,
        )
    return CliError(
        f"access denied by {what} ({status}): your identity needs a data role on it "
        "(docs/cli.md, 'Permissions')",
        CONFIG,
    )


def _unreachable_service(exc: BaseException) -> str | None:
    """Service Bus (AMQP) and Graph (httpx) connection failures, without importing either SDK."""
    name = type(exc).__name__
    module = type(exc).__module__
    if module.startswith("azure.servicebus") and name in (
        "ServiceBusConnectionError",
        "ServiceBusCommunicationError",
        "OperationTimeoutError",
    ):
        return "Service Bus"
    if module.startswith("httpx") and name in (
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "NetworkError",
    ):
        return "Microsoft Graph"
    return None
