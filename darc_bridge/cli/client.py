"""`darc-bridge client`: ping, generate, status, cancel and record against a running daemon.

Prints one JSON object on stdout. Exit status: 0 done (or accepted without --wait), 1 the job
or request failed (error code and message on stderr), 3 the daemon did not answer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from darc_bridge.client import kits as client_kits  # issue 14
from darc_bridge.client.client import ClientError, DarcClient, NoReply, new_job_id
from darc_bridge.client.status_file import StatusFile
from darc_bridge.server.security import ConfigError, read_token

EXIT_FAILED = 1
EXIT_NO_REPLY = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("client", help="talk to a running daemon (ping, generate, status, cancel, record)",
                              description="OSC client for `darc-bridge serve` (docs/protocol.md).")
    _connection_args(p, CONNECTION_DEFAULTS)
    # The same options after the command (`client ping --port 9001`): people type them there too.
    common = argparse.ArgumentParser(add_help=False)
    _connection_args(common, {k: argparse.SUPPRESS for k in CONNECTION_DEFAULTS})
    sub = p.add_subparsers(dest="client_command", required=True, metavar="COMMAND")
    sub.add_parser("ping", help="check the daemon: version, engine, device, queue", parents=[common])
    g = sub.add_parser("generate", help="submit a generation job", parents=[common])
    g.add_argument("--mix", required=True, type=Path, help="drumless mix (audio file)")
    g.add_argument("--prompt", type=Path, default=None, help="rhythm prompt (audio file)")
    g.add_argument("--start", type=float, default=None, help="region start in seconds")
    g.add_argument("--end", type=float, default=None, help="region end in seconds")
    g.add_argument("--temperature", type=float, default=None)
    g.add_argument("--rhythm-strength", type=float, default=None)
    g.add_argument("--quantize", type=float, default=None)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--out-dir", type=Path, default=None, help="folder for the stem (default: the daemon's)")
    g.add_argument("--name", default=None, help="base name of the output files")
    g.add_argument("--no-midi", action="store_true", help="do not write the followed rhythm as MIDI")
    g.add_argument("--sample-rate", type=int, default=None)
    client_kits.add_generate_flags(g)  # issue 14: --stems, --kit
    _job_args(g)
    client_kits.add_kits_command(sub, parents=[common])  # issue 14: client kits [--json]
    s = sub.add_parser("status", help="state of a job", parents=[common])
    s.add_argument("job_id")
    c = sub.add_parser("cancel", help="cancel a queued or running job", parents=[common])
    c.add_argument("job_id")
    r = sub.add_parser("record", help="record a rhythm prompt on the daemon's input device", parents=[common])
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--count-in", type=int, default=None, help="count-in clicks before recording")
    r.add_argument("--bpm", type=float, default=None, help="tempo of the count-in")
    r.add_argument("--device", default=None, help="input device name or index")
    r.add_argument("--sample-rate", type=int, default=None)
    r.add_argument("--out-dir", type=Path, default=None)
    r.add_argument("--name", default=None)
    _job_args(r)
    p.set_defaults(func=run)


CONNECTION_DEFAULTS: dict[str, Any] = {"host": "127.0.0.1", "port": 9001, "token": None, "token_file": None,
                                       "timeout": 5.0, "retries": 3}


def _connection_args(p: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    p.add_argument("--host", default=defaults["host"], help="daemon address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=defaults["port"], help="daemon UDP port (default 9001)")
    p.add_argument("--token", default=defaults["token"],
                   help="shared secret (daemons in network mode; prefer --token-file or $DARC_BRIDGE_TOKEN)")
    p.add_argument("--token-file", default=defaults["token_file"], help="read the shared secret from this file")
    p.add_argument("--timeout", type=float, default=defaults["timeout"],
                   help="seconds to wait for a reply before resending")
    p.add_argument("--retries", type=int, default=defaults["retries"], help="resends before giving up (same job id)")


def _job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--job-id", default=None, help="job id (default: a new UUID); resending one is safe")
    p.add_argument("--wait", action="store_true", help="wait until the job ends, with a progress bar")
    p.add_argument("--status-file", type=Path, default=None, help="keep this JSON file up to date")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _abs(p: Path | None) -> str:
    return str(p.expanduser().resolve()) if p else ""


def generate_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for key in ("start", "end", "temperature", "rhythm_strength", "quantize"):
        if getattr(args, key) is not None:
            opts[key] = float(getattr(args, key))
    for key in ("seed", "sample_rate"):
        if getattr(args, key) is not None:
            opts[key] = int(getattr(args, key))
    if args.out_dir:
        opts["out_dir"] = _abs(args.out_dir)
    if args.name:
        opts["name"] = args.name
    if args.no_midi:
        opts["midi"] = 0
    opts.update(client_kits.generate_options(args))  # issue 14
    return opts


def record_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if args.count_in is not None:
        opts["count_in"] = int(args.count_in)
    if args.bpm is not None:
        opts["bpm"] = float(args.bpm)
    if args.device:
        opts["device"] = str(args.device)
    if args.sample_rate is not None:
        opts["sample_rate"] = int(args.sample_rate)
    if args.out_dir:
        opts["out_dir"] = _abs(args.out_dir)
    if args.name:
        opts["name"] = args.name
    return opts


def _print(obj: dict[str, Any]) -> None:
    print(json.dumps(obj))


def _fail(status: StatusFile, code: str, message: str, exit_code: int) -> int:
    status.update(state="error" if status.state.get("state") != "cancelled" else "cancelled",
                  error_code=code, error_message=message)
    print(f"darc-bridge: error: {code}: {message}", file=sys.stderr)
    return exit_code


def _follow(client: DarcClient, job_id: str, first: dict[str, Any], args: argparse.Namespace,
            status: StatusFile) -> int:
    status.update(**first)
    if first["state"] not in ("done", "error", "cancelled") and args.wait:
        bar = None
        if not args.quiet:
            from tqdm import tqdm

            bar = tqdm(total=100, file=sys.stderr, unit="%", desc="queued", leave=False,
                       bar_format="{desc:>9} |{bar}| {percentage:3.0f}%")

        def on_update(state: dict[str, Any]) -> None:
            status.update(**{k: v for k, v in state.items() if v != "" or k in ("stem_path",)})
            if bar is not None:
                bar.set_description_str(state.get("stage") or state["state"])
                bar.n = int(round(100 * max(bar.n / 100, state["fraction"])))
                bar.refresh()

        try:
            final = client.wait(job_id, on_update)
        finally:
            if bar is not None:
                bar.close()
        status.update(**final)
        first = final
    _print(dict(status.state))
    if first["state"] in ("error", "cancelled"):
        return _fail(status, first["error_code"] or first["state"], first["error_message"] or first["state"],
                     EXIT_FAILED)
    return 0


def run(args: argparse.Namespace) -> int:
    status = StatusFile(getattr(args, "status_file", None))
    job_id = getattr(args, "job_id", None) or new_job_id()
    try:
        token = read_token(args.token, args.token_file, dict(os.environ))
    except ConfigError as exc:
        return _fail(status, "bad_config", str(exc), 2)
    try:
        with DarcClient(args.host, args.port, token, args.timeout, args.retries) as client:
            cmd = args.client_command
            if cmd == "ping":
                _print(client.ping())
                return 0
            if cmd == "kits":  # issue 14
                return client_kits.run_kits(client, args.json)
            if cmd in ("status", "cancel"):
                state = client.status(args.job_id) if cmd == "status" else client.cancel(args.job_id)
                _print(state)
                if state["state"] in ("error", "unknown"):
                    code = state["error_code"] or "unknown_job"
                    print(f"darc-bridge: error: {code}: {state['error_message'] or 'no such job'}", file=sys.stderr)
                    return EXIT_FAILED
                return 0
            status.update(job_id=job_id, state="queued", stage="queued")
            if cmd == "generate":
                first = client.generate(job_id, _abs(args.mix), _abs(args.prompt), generate_options(args))
            else:
                first = client.record(job_id, args.seconds, record_options(args))
            return _follow(client, job_id, first, args, status)
    except NoReply as exc:
        return _fail(status, exc.code, exc.message, EXIT_NO_REPLY)
    except ClientError as exc:
        return _fail(status, exc.code, exc.message, EXIT_FAILED)
