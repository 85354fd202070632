"""The daemon: an OSC/UDP server in front of one resident engine, a job journal and two workers.

Packets are handled one at a time on the server thread (each request only checks, journals and
queues, so this is fast); generation runs on one worker thread, recording on another. Any packet,
however malformed, gets an error reply or is dropped: it never reaches an engine or a file.
"""

from __future__ import annotations

import logging
import logging.handlers
import signal
import socket
import socketserver
import threading
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
from darc_bridge.server.journal import JobRecord, Journal
from darc_bridge.server.security import ConfigError, SecurityPolicy
from darc_bridge.server.worker import Task, Worker

log = logging.getLogger(__name__)

Address = tuple[str, int]


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, _sock = self.request
        self.server.daemon_app.handle_packet(data, self.client_address)  # type: ignore[attr-defined]


class _UDPServer(socketserver.UDPServer):
    max_packet_size = 65535
    allow_reuse_address = False

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        super().server_bind()


class DarcServer:
    """Owns the engine, journal, workers and socket. `start()`, then `stop()` (or `serve()`)."""

    def __init__(self, config: ServerConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.security = SecurityPolicy(config.host, config.allow_network, config.token, list(config.allow_clients))
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        self.files = FilePolicy(Path(config.output_dir), list(config.allow_dirs), config.limits.max_file_bytes)
        self._state_lock = lock_state_dir(Path(config.state_dir))
        self.journal = Journal(config.journal_path)
        self.defaults: dict[str, Any] = {k: P.GENERATE_OPTIONS[k].default for k in P.SETTABLE}
        self.loaded = False
        self.load_error: BaseException | None = None
        self.stopped = threading.Event()
        self._replies: dict[str, Address] = {}  # job id -> latest (host, port) of its client
        self._cancel_waiters: dict[str, list[Address]] = {}
        self._lock = threading.Lock()
        self.runner = JobRunner(engine, self.journal, self.files, config, self._notify)
        self.runner.on_finished = self._finished
        self.gen_worker = Worker("generate", self.runner.run_generate, config.queue_size, self._load_engine)
        self.rec_worker = Worker("record", self.runner.run_record, config.queue_size)
        self._udp: _UDPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle -------------------------------------------------------------------------
    def start(self) -> Address:
        """Recover the journal, bind the socket, start the workers; returns the bound address."""
        for rec in self.runner.recover():
            self._replies[rec.job_id] = (rec.reply_host, rec.reply_port)
            self.gen_worker.submit(Task(rec.job_id, rec), force=True)
            log.info("job %s re-queued after a restart", rec.job_id)
        try:
            self._udp = _UDPServer((self.config.host, self.config.port), _Handler)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc} "
                              f"(is another daemon running? choose another --port)") from exc
        self._udp.daemon_app = self  # type: ignore[attr-defined]
        self.gen_worker.start()
        self.rec_worker.start()
        self._thread = threading.Thread(target=self._udp.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="darc-osc", daemon=True)
        self._thread.start()
        host, port = self._udp.server_address[:2]
        log.info("darc-bridge daemon %s listening on %s:%d (engine %s, journal %s)", __version__, host, port,
                 self.engine.name, self.config.journal_path)
        return host, port

    def stop(self) -> None:
        """Stop taking messages, stop the running job (journalled to run again), close the journal."""
        if self._udp is not None and self._thread is not None:  # shutdown() waits for serve_forever
            self._udp.shutdown()  # no new requests; the socket stays open for the jobs' last replies
        self.runner.stopping = True
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
    def send(self, addr: Address, address: str, *args: Any) -> None:
        if self._udp is None:
            return
        try:
            self._udp.socket.sendto(P.build(address, *args), addr)
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
    def handle_packet(self, data: bytes, source: Address) -> None:
        """Entry point for every datagram: never raises."""
        try:
            messages = [m.message for m in OscPacket(data).messages]
        except Exception:
            self.send(source, "/darc/error", "", "bad_request", "not an OSC message")
            return
        for msg in messages:
            try:
                self.handle_message(msg.address, list(msg.params), source)
            except Exception:
                log.exception("unexpected failure on %s", msg.address)
                self.send(source, "/darc/error", "", "internal", "the daemon failed on this message; see its log")

    def handle_message(self, address: str, args: list[Any], source: Address) -> None:
        host = source[0]
        try:
            req = P.parse_request(address, args)
        except P.ProtocolError as bad:
            rest, token = P.split_token(args)
            port = P.guess_reply_port(address, rest) or source[1]
            refusal = bad
            try:  # an unauthorised sender learns nothing about the protocol
                self.security.check(host, token)
            except P.ProtocolError as denied:
                refusal = denied
            self.send((host, port), "/darc/error", refusal.job_id, refusal.code, refusal.message)
            return
        reply = (host, req.reply_port)
        try:
            self.security.check(host, req.token, req.job_id)
            getattr(self, f"_on_{req.kind}")(req, reply)
        except P.ProtocolError as exc:
            self.send(reply, "/darc/error", exc.job_id or req.job_id, exc.code, exc.message)
        except DarcError as exc:
            self.send(reply, "/darc/error", req.job_id, exc.code, str(exc))

    def _on_ping(self, req: P.Request, reply: Address) -> None:
        d = self.engine.describe()
        self.send(reply, "/darc/pong", __version__, str(d.get("engine", self.engine.name)), str(d.get("device", "")),
                  int(self.loaded), len(self.gen_worker), P.PROTOCOL_VERSION)

    def _params_args(self) -> list[Any]:
        out: list[Any] = []
        for k in P.SETTABLE:
            v = self.defaults[k]
            out += [k, P.SET_SPECIAL.get(k, 0) if v is None else v]
        return out

    def _on_get(self, req: P.Request, reply: Address) -> None:
        self.send(reply, "/darc/params", *self._params_args())

    def _on_set(self, req: P.Request, reply: Address) -> None:
        for k, v in req.options.items():
            self.defaults[k] = None if k in P.SET_SPECIAL and v == P.SET_SPECIAL[k] else v
        log.info("defaults changed: %s", req.options)
        self.send(reply, "/darc/params", *self._params_args())

    def _on_kits(self, req: P.Request, reply: Address) -> None:  # issue 14
        self.send(reply, "/darc/kits", *server_kits.kit_names())

    def _on_status(self, req: P.Request, reply: Address) -> None:
        self.send(reply, "/darc/status", *self.status_args(req.job_id))

    def _on_cancel(self, req: P.Request, reply: Address) -> None:
        job_id = req.job_id
        for worker in (self.gen_worker, self.rec_worker):
            task = worker.remove_queued(job_id)
            if task is not None:
                self.journal.update(job_id, state="cancelled", error_code="cancelled",
                                    error_message="the job was cancelled before it started")
                self._notify(job_id, "/darc/error", (job_id, "cancelled", "the job was cancelled before it started"))
                self._replies.pop(job_id, None)
                self.send(reply, "/darc/status", *self.status_args(job_id))
                return
            task = worker.find(job_id)
            if task is not None:  # running: answer once the worker has stopped it
                with self._lock:
                    self._cancel_waiters.setdefault(job_id, []).append(reply)
                task.cancel.cancel()
                return
        self.send(reply, "/darc/status", *self.status_args(job_id))

    def _known(self, req: P.Request, reply: Address) -> bool:
        """A resubmitted job id: start nothing, point its replies here, answer with its status."""
        rec = self.journal.get(req.job_id)
        if rec is None:
            return False
        if rec.state in ("queued", "running"):
            self._replies[req.job_id] = reply
            self.journal.update(req.job_id, reply_host=reply[0], reply_port=reply[1])
        self.send(reply, "/darc/status", *self.status_args(req.job_id))
        return True

    def _accept(self, req: P.Request, reply: Address, request: dict[str, Any], worker: Worker) -> None:
        if len(worker) - (1 if worker.current is not None else 0) >= worker.max_queue:
            raise P.ProtocolError("queue_full", f"the queue is full ({worker.max_queue} jobs waiting); "
                                                "try again when a job has finished", req.job_id)
        rec = JobRecord(req.job_id, req.kind, "queued", request, reply[0], reply[1])
        if not self.journal.add(rec):  # cannot happen on one server thread, but never run a job twice
            self._known(req, reply)
            return
        self._replies[req.job_id] = reply
        position = len(worker)  # 0: nothing ahead of it
        log.info("job %s accepted from %s (%s), position %d", req.job_id, reply[0], req.kind, position)
        self.send(reply, "/darc/accepted", req.job_id, position)  # before the job can start: replies stay in order
        worker.submit(Task(req.job_id, rec), force=True)

    def _on_generate(self, req: P.Request, reply: Address) -> None:
        if self._known(req, reply):
            return
        options = {k: v for k, v in self.defaults.items()}
        options.update(req.options)
        options = fix_random_seed(options)
        server_kits.check_job_options(options, self.engine.name, req.job_id)  # issue 14: stems, kit
        self.files.check_input(req.fields["mix"], "mix")
        if req.fields["prompt"]:
            self.files.check_input(req.fields["prompt"], "prompt")
        self.files.output_folder(options.get("out_dir"))
        request = {"mix": req.fields["mix"], "prompt": req.fields["prompt"], "options": options}
        self._accept(req, reply, request, self.gen_worker)

    def _on_record(self, req: P.Request, reply: Address) -> None:
        if self._known(req, reply):
            return
        options = {k: spec.default for k, spec in P.RECORD_OPTIONS.items()}
        options.update(req.options)
        self.files.output_folder(options.get("out_dir"))
        self._accept(req, reply, {"seconds": req.fields["seconds"], "options": options}, self.rec_worker)


def lock_state_dir(state_dir: Path) -> Any:
    """Hold an exclusive lock on the state folder: two daemons must never re-run the same journal.

    The kernel drops the lock when the process dies (even with kill -9), so a restart never waits."""
    import fcntl

    state_dir.mkdir(parents=True, exist_ok=True)
    fh = open(state_dir / "daemon.lock", "a+")  # held open (and locked) for the daemon's lifetime
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
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
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
