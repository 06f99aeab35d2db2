"""devicemon's triggers: the table of contents. Each function delegates to handlers/.

Processor-side handlers are imported inside their functions: the Functions worker imports this
module at cold start, and the webhook must answer Graph in < 3 s without loading msgraph.
"""

import azure.functions as func

from handlers import webhook

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


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
