"""Stands in for `darc-bridge client` in the ReaScript tests.

It appends its argv (as JSON) to $FAKE_CLIENT_LOG and answers like the real client through the
--status-file: FAKE_CLIENT_MODE=done (default) copies the mix as the stem, `error` reports a bad
input, `slow` shows progress first, `record` writes $FAKE_CLIENT_PROMPT as the recorded prompt.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

COMMANDS = ("generate", "record", "cancel", "status", "ping")


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
        stem = Path(option(argv, "--out-dir")) / f"drums-{job}.wav"
        shutil.copyfile(option(argv, "--mix"), stem)
        write_status(status_file, job_id=job, state="done", stage="write", fraction=1.0, stem_path=str(stem))
    elif command == "record":
        prompt = Path(option(argv, "--out-dir")) / f"prompt-{job}.wav"
        shutil.copyfile(os.environ["FAKE_CLIENT_PROMPT"], prompt)
        write_status(status_file, job_id=job, state="done", stage="record", fraction=1.0, stem_path=str(prompt))
    print(json.dumps({"job_id": job, "state": "done"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
