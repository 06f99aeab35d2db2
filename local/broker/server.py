"""The event loop: sockets, proton transports, timers and clean shutdown.

proton's own ``Container`` would work, but a small ``selectors`` loop gives direct
control over wake-ups (signals), timer granularity (lock expiry) and output
flushing across connections (a publish on one connection produces frames for
another), with less per-event overhead.

With a journal, the loop also decides when state becomes durable: everything the handlers
changed is committed in one transaction before the next byte goes to any client, so no
acknowledgement ever precedes its write.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from proton import Collector, Connection, Transport, TransportException

from .amqp import AmqpHandler
from .config import BrokerConfig
from .engine import Broker
from .journal import Journal, SqliteJournal

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05  # lock-expiry / session-wait granularity
READ_CHUNK = 256 * 1024
MAX_READ_PER_WAKEUP = 4 * 1024 * 1024


@dataclass(eq=False)
class _Peer:
    sock: socket.socket
    transport: Transport
    connection: Connection
    want_write: bool = False
    closed: bool = False


class Server:
    def __init__(
        self, config: BrokerConfig, host: str, port: int, journal: str | Path | None = None
    ) -> None:
        """``journal``: a SQLite file to write acknowledged state to and replay from (created
        if missing); None keeps everything in memory only."""
        self.journal: Journal
        if journal is None:
            self.journal = Journal()
            self.broker = Broker(config)
        else:
            sqlite_journal = SqliteJournal(journal)
            try:
                self.broker = Broker(config, sqlite_journal)
                restored = self.broker.restore(sqlite_journal)
            except BaseException:
                sqlite_journal.close()
                raise
            if restored:
                log.info("restored %d messages from %s", restored, journal)
            self.journal = sqlite_journal
        self.handler = AmqpHandler(self.broker, max_message_size=config.max_message_size)
        self.collector = Collector()
        self.selector = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        # Signal handlers only set a flag; this socket pair wakes select() at once.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self.peers: dict[socket.socket, _Peer] = {}
        self._stopping = False

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def stop(self) -> None:
        """Ask the loop to exit; safe from a signal handler."""
        self._stopping = True
        with contextlib.suppress(OSError):  # wake-up already pending or loop gone
            self._wake_w.send(b"x")

    def install_signal_handlers(self) -> None:
        def handle(_signum: int, _frame: FrameType | None) -> None:
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    # ------------------------------------------------------------------ loop

    def serve_forever(self) -> None:
        last_tick = 0.0
        try:
            while not self._stopping:
                for key, mask in self.selector.select(TICK_SECONDS):
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        peer: _Peer = key.data
                        if mask & selectors.EVENT_READ:
                            self._read(peer)
                        if mask & selectors.EVENT_WRITE:
                            self._write(peer)
                self._process_events()
                now = time.monotonic()
                if now - last_tick >= TICK_SECONDS:
                    last_tick = now
                    self.broker.tick()
                    for peer in list(self.peers.values()):
                        # Heartbeats and idle-timeout detection live in the transport.
                        peer.transport.tick(now)
                    self._process_events()
                self._flush()
        finally:
            self._shutdown()

    def _accept(self) -> None:
        while True:
            try:
                sock, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. out of file descriptors: keep serving the others
                log.warning("accept failed", exc_info=True)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = Connection()
            connection.collect(self.collector)
            transport = Transport(Transport.SERVER)
            sasl = transport.sasl()
            sasl.allowed_mechs("ANONYMOUS PLAIN")
            sasl.allow_insecure_mechs = True
            transport.bind(connection)
            peer = _Peer(sock, transport, connection)
            self.peers[sock] = peer
            self.selector.register(sock, selectors.EVENT_READ, peer)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(64):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _read(self, peer: _Peer) -> None:
        transport = peer.transport
        # proton parses input as it is pushed, which frees capacity again, so keep
        # reading until the socket is drained (bounded, so one busy peer can't
        # starve the others).
        budget = MAX_READ_PER_WAKEUP
        while budget > 0:
            capacity = transport.capacity()
            if capacity <= 0:  # input closed, or buffer full until events are processed
                return
            try:
                data = peer.sock.recv(min(capacity, READ_CHUNK))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            try:
                if not data:
                    transport.close_tail()
                    transport.close_head()
                    return
                transport.push(data)
            except TransportException:
                log.debug("transport error", exc_info=True)
                transport.close_tail()
                transport.close_head()
                return
            budget -= len(data)

    def _write(self, peer: _Peer) -> None:
        # Acknowledged means written: the journal commits before any output can carry an
        # accepted disposition, a settlement or a management response.
        self.journal.commit()
        transport = peer.transport
        while True:
            pending = transport.pending()
            if pending <= 0:
                break
            data = transport.peek(pending)
            if not data:
                break
            try:
                sent = peer.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                transport.close_head()
                transport.close_tail()
                break
            transport.pop(sent)
            if sent < len(data):
                break
        want_write = transport.pending() > 0
        if want_write != peer.want_write:
            peer.want_write = want_write
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
            self.selector.modify(peer.sock, events, peer)

    def _process_events(self) -> None:
        collector = self.collector
        handler = self.handler
        while True:
            event = collector.peek()
            if event is None:
                return
            method = getattr(handler, event.type.method, None)
            if method is not None:
                try:
                    method(event)
                except Exception:
                    # One bad frame must not take the broker (and every test) down.
                    log.exception("error handling %s", event.type)
            collector.pop()

    def _flush(self) -> None:
        # Also commits timer-driven changes (lock expiry counts, due scheduled messages)
        # when no client is connected to be written to.
        self.journal.commit()
        for peer in list(self.peers.values()):
            self._write(peer)
            if peer.transport.closed:
                self._close_peer(peer)

    def _close_peer(self, peer: _Peer) -> None:
        if peer.closed:
            return
        peer.closed = True
        self.handler.connection_lost(peer.connection)
        self._process_events()
        self.peers.pop(peer.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(peer.sock)
        peer.sock.close()
        peer.transport.unbind()

    def _shutdown(self) -> None:
        for peer in list(self.peers.values()):
            try:
                peer.connection.close()
                self._process_events()
                self._write(peer)
            except Exception:
                log.debug("error closing connection", exc_info=True)
            self._close_peer(peer)
        self.selector.close()
        self.listener.close()
        self._wake_r.close()
        self._wake_w.close()
        self.journal.close()
