"""The client's kit and split-stem pieces of issue 14: `client kits [--json]`, `--stems`/`--kit`,
and the status file's `stems`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kit_support import sfz_kit
from server_support import client_cli, write_mix

from darc_bridge.client.client import Reply, job_state
from darc_bridge.client.status_file import StatusFile
from darc_bridge.kits.library import list_kits


def test_done_reply_pairs_become_the_stems_dict() -> None:
    done = ["j", "/o/d.wav", "/o/d.mid", 2.0, 44100, "kick", "/o/d.kick.wav", "snare", "/o/d.snare.wav"]
    state = job_state(Reply("/darc/done", done))
    assert state["stems"] == {"kick": "/o/d.kick.wav", "snare": "/o/d.snare.wav"}
    assert state["stem_path"] == "/o/d.wav" and state["sample_rate"] == 44100
    assert job_state(Reply("/darc/done", done[:5]))["stems"] == {}


def test_status_file_has_an_empty_stems_dict_until_a_split_job_is_done(tmp_path: Path) -> None:
    f = StatusFile(tmp_path / "s.json")
    f.update(job_id="j", state="queued")
    assert json.loads((tmp_path / "s.json").read_text())["stems"] == {}
    f.update(state="done", stems={"kick": "/o/d.kick.wav"})
    assert json.loads((tmp_path / "s.json").read_text())["stems"] == {"kick": "/o/d.kick.wav"}


@pytest.mark.slow
def test_client_kits_prints_names_or_the_kit_objects(server_kit_daemon, capsys) -> None:
    port = str(server_kit_daemon.port)
    assert client_cli(["--port", port, "kits"]) == 0
    names = capsys.readouterr().out.split("\n")[:-1]
    assert names[0] == "builtin"
    assert client_cli(["--port", port, "kits", "--json"]) == 0
    kits = json.loads(capsys.readouterr().out)
    assert [k["name"] for k in kits] == names
    assert kits == [k.to_dict() for k in list_kits()]  # a local daemon: format and path filled in


@pytest.mark.slow
def test_client_generate_split_with_a_kit_writes_stems_into_the_status_file(server_kit_daemon, server_out_dir,
                                                                          tmp_path, capsys) -> None:
    mix = write_mix(tmp_path / "mix.wav", seconds=1.5)
    kit = sfz_kit(tmp_path / "kit")
    status = tmp_path / "status.json"
    rc = client_cli(["--port", str(server_kit_daemon.port), "generate", "--mix", str(mix), "--stems", "split",
                     "--kit", str(kit), "--job-id", "cli-split-1", "--out-dir", str(server_out_dir), "--wait",
                     "--quiet", "--status-file", str(status)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["state"] == "done"
    saved = json.loads(status.read_text())
    assert set(saved["stems"]) == {"kick", "snare", "hats"}
    assert all(Path(p).is_file() and Path(p).parent == server_out_dir.resolve() for p in saved["stems"].values())
    assert saved["midi_path"].endswith("drums-cli-split-1.mid")
