"""The daemon: an OSC/UDP server in front of one resident engine, a job journal and two workers.

Packets are handled one at a time on the server thread (each request only checks, journals and
queues, so this is fast); generation runs on one worker thread, recording on another. Any packet,
however malformed, gets an error reply or is dropped: it never reaches an engine or a file.
Who may talk is checked before anything else; replies are never answered, never sent to the
daemon's own port, and capped in bytes per request (no loops, no amplification).
"""

from __future__ import annotations

import logging
import logging.handlers
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pythonosc.osc_packet import OscPacket

from darc_bridge import __version__
from darc_bridge.engines import Engine, create_engine
from darc_bridge.errors import DarcError
from darc_bridge.server import kits as server_kits  # issue 14
from darc_bridge.server import protocol as P
from darc_bridge.server.config import ServerConfig
from darc_bridge.server.files import FilePolicy
from darc_bridge.server.jobs import JobRunner, fix_random_seed, warm_up
from darc_bridge.server.journal import JobRecord, Journal, JournalError
from darc_bridge.server.security import ConfigError, SecurityPolicy, is_loopback
from darc_bridge.server.worker import Task, Worker

log = logging.getLogger(__name__)

Address = tuple[str, int]


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, _sock = self.request
        self.server.app.handle_packet(data, self.client_address)  # type: ignore[attr-defined]


class _UDPServer(socketserver.UDPServer):
    max_packet_size = 65535
    allow_reuse_address = False

    def __init__(self, address: Address, app: DarcServer) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        super().server_bind()


