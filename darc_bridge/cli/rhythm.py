"""`darc-bridge rhythm PROMPT`: show what the engines will follow in a rhythm prompt.

With --json, stdout holds exactly one JSON object (for scripts and the DAW devices); logs go to
stderr. MIDI and plot outputs are checked before any work, so a typo costs nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path

from darc_bridge.audio.io import AudioLimits, check_output_path, load_audio, refuse_clash
from darc_bridge.errors import InputError
from darc_bridge.rhythm.features import CLASS_NAMES, RhythmSettings, check_prompt_length

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rhythm",
        help="extract the rhythm (onsets per timbre class) of a prompt",
        description="Extract timbre-free rhythm features from a prompt (beatbox, tapping, a loop): "
        "NMF activations per class, low to high timbre, and the onsets picked from them.",
    )
    p.add_argument("prompt", help="audio file holding the rhythm (WAV, FLAC, OGG, MP3)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the onsets to stdout")
    p.add_argument("--midi", metavar="OUT.mid", help="also write the onsets as a General MIDI drum file")
    p.add_argument("--plot", metavar="OUT.png", help="also draw the activations and onsets as a PNG")
    p.add_argument("--classes", type=int, default=RhythmSettings.n_classes, metavar="K",
                   help="number of timbre classes, 1..8 (default: %(default)s: kick, snare, hat)")
    p.add_argument("--tempo", type=float, default=120.0, metavar="BPM",
                   help="tempo written into the MIDI file (default: %(default)s)")
    p.add_argument("--max-duration", type=float, default=AudioLimits.max_duration_s, metavar="SECONDS",
                   help="refuse prompts longer than this, as generate does (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
    p.set_defaults(func=run)


def _summary(features, prompt: str) -> str:
    counts = Counter(o.cls for o in features.onsets)
    parts = ", ".join(
        f"{CLASS_NAMES[k] if k < len(CLASS_NAMES) else f'class {k}'} {counts.get(k, 0)}"
        for k in range(features.n_classes)
    )
    return f"{prompt}: {features.duration:.2f} s, {len(features.onsets)} onsets ({parts})"


def run(args: argparse.Namespace) -> int:
    from darc_bridge.rhythm.nmf import extract_rhythm  # heavy imports only when the command runs

    if not 1 <= args.classes <= 8:
        raise InputError(f"--classes must be between 1 and 8, got {args.classes}")
    limits = AudioLimits(max_duration_s=args.max_duration)  # a NaN or negative limit is refused here
    taken = [("the prompt file", Path(args.prompt))]
    if args.midi:
        from darc_bridge.rhythm.midi import TEMPO_RANGE

        if not TEMPO_RANGE[0] <= args.tempo <= TEMPO_RANGE[1]:
            raise InputError(f"--tempo must be between {TEMPO_RANGE[0]:g} and {TEMPO_RANGE[1]:g} BPM, got {args.tempo}")
        refuse_clash("midi", check_output_path(args.midi), taken)
        taken.append(("the midi output", Path(args.midi)))
    if args.plot:
        refuse_clash("plot", check_output_path(args.plot), taken)
    audio = load_audio(args.prompt, role="prompt", limits=limits)
    check_prompt_length(audio.duration)  # what `generate` refuses is no rhythm to show
    features = extract_rhythm(audio, settings=RhythmSettings(n_classes=args.classes))
    if args.midi:
        from darc_bridge.rhythm.midi import write_midi_atomic

        log.info("wrote MIDI %s", write_midi_atomic(args.midi, features.onsets, tempo=args.tempo))
    if args.plot:
        from darc_bridge.rhythm.plot import plot_rhythm

        log.info("wrote plot %s", plot_rhythm(features, args.plot, title=args.prompt))
    if args.json:
        print(json.dumps(features.to_json_dict()))
    else:
        print(_summary(features, args.prompt))
        for path in (args.midi, args.plot):
            if path:
                print(f"wrote {path}")
    return 0
