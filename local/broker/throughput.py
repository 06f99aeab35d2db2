"""``python -m local.broker.throughput [--journal] [--messages N]``: what the journal costs.

Starts a broker subprocess (in memory, or with a journal in a temporary directory), then
measures with the real SDK, as the devicemon code uses it:

- ``send``: sync ``send_messages`` of lists of 100 to a queue;
- ``fan-out``: the same to a topic with three subscriptions (three stored copies each);
- ``receive+complete``: one peek-lock receiver taking up to 100 at a time, completing each.

Run by hand (it takes a few seconds); never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from azure.servicebus import ServiceBusClient, ServiceBusMessage

from local.broker import connection_string
from local.ports import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
BATCH = 100
BODY = b'{"id": "00000000-0000-0000-0000-000000000000", "state": "compliant"}' * 4


def _send(client: ServiceBusClient, name: str, *, topic: bool, count: int) -> float:
    sender = client.get_topic_sender(name) if topic else client.get_queue_sender(name)
    with sender:
        sender.send_messages(ServiceBusMessage(b"warm-up"))  # link set-up is not throughput
        started = time.perf_counter()
        for start in range(0, count, BATCH):
            sender.send_messages(
                [
                    ServiceBusMessage(BODY, message_id=str(uuid.uuid4()))
                    for _ in range(min(BATCH, count - start))
                ]
            )
        return count / (time.perf_counter() - started)


def _receive_complete(client: ServiceBusClient, queue: str, count: int) -> float:
    with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
        done = 0
        started = time.perf_counter()
        while done < count + 1:  # + the warm-up message
            messages = receiver.receive_messages(max_message_count=BATCH, max_wait_time=5)
            if not messages:
                raise RuntimeError(f"stalled after {done} messages")
            for message in messages:
                receiver.complete_message(message)
            done += len(messages)
        return done / (time.perf_counter() - started)


def measure(journal: bool, messages: int) -> dict[str, float]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="broker-throughput-") as tmp:
        args = [sys.executable, "-m", "local.broker", "--port", str(port)]
        if journal:
            args += ["--journal", str(Path(tmp) / "journal.sqlite")]
        proc = subprocess.Popen(args, cwd=ROOT)
        try:
            wait_for_port(port, timeout=15)
            queue = f"throughput-{uuid.uuid4().hex[:8]}"
            # Matches the default config's topic pattern: three subscriptions.
            alerts = f"device-alerts-{uuid.uuid4().hex[:8]}"
            with ServiceBusClient.from_connection_string(connection_string(port)) as client:
                return {
                    "send_msg_per_s": round(_send(client, queue, topic=False, count=messages)),
                    "fanout_msg_per_s": round(_send(client, alerts, topic=True, count=messages)),
                    "receive_complete_msg_per_s": round(_receive_complete(client, queue, messages)),
                }
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.broker.throughput", description=__doc__)
    parser.add_argument("--journal", action="store_true", help="run the broker with a journal")
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args(argv)
    result = {"journal": args.journal, **measure(args.journal, args.messages)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
