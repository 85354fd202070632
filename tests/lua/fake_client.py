"""Stands in for `darc-bridge client` in the ReaScript tests.

It appends its argv (as JSON) to $FAKE_CLIENT_LOG and answers like the real client through the
--status-file: FAKE_CLIENT_MODE=done (default) copies the mix as the stem (with `--stems split`
also one stem per piece, listed under "stems"; unless `--no-midi`, a MIDI file of three hits
at $FAKE_CLIENT_BPM), `error` reports a bad input, `slow` shows progress first, `die` writes a
running status and then dies without a result (exit 1), `record` writes $FAKE_CLIENT_PROMPT as
the recorded prompt. `kits --json` prints $FAKE_CLIENT_KITS (a JSON list).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

COMMANDS = ("generate", "record", "cancel", "status", "ping", "kits")
# The hits of the fake MIDI file: (GM note, seconds, velocity).
HITS = ((36, 0.0, 110), (42, 0.25, 40), (38, 0.5, 90))


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def write_status(path: str, **fields) -> None:
    status = {"job_id": "", "state": "running", "stage": "", "fraction": 0.0, "stem_path": "", "midi_path": "",
              "error_code": "", "error_message": "", "updated": time.time()}
    status.update(fields)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(status, fh)  # ensure_ascii: non-ASCII paths arrive as \u escapes
    os.replace(tmp, path)


def write_midi(path: Path, bpm: float) -> None:
    import mido

    ppq = 480
    tempo = mido.bpm2tempo(bpm)
    events = []
    for note, sec, vel in HITS:
        on = round(mido.second2tick(sec, ppq, tempo))
        events += [(on, 1, mido.Message("note_on", channel=9, note=note, velocity=vel)),
                   (on + 60, 0, mido.Message("note_off", channel=9, note=note, velocity=0))]
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo, time=0)])
    last = 0
    for tick, _order, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - last))
        last = tick
    mido.MidiFile(ticks_per_beat=ppq, tracks=[track]).save(path)


def main() -> int:
    argv = sys.argv[1:]
    if os.environ.get("FAKE_CLIENT_LOG"):
        with open(os.environ["FAKE_CLIENT_LOG"], "a", encoding="utf-8") as fh:
            fh.write(json.dumps(argv) + "\n")
    command = next(a for a in argv if a in COMMANDS)
    mode = os.environ.get("FAKE_CLIENT_MODE", "done")
    status_file = option(argv, "--status-file")
    job = option(argv, "--job-id") or "job"
    if command == "generate":
        if mode == "slow":
            write_status(status_file, job_id=job, stage="generate", fraction=0.5)
            time.sleep(0.6)
        if mode == "error":
            write_status(status_file, job_id=job, state="error", error_code="bad_input",
                         error_message="mix is silent (peak below -70 dBFS)")
            print("darc-bridge: error: bad_input: mix is silent", file=sys.stderr)
            return 2
        if mode == "die":
            write_status(status_file, job_id=job, stage="generate", fraction=0.2)
            print("Traceback: the client died", file=sys.stderr)
            return 1
        out = Path(option(argv, "--out-dir"))
        stem = out / f"drums-{job}.wav"
        shutil.copyfile(option(argv, "--mix"), stem)
        stems = {}
        if option(argv, "--stems") == "split":
            for piece in ("kick", "snare", "hats"):
                stems[piece] = str(out / f"drums-{job}.{piece}.wav")
                shutil.copyfile(option(argv, "--mix"), stems[piece])
        midi = ""
        if "--no-midi" not in argv:
            midi = str(out / f"drums-{job}.mid")
            write_midi(Path(midi), float(os.environ.get("FAKE_CLIENT_BPM", "120")))
        write_status(status_file, job_id=job, state="done", stage="write", fraction=1.0, stem_path=str(stem),
                     midi_path=midi, stems=stems)
    elif command == "record":
        prompt = Path(option(argv, "--out-dir")) / f"prompt-{job}.wav"
        shutil.copyfile(os.environ["FAKE_CLIENT_PROMPT"], prompt)
        write_status(status_file, job_id=job, state="done", stage="record", fraction=1.0, stem_path=str(prompt))
    elif command == "kits":
        print(os.environ.get("FAKE_CLIENT_KITS", '[{"name": "builtin", "format": "builtin", "path": ""}]'))
        return 0
    print(json.dumps({"job_id": job, "state": "done"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
