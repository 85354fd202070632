"""`darc-bridge serve`: run the OSC daemon with one resident engine (docs/daemon.md)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from darc_bridge.audio import AudioLimits
from darc_bridge.engines import ENGINE_NAMES
from darc_bridge.server.config import ServerConfig, default_state_dir
from darc_bridge.server.security import read_token


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the OSC daemon (DAW devices and the client talk to it)",
                              description="Load an engine once and serve generation jobs over OSC/UDP.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=9001, help="UDP port (default 9001)")
    p.add_argument("--engine", choices=ENGINE_NAMES, default="kit", help="drum engine (default: kit)")
    p.add_argument("--kit", "--kit-dir", dest="kit", default=None, metavar="NAME|PATH",  # issue 14: kits
                   help="kit engine: the daemon's kit, a name from `darc-bridge kits` or a kit path")
    p.add_argument("--checkpoint", type=Path, default=None, help="darc engine: checkpoint folder")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="darc engine: device")
    p.add_argument("--output-dir", type=Path, default=None,
                   help="where stems go when a job names no out_dir (default: <state-dir>/stems)")
    p.add_argument("--state-dir", type=Path, default=None,
                   help=f"journal and log folder (default: {default_state_dir()})")
    p.add_argument("--allow-dir", type=Path, action="append", default=[],
                   help="restrict explicit out_dir to these folders (repeatable; default: any writable folder "
                        "on loopback, only --output-dir in network mode)")
    p.add_argument("--queue-size", type=int, default=16, help="jobs that may wait (default 16)")
    p.add_argument("--max-duration", type=float, default=AudioLimits.max_duration_s,
                   help="longest mix region or prompt in seconds (default %(default)s)")
    p.add_argument("--max-file-mb", type=float, default=AudioLimits.max_file_bytes / 1024**2,
                   help="largest input file in MB (default %(default).0f)")
    p.add_argument("--allow-network", action="store_true", help="accept clients beyond loopback (needs --token)")
    p.add_argument("--token", default=None,
                   help="shared secret every message must carry (network mode; visible in `ps`: prefer "
                        "--token-file or $DARC_BRIDGE_TOKEN)")
    p.add_argument("--token-file", default=None, help="read the shared secret from this file")
    p.add_argument("--keep-days", type=float, default=30.0,
                   help="remove finished jobs older than this many days from the journal at start (0 = keep all)")
    p.add_argument("--allow-client", action="append", default=[], metavar="ADDR",
                   help="network mode: only these client addresses or networks (repeatable)")
    p.add_argument("--no-warmup", action="store_true", help="skip the warm-up generation after loading")
    p.add_argument("--log-file", type=Path, default=None, help="log file (default: <state-dir>/daemon.log)")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    state = (args.state_dir or default_state_dir()).expanduser()
    output = (args.output_dir or state / "stems").expanduser()
    allow_dirs = list(args.allow_dir)
    if args.allow_network and not allow_dirs:
        allow_dirs = [output]  # remote clients write only into the output folder unless told otherwise
    return ServerConfig(
        host=args.host, port=args.port, output_dir=output.resolve(), state_dir=state.resolve(),
        queue_size=max(1, args.queue_size), allow_network=args.allow_network,
        token=read_token(args.token, args.token_file, dict(os.environ)), keep_days=max(0.0, args.keep_days),
        allow_clients=args.allow_client, allow_dirs=allow_dirs,
        limits=AudioLimits(max_duration_s=args.max_duration, max_file_bytes=int(args.max_file_mb * 1024**2)),
        # the darc engine warms itself up inside load(); the server's warm-up generation is for the others
        warmup=not args.no_warmup and args.engine != "darc", log_file=args.log_file,
    )


def engine_options(args: argparse.Namespace) -> dict:
    from darc_bridge.cli.options import check_engine_options

    check_engine_options(args)
    if args.engine == "kit":
        return {"kit": args.kit} if args.kit else {}  # issue 14: kits
    from darc_bridge.model.shipped import default_checkpoint

    checkpoint = str(args.checkpoint) if args.checkpoint else default_checkpoint()  # models/darc-mini
    return {"checkpoint": checkpoint, "device": args.device, "warmup": not args.no_warmup}


def run(args: argparse.Namespace) -> int:
    from darc_bridge.server.app import serve

    return serve(config_from_args(args), engine_name=args.engine, engine_options=engine_options(args))
