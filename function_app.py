"""devicemon's triggers: the table of contents. Each function delegates to handlers/.

Processor-side handlers are imported inside their functions: the Functions worker imports this
module at cold start, and the webhook must answer Graph in < 3 s without loading msgraph.
"""

import azure.functions as func

from handlers import lifecycle, webhook
from shared import runtime, telemetry

telemetry.configure()  # quiets SDK loggers; exports (imports) only if APPLICATIONINSIGHTS_CONNECTION_STRING
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
# Service Bus sender, Graph client and tables are opened in the background at worker start, not
# by the first request (shared/runtime.py, warm_up_soon, says why not the warmup trigger).
runtime.warm_up_soon()


# Graph cannot send a function key header; the clientState check authenticates notifications.
@app.route(route="graph/notifications", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def graph_notifications(req: func.HttpRequest) -> func.HttpResponse:
    return await webhook.notifications(req)


@app.service_bus_queue_trigger(
    arg_name="msg",
    queue_name="%DEVICE_CHANGES_QUEUE%",
    connection="ServiceBusConnection",
    is_sessions_enabled=True,
)
async def process_device_change(msg: func.ServiceBusMessage) -> None:
    from handlers import processor

    await processor.handle(msg)


@app.route(route="graph/lifecycle", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def graph_lifecycle(req: func.HttpRequest) -> func.HttpResponse:
    return await lifecycle.lifecycle(req)


@app.timer_trigger(schedule="%SYNC_SCHEDULE%", arg_name="timer")
async def sync_devices(timer: func.TimerRequest) -> None:
    from handlers import upkeep

    await upkeep.sync_timer(timer)


@app.timer_trigger(schedule="%SUBSCRIPTION_SCHEDULE%", arg_name="timer")
async def maintain_subscription(timer: func.TimerRequest) -> None:
    from handlers import upkeep

    await upkeep.subscription_timer(timer)


@app.timer_trigger(schedule="%SWEEP_SCHEDULE%", arg_name="timer")
async def sweep_pending_alerts(timer: func.TimerRequest) -> None:
    from handlers import upkeep

    await upkeep.sweep_timer(timer)


@app.timer_trigger(schedule="%TENANT_SETTINGS_SCHEDULE%", arg_name="timer")
async def refresh_tenant_settings(timer: func.TimerRequest) -> None:
    from handlers import tenant_settings

    await tenant_settings.tenant_settings_timer(timer)


@app.timer_trigger(schedule="%POLICY_SCHEDULE%", arg_name="timer")
async def refresh_ca_policies(timer: func.TimerRequest) -> None:
    from handlers import policies

    await policies.policy_timer(timer)


@app.timer_trigger(schedule="%DEADLINE_SCHEDULE%", arg_name="timer")
async def run_deadlines(timer: func.TimerRequest) -> None:
    from handlers import deadlines

    await deadlines.deadline_timer(timer)


@app.timer_trigger(schedule="%INTUNE_WATCH_SCHEDULE%", arg_name="timer")
async def watch_intune(timer: func.TimerRequest) -> None:
    from handlers import intune_watch

    await intune_watch.intune_watch_timer(timer)


@app.route(route="health", methods=["GET"])
async def health(req: func.HttpRequest) -> func.HttpResponse:
    from handlers import health

    return await health.health(req)


@app.route(route="devices/{id}", methods=["GET"])
async def get_device(req: func.HttpRequest) -> func.HttpResponse:
    from handlers import read_api

    return await read_api.get_device(req)


@app.route(route="devices", methods=["GET"])
async def list_devices(req: func.HttpRequest) -> func.HttpResponse:
    from handlers import read_api

    return await read_api.list_devices(req)


@app.route(route="ops/sync", methods=["POST"])
async def run_sync_now(req: func.HttpRequest) -> func.HttpResponse:
    from handlers import upkeep

    return await upkeep.queue_command(req, "sync")


@app.route(route="ops/subscription", methods=["POST"])
async def ensure_subscription_now(req: func.HttpRequest) -> func.HttpResponse:
    from handlers import upkeep

    return await upkeep.queue_command(req, "ensure_subscription")


# --- alert consumers ---


@app.service_bus_topic_trigger(
    arg_name="msg",
    topic_name="%DEVICE_ALERTS_TOPIC%",
    subscription_name="teams",
    connection="ServiceBusConnection",
)
async def teams_alert(msg: func.ServiceBusMessage) -> None:
    from handlers import teams_notifier

    await teams_notifier.handle(msg)


@app.service_bus_topic_trigger(
    arg_name="msg",
    topic_name="%DEVICE_ALERTS_TOPIC%",
    subscription_name="remediation",
    connection="ServiceBusConnection",
)
async def remediate_alert(msg: func.ServiceBusMessage) -> None:
    from handlers import remediation

    await remediation.handle(msg)