class RateLimit:
    """At most one event per `interval` seconds per key (an unauthorised sender's one reply)."""

    def __init__(self, interval: float = 1.0, max_keys: int = 4096) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._last: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self.interval:
            return False
        if len(self._last) >= self.max_keys:  # forget the oldest half: a flood of sources stays bounded
            for k in sorted(self._last, key=self._last.__getitem__)[: self.max_keys // 2]:
                del self._last[k]
        self._last[key] = now
        return True


class DarcServer:
    """Owns the engine, journal, workers and socket. `start()`, then `stop()` (or `serve()`)."""

    def __init__(self, config: ServerConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.security = SecurityPolicy(config.host, config.allow_network, config.token, list(config.allow_clients))
        try:
            Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the output folder {config.output_dir}: {exc.strerror}") from None
        self.files = FilePolicy(Path(config.output_dir), list(config.allow_dirs), config.limits.max_file_bytes)
        self._state_lock = lock_state_dir(Path(config.state_dir))
        try:
            self.journal = Journal(config.journal_path)
        except BaseException:
            self._state_lock.close()
            raise
        self.defaults: dict[str, Any] = P.default_settings()
        self.loaded = False
        self.load_error: BaseException | None = None
        self.stopped = threading.Event()
        self.stopping = threading.Event()
        self._replies: dict[str, Address] = {}  # job id -> latest (host, port) of its client
        self._cancel_waiters: dict[str, list[Address]] = {}
        self._lock = threading.Lock()
        self._unauthorized = RateLimit(1.0)
        self._own: Address | None = None
        self.runner = JobRunner(engine, self.journal, self.files, config, self._notify, self._finished, self.stopping)
        self.gen_worker = Worker("generate", self.runner.run_generate, config.queue_size, self._load_engine,
                                 batch=getattr(engine, "max_concurrent_jobs", 1))
        self.rec_worker = Worker("record", self.runner.run_record, config.queue_size)
        # One handler per request route (protocol.ROUTES holds each address's layout and policy).
        self.handlers: dict[str, Callable[[P.Request, Address], None]] = {
            "ping": self._on_ping, "get": self._on_get, "kits": self._on_kits, "set": self._on_set, "status": self._on_status,
            "cancel": self._on_cancel, "generate": self._on_generate, "record": self._on_record,
        }
        missing = {r.kind for r in P.ROUTES.values() if r.answer} - set(self.handlers)
        assert not missing, f"routes without a handler: {missing}"
        self._udp: _UDPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle -------------------------------------------------------------------------
    def start(self) -> Address:
        """Prune and recover the journal, bind the socket, start the workers; returns the bound address."""
        if self.config.keep_days > 0:
            try:
                pruned = self.journal.prune(self.config.keep_days)
                if pruned:
                    log.info("journal: removed %d finished jobs older than %g days", pruned, self.config.keep_days)
            except JournalError as exc:
                log.error("%s", exc)
        for rec in self.runner.recover():
            self._replies[rec.job_id] = (rec.reply_host, rec.reply_port)
            self.gen_worker.submit(Task(rec.job_id, rec), force=True)
            log.info("job %s re-queued after a restart", rec.job_id)
        try:
            self._udp = _UDPServer((self.config.host, self.config.port), self)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc} "
                              f"(is another daemon running? choose another --port)") from exc
        self.gen_worker.start()
        self.rec_worker.start()
        self._thread = threading.Thread(target=self._udp.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="darc-osc", daemon=True)
        self._thread.start()
        host, port = self._udp.server_address[:2]
        self._own = (host, port)
        log.info("darc-bridge daemon %s listening on %s:%d (engine %s, journal %s)", __version__, host, port,
                 self.engine.name, self.config.journal_path)
        return host, port

    def stop(self) -> None:
        """Stop taking messages, stop the running job (journalled to run again), close the journal."""
        if self._udp is not None and self._thread is not None:  # shutdown() waits for serve_forever
            self._udp.shutdown()  # no new requests; the socket stays open for the jobs' last replies
        self.stopping.set()
        for worker in (self.gen_worker, self.rec_worker):
            task = worker.stop()
            if task is not None:
                log.info("stopped during job %s", task.job_id)
        if self._udp is not None:
            self._udp.server_close()
            self._udp = None
        self.journal.close()
        self._state_lock.close()
        self.stopped.set()
        log.info("daemon stopped")

    def _load_engine(self) -> None:
        try:
            self.engine.load()
            if self.config.warmup:
                warm_up(self.engine)
            self.loaded = True
            log.info("engine ready: %s", self.engine.describe())
        except BaseException as exc:  # noqa: B036 - reported to serve(), which exits non-zero
            log.error("the engine could not be loaded: %s", exc)
            self.load_error = exc
            self.stopped.set()

    # --- replies ----------------------------------------------------------------------------
    def _is_self(self, addr: Address) -> bool:
        """The daemon's own socket: never a reply destination (no loop with itself)."""
        if self._own is None or addr[1] != self._own[1]:
            return False
        return addr[0] == self._own[0] or is_loopback(addr[0]) or self._own[0] in ("0.0.0.0", "::")

    def send(self, addr: Address, address: str, *args: Any, budget: list[int] | None = None) -> None:
        """Send one reply. `budget` (bytes left for this request's replies) caps amplification."""
        if self._udp is None:
            return
        if self._is_self(addr):
            log.debug("not sending %s to the daemon's own port %s", address, addr)
            return
        data = P.build(address, *args)
        if budget is not None:
            if len(data) > budget[0]:
                log.debug("reply %s to %s dropped: over the reply budget of one request", address, addr)
                return
            budget[0] -= len(data)
        try:
            self._udp.socket.sendto(data, addr)
        except OSError as exc:  # a closed or unreachable client must not hurt the daemon
            log.debug("reply %s to %s failed: %s", address, addr, exc)

    def _notify(self, job_id: str, address: str, args: tuple) -> None:
        addr = self._replies.get(job_id)
        if addr is not None:
            self.send(addr, address, *args)

    def _finished(self, job_id: str) -> None:
        """After a job's last reply: answer pending cancels, forget its reply address (days of jobs)."""
        self._replies.pop(job_id, None)
        with self._lock:
            waiters = self._cancel_waiters.pop(job_id, [])
        for addr in waiters:
            self.send(addr, "/darc/status", *self.status_args(job_id))

    def status_args(self, job_id: str) -> tuple:
        task = self.gen_worker.find(job_id) or self.rec_worker.find(job_id)
        rec = self.journal.get(job_id)
        if rec is None:
            return (job_id, "unknown", 0.0, "", "", "", "")
        fraction = rec.fraction
        state = rec.state
        if task is not None and state == "running":
            fraction = task.progress.fraction
        return (job_id, state, float(fraction), rec.stem_path if state == "done" else "",
                rec.midi_path if state == "done" else "", rec.error_code, rec.error_message)

    # --- requests ---------------------------------------------------------------------------
    def _refuse_unauthorized(self, source: Address, job_id: str, message: str) -> None:
        """An unauthorised sender gets one short `unauthorized` per second at its source, nothing else."""
        if self._unauthorized.allow(source[0]):
            self.send(source, "/darc/error", job_id, "unauthorized", message)

    def handle_packet(self, data: bytes, source: Address) -> None:
        """Entry point for every datagram: never raises."""
        try:
            messages = [m.message for m in OscPacket(data).messages]
        except Exception:
            try:
                self.security.check(source[0], None)
            except P.ProtocolError as denied:
                self._refuse_unauthorized(source, "", denied.message)
                return
            if not self.security.allow_network:  # junk from a loopback sender: say why, once per request
                self.send(source, "/darc/error", "", "bad_request", "not an OSC message", budget=[P.MAX_REPLY_BYTES])
            return
        for msg in messages:
            try:
                self.handle_message(msg.address, list(msg.params), source)
            except Exception:
                log.exception("unexpected failure on %s", msg.address)
                self.send(source, "/darc/error", "", "internal", "the daemon failed on this message; see its log",
                          budget=[P.MAX_REPLY_BYTES])

    def handle_message(self, address: str, args: list[Any], source: Address) -> None:
        route = P.ROUTES.get(address)
        if route is not None and not route.answer:  # a reply (pong, error...): never answered
            log.debug("ignoring reply message %s from %s", address, source)
            return
        host = source[0]
        _rest, token = P.split_token(args)
        try:  # who may talk comes first: an unauthorised sender learns nothing about the protocol
            self.security.check(host, token)
        except P.ProtocolError as denied:
            self._refuse_unauthorized(source, "", denied.message)
            return
        budget = [P.MAX_REPLY_BYTES]
        try:
            req = P.parse_request(address, args)
        except P.ProtocolError as bad:
            port = bad.reply_port or source[1]
            self.send((host, port), "/darc/error", bad.job_id, bad.code, bad.message, budget=budget)
            return
        reply = (host, req.reply_port)
        try:
            self.handlers[req.kind](req, reply, budget)
        except P.ProtocolError as exc:
            self.send(reply, "/darc/error", exc.job_id or req.job_id, exc.code, exc.message, budget=budget)
        except DarcError as exc:
            self.send(reply, "/darc/error", req.job_id, exc.code, str(exc), budget=budget)

    def _on_ping(self, req: P.Request, reply: Address, budget: list[int]) -> None:
        d = self.engine.describe()
        self.send(reply, "/darc/pong", __version__, str(d.get("engine", self.engine.name)), str(d.get("device", "")),
                  int(self.loaded), len(self.gen_worker), P.PROTOCOL_VERSION, budget=budget)

    def _params_args(self) -> list[Any]:
        out: list[Any] = []
        for k in P.SETTABLE:
            v = self.defaults[k]
            out += [k, P.SET_SPECIAL.get(k, 0) if v is None else v]
        return out

    def _on_get(self, req: P.Request, reply: Address, budget: list[int]) -> None:
        self.send(reply, "/darc/params", *self._params_args(), budget=budget)

    def _on_set(self, req: P.Request, reply: Address, budget: list[int]) -> None:
        for k, v in req.options.items():
            self.defaults[k] = None if k in P.SET_SPECIAL and v == P.SET_SPECIAL[k] else v
        log.info("defaults changed: %s", req.options)
        self.send(reply, "/darc/params", *self._params_args(), budget=budget)

    def _on_kits(self, req: P.Request, reply: Address, budget: list[int]) -> None:  # issue 14
        self.send(reply, "/darc/kits", *server_kits.kit_names(), budget=budget)

    def _on_status(self, req: P.Request, reply: Address, budget: list[int]) -> None:
        self.send(reply, "/darc/status", *self.status_args(req.job_id), budget=budget)

    def _on_cancel(self, req: P.Request, reply: Address, budget: list[int]) -> None:
        job_id = req.job_id
        for worker in (self.gen_worker, self.rec_worker):
            task = worker.remove_queued(job_id)
            if task is not None:
                message = "the job was cancelled before it started"
                self.runner.record_error(job_id, "cancelled", "cancelled", message)
                self._notify(job_id, "/darc/error", (job_id, "cancelled", message))
                self._replies.pop(job_id, None)
                self.send(reply, "/darc/status", *self.status_args(job_id), budget=budget)
                return
            task = worker.find(job_id)
            if task is not None:  # running: answer once the worker has stopped it
                with self._lock:
                    self._cancel_waiters.setdefault(job_id, []).append(reply)
                task.cancel.cancel()
                return
        self.send(reply, "/darc/status", *self.status_args(job_id), budget=budget)

    def _known(self, req: P.Request, reply: Address, budget: list[int]) -> bool:
        """A resubmitted job id: start nothing, point its replies here, answer with its status."""
        rec = self.journal.get(req.job_id)
        if rec is None:
            return False
        if rec.state in ("queued", "running"):
            self._replies[req.job_id] = reply
            try:
                self.journal.update(req.job_id, reply_host=reply[0], reply_port=reply[1])
            except JournalError as exc:
                log.error("job %s: %s", req.job_id, exc)
        self.send(reply, "/darc/status", *self.status_args(req.job_id), budget=budget)
        return True

    def _accept(self, req: P.Request, reply: Address, request: dict[str, Any], worker: Worker,
                budget: list[int]) -> None:
        if len(worker) - (1 if worker.current is not None else 0) >= worker.max_queue:
            raise P.ProtocolError("queue_full", f"the queue is full ({worker.max_queue} jobs waiting); "
                                                "try again when a job has finished", req.job_id)
        rec = JobRecord(req.job_id, req.kind, "queued", request, reply[0], reply[1])
        if not self.journal.add(rec):  # cannot happen on one server thread, but never run a job twice
            self._known(req, reply, budget)
            return
        self._replies[req.job_id] = reply
        position = len(worker)  # 0: nothing ahead of it
        log.info("job %s accepted from %s (%s), position %d", req.job_id, reply[0], req.kind, position)
        self.send(reply, "/darc/accepted", req.job_id, position)  # before the job can start: replies stay in order
        worker.submit(Task(req.job_id, rec), force=True)

    def _on_generate(self, req: P.Request, reply: Address, budget: list[int]) -> None:
        if self._known(req, reply, budget):
            return
        options = {k: v for k, v in self.defaults.items() if v is not None}  # None: the model's / mix's value
        options.update(req.options)
        options = fix_random_seed(options)
        server_kits.check_job_options(options, self.engine.name, req.job_id)  # issue 14: stems, kit
        self.files.check_input(req.fields["mix"], "mix")
        if req.fields["prompt"]:
            self.files.check_input(req.fields["prompt"], "prompt")
        self.files.output_folder(options.get("out_dir"))
        request = {"mix": req.fields["mix"], "prompt": req.fields["prompt"], "options": options}
        self._accept(req, reply, request, self.gen_worker, budget)

    def _on_record(self, req: P.Request, reply: Address, budget: list[int]) -> None:
        if self._known(req, reply, budget):
            return
        options = {k: spec.default for k, spec in P.RECORD_OPTIONS.items()}
        options.update(req.options)
        self.files.output_folder(options.get("out_dir"))
        self._accept(req, reply, {"seconds": req.fields["seconds"], "options": options}, self.rec_worker, budget)


