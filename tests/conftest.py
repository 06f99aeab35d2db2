"""Shared fixtures: the local stack starts once per test run; tests isolate themselves by unique
tenants, queue/topic names and table prefixes instead of restarts."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from local import stack as local_stack
from local.graphsim.admin import SimAdmin
from local.ports import free_port
from shared import retry
from shared.runtime import Runtime
from shared.settings import Settings

retry.set_testing(True)
ARTIFACTS = Path(
    os.environ.get("DEVICEMON_ARTIFACTS", Path(__file__).resolve().parent.parent / ".artifacts")
)
CLIENT_STATE = "test-client-state-\u00e9-secret"


# Under pytest-xdist (`make test` runs two workers) each worker starts its own stack on free
# ports; its logs go to a folder of its own.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


@pytest.fixture(scope="session")
def stack() -> Iterator[local_stack.Stack]:
    with local_stack.start(
        log_dir=ARTIFACTS / f"stack{'-' + _WORKER if _WORKER else ''}"
    ) as running:
        yield running


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def tenant() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def settings(stack: local_stack.Stack, tenant: str) -> Settings:
    return stack.settings(tenant, CLIENT_STATE)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime(settings)
    yield rt
    await rt.close()


@pytest.fixture
def sim(stack: local_stack.Stack, tenant: str) -> Iterator[SimAdmin]:
    with SimAdmin(stack.graph_root, tenant) as admin:
        admin.ensure()
        yield admin


@pytest.fixture
async def unreachable_broker(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime whose Service Bus namespace is a port nobody listens on: every send fails."""
    dead = free_port()
    rt = Runtime(
        replace(
            settings,
            service_bus_connection_string=f"Endpoint=sb://127.0.0.1:{dead};SharedAccessKeyName=x;"
            "SharedAccessKey=y;UseDevelopmentEmulator=true",
        )
    )
    yield rt
    await rt.close()
