"""Test-only daemon entry point: the real server (`serve`) with a controllable test engine.

Used by the daemon tests that need jobs slow enough to cancel, crash or fill the queue. The
engine is a real Engine subclass making a sine stem in steps, checking the cancel token.
    python tests/server_daemon_helper.py --delay 0.5 --port P --state-dir D --output-dir O
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from darc_bridge.audio import Audio, AudioLimits
from darc_bridge.engines import (
    CancelToken,
    Engine,
    GenerationParams,
    GenerationResult,
    ProgressCallback,
    no_progress,
)
from darc_bridge.rhythm import Onset, RhythmFeatures
from darc_bridge.server.app import serve
from darc_bridge.server.config import ServerConfig


class SlowSineEngine(Engine):
    """Makes a 220 Hz sine stem as long as the mix, taking `delay` seconds in 20 cancellable steps."""

    name = "test-sine"

    def __init__(self, delay: float = 0.0, fail_on: str = "") -> None:
        self.delay = delay
        self.fail_on = fail_on
        self._loaded = False

    def load(self) -> None:
        self._loaded = True

    def describe(self) -> dict:
        return {"engine": self.name, "device": "cpu", "loaded": self._loaded}

    def generate(self, mix: Audio, prompt: Audio | None, params: GenerationParams,
                 progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> GenerationResult:
        steps = 20
        for i in range(steps):
            if cancel is not None:
                cancel.raise_if_cancelled()
            progress("render", i / steps)
            time.sleep(self.delay / steps)
        progress("render", 1.0)
        sr = params.output_sample_rate or mix.sample_rate
        n = int(round(mix.duration * sr))
        t = np.arange(n) / sr
        stem = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)[None, :]
        rhythm = RhythmFeatures(np.zeros((3, max(1, int(mix.duration * 50))), np.float32),
                                [Onset(0.0, 0, 1.0), Onset(0.5, 1, 0.8)], duration=mix.duration)
        return GenerationResult(stem, sr, rhythm=rhythm, info={"seed": params.seed})


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--output-dir", type=Path, required=True)
    p.add_argument("--queue-size", type=int, default=16)
    p.add_argument("--allow-dir", type=Path, action="append", default=[])
    p.add_argument("--allow-network", action="store_true")
    p.add_argument("--token", default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--max-duration", type=float, default=600.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    config = ServerConfig(host=args.host, port=args.port, output_dir=args.output_dir, state_dir=args.state_dir,
                          queue_size=args.queue_size, allow_network=args.allow_network, token=args.token,
                          allow_dirs=args.allow_dir, limits=AudioLimits(max_duration_s=args.max_duration),
                          warmup=False)
    return serve(config, engine=SlowSineEngine(args.delay))


if __name__ == "__main__":
    sys.exit(main())