def lock_state_dir(state_dir: Path) -> Any:
    """Hold an exclusive lock on the state folder: two daemons must never re-run the same journal.

    The kernel drops the lock when the process dies (even with kill -9), so a restart never waits."""
    import fcntl

    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fh = open(state_dir / "daemon.lock", "a+")  # held open (and locked) for the daemon's lifetime
    except OSError as exc:
        raise ConfigError(f"cannot use the state folder {state_dir}: {exc.strerror or exc} (choose a writable "
                          f"--state-dir)") from None
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        fh.close()
        raise ConfigError(f"another daemon is using the state folder {state_dir} (stop it, or choose another "
                          f"--state-dir)") from exc
    return fh


def setup_file_logging(config: ServerConfig) -> logging.Handler:
    """Log to <state_dir>/daemon.log (rotated) beside stderr: a daemon runs for days."""
    path = Path(config.log_file) if config.log_file else Path(config.state_dir) / "daemon.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the log file {path}: {exc.strerror or exc} (choose a writable "
                          f"--state-dir or --log-file)") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler


def serve(config: ServerConfig, engine: Engine | None = None, engine_name: str = "kit",
          engine_options: dict[str, Any] | None = None, ready: threading.Event | None = None) -> int:
    """Run the daemon until SIGINT/SIGTERM. Tests pass their own `engine` object.

    Returns 0 after a clean stop; raises the engine's error (a DarcError) if it could not be loaded.
    """
    handler = setup_file_logging(config)
    try:
        return _serve(config, engine, engine_name, engine_options, ready)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _serve(config: ServerConfig, engine: Engine | None, engine_name: str, engine_options: dict[str, Any] | None,
           ready: threading.Event | None) -> int:
    if engine is None:
        engine = create_engine(engine_name, **(engine_options or {}))
    server = DarcServer(config, engine)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        if ready is not None:
            ready.set()
        while not stop.is_set() and not server.stopped.is_set():
            stop.wait(0.2)
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if server.load_error is not None:
        if isinstance(server.load_error, DarcError):
            raise server.load_error
        raise DarcError(f"the engine could not be loaded: {server.load_error}") from server.load_error
    return 0
