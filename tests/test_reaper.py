"""The REAPER scripts, run by a real Lua 5.4 against a fake `reaper` table that records calls
(tests/lua/fake_reaper.lua), with a stand-in client (tests/lua/fake_client.py), on Windows through
an emulation of CreateProcess and cmd.exe (tests/lua/fake_cmd.py), and once against the real
daemon through the real client."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "reaper_scripts" / "DARC"
LUA_DIR = REPO / "tests" / "lua"
LUA = shutil.which("lua5.4")

_spec = importlib.util.spec_from_file_location("fake_cmd", LUA_DIR / "fake_cmd.py")
fake_cmd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_cmd)
parse_windows_command_line = fake_cmd.command_line_to_argv

def lua_value(x) -> str:
    """Python data as a Lua constructor (strings byte-exact through decimal escapes)."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if x is None:
        return "nil"
    if isinstance(x, int | float):
        return repr(x)
    if isinstance(x, str):
        return '"' + "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else f"\\{b:03d}"
                             for b in x.encode("utf-8")) + '"'
    if isinstance(x, dict):
        return "{" + ", ".join(f"[{lua_value(k)}] = {lua_value(v)}" for k, v in x.items()) + "}"
    return "{" + ", ".join(lua_value(v) for v in x) + "}"


def run_lua(script: str, scenario: dict, tmp_path: Path, env: dict | None = None, timeout: float = 60,
            finished: bool = True) -> dict:
    assert LUA, "lua5.4 is needed to test the REAPER scripts (Debian package lua5.4)"
    scen = tmp_path / f"scenario-{script}.lua"
    scen.write_text("return " + lua_value(scenario), encoding="utf-8")
    out = tmp_path / f"report-{script}.json"
    proc = subprocess.run([LUA, str(LUA_DIR / "run_script.lua"), str(scen), str(SCRIPTS / script), str(out)],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report.get("error") is None, report["error"]
    if finished:
        assert report["defer_left"] in (None, 0), "the defer loop never finished"
    return report


def tone(path: Path, seconds: float = 0.5, sr: int = 22050) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t).astype(np.float32), sr, subtype="PCM_16")
    return path


@pytest.fixture
def world(tmp_path):
    """A project folder and client path with spaces, quotes and non-ASCII characters."""
    project = tmp_path / "My Songs" / "Café 'ü' $HOME"
    project.mkdir(parents=True)
    client_dir = tmp_path / "tools ü"
    client_dir.mkdir()
    client = client_dir / "darc bridge"
    client.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{LUA_DIR / 'fake_client.py'}' \"$@\"\n")
    client.chmod(0o755)
    recording = tmp_path / "REAPER Media"  # GetProjectPath(): the recording path, not the project's folder
    recording.mkdir()
    prompt = tone(tmp_path / "beat box \"take\" ß.wav", 1.0)
    mix = tone(tmp_path / "render source.wav", 2.0)
    log = tmp_path / "client-argv.jsonl"
    env = {"FAKE_CLIENT_LOG": str(log), "FAKE_CLIENT_PROMPT": str(prompt), "TMPDIR": str(tmp_path)}

    def scenario(**changes) -> dict:
        base = {
            "os": "Linux", "project_file": str(project / "Song.rpp"), "recording_path": str(recording),
            "time_selection": [12.5, 20.5], "python": sys.executable, "cmd_emulator": str(LUA_DIR / "fake_cmd.py"),
            "tracks": [{"name": "Guitar", "selected": True}, {"name": "Bass"}, {"name": "Drums"}],
            "ext": {"DARC/client": str(client), "DARC/temperature": "0.8", "DARC/rhythm_strength": "1.5",
                    "DARC/port": "9123"},
            "proj_ext": {"DARC/prompt": str(prompt)},
            "render_numbers": {"RENDER_SETTINGS": 1, "RENDER_BOUNDSFLAG": 1, "RENDER_SRATE": 48000,
                               "RENDER_CHANNELS": 1, "RENDER_TAILFLAG": 3, "RENDER_ADDTOPROJ": 1},
            "render_strings": {"RENDER_FILE": "/user/renders", "RENDER_PATTERN": "$project",
                               "RENDER_FORMAT": "bDNwbQ=="},
            "render_source": str(mix), "exec_foreground": True,
        }
        base.update(changes)
        return base

    def argv_log() -> list[list[str]]:
        return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []

    return {"project": project, "client": client, "prompt": prompt, "mix": mix, "env": env, "recording": recording,
            "scenario": scenario, "argv": argv_log, "tmp": tmp_path}


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_generate_inserts_the_stem_on_a_new_track_at_the_selection_start(world, tmp_path):
    report = run_lua("darc_generate_drums.lua", world["scenario"](), tmp_path, world["env"])
    assert report["messages"] == []
    tracks = report["tracks"]
    assert [t["name"] for t in tracks] == ["Guitar", "Bass", "Drums", "Drums", "Drums MIDI"]
    new = tracks[3]
    assert new["inserted"] and new["selected"]
    (item,) = new["items"]
    assert item["position"] == 12.5
    assert item["length"] == pytest.approx(2.0, abs=1e-3)
    assert item["take_name"] == "DARC T0.80 R1.50"
    assert Path(item["file"]).parent == world["project"] / "DARC"
    assert Path(item["file"]).is_file()
    assert report["undo"] == ["begin", "end:DARC: insert drum stem"]
    log = report["log"]
    assert log.index("Undo_BeginBlock") < log.index("InsertTrackAtIndex") < log.index("Undo_EndBlock")


def midi_notes(item: dict) -> list[tuple]:
    return [(n["pitch"], round(n["on"], 6), n["vel"], n["chan"]) for n in item["notes"]]


def test_the_played_rhythm_lands_as_a_midi_item_at_the_project_tempo_in_the_same_undo_block(world, tmp_path):
    # The MIDI file is written at 100 bpm; the project plays at 90: notes are placed by their time.
    scenario = world["scenario"](tempo=90)
    report = run_lua("darc_generate_drums.lua", scenario, tmp_path, {**world["env"], "FAKE_CLIENT_BPM": "100"})
    assert report["messages"] == []
    track = report["tracks"][-1]
    assert track["name"] == "Drums MIDI" and track["inserted"]
    (item,) = track["items"]
    assert item["midi"] and item["sorted"]
    assert item["position"] == 12.5
    assert item["length"] == pytest.approx(2.0, abs=1e-3), "as long as the stem"
    # 0, 0.25 and 0.5 s at 90 bpm = 0, 0.375 and 0.75 beats = 0, 360 and 720 PPQ (960 per beat);
    # GM kick/hat/snare on channel 10 with the file's velocities.
    assert midi_notes(item) == [(36, 0.0, 110, 9), (42, 360.0, 40, 9), (38, 720.0, 90, 9)]
    assert all(n["off"] > n["on"] for n in item["notes"])
    assert report["undo"] == ["begin", "end:DARC: insert drum stem"], "stem and MIDI are one undo step"
    log = report["log"]
    assert log.index("Undo_BeginBlock") < log.index("CreateNewMIDIItemInProj") < log.index("Undo_EndBlock")
    assert "--no-midi" not in world["argv"]()[0]


def test_the_midi_switch_off_asks_for_no_midi_and_adds_no_track(world, tmp_path):
    scenario = world["scenario"]()
    scenario["ext"]["DARC/midi"] = "0"
    report = run_lua("darc_generate_drums.lua", scenario, tmp_path, world["env"])
    assert [t["name"] for t in report["tracks"]] == ["Guitar", "Bass", "Drums", "Drums"]
    assert "--no-midi" in world["argv"]()[0]


def test_split_stems_come_as_a_folder_of_piece_tracks(world, tmp_path):
    scenario = world["scenario"]()
    scenario["ext"]["DARC/stems"] = "split"
    scenario["ext"]["DARC/kit"] = "GM kit ü"
    report = run_lua("darc_generate_drums.lua", scenario, tmp_path, world["env"])
    assert report["messages"] == []
    argv = world["argv"]()[0]
    assert option(argv, "--stems") == "split"
    assert option(argv, "--kit") == "GM kit ü"
    new = report["tracks"][3:]
    assert [(t["name"], t["depth"]) for t in new] == [
        ("Drums", 1), ("Drums: Kick", 0), ("Drums: Snare", 0), ("Drums: Hats", -1), ("Drums MIDI", 0)]
    assert new[0]["items"] == [] and new[0]["selected"], "the folder sums the pieces: no mixed stem on top"
    for t, piece in zip(new[1:4], ("kick", "snare", "hats"), strict=True):
        (item,) = t["items"]
        assert item["file"].endswith(f".{piece}.wav") and item["position"] == 12.5
    assert report["undo"] == ["begin", "end:DARC: insert drum stem"]


def test_default_settings_send_no_new_options(world, tmp_path):
    run_lua("darc_generate_drums.lua", world["scenario"](), tmp_path, world["env"])
    argv = world["argv"]()[0]
    assert "--stems" not in argv and "--kit" not in argv


def test_stems_go_to_the_project_folder_not_the_recording_path(world, tmp_path):
    report = run_lua("darc_generate_drums.lua", world["scenario"](), tmp_path, world["env"])
    (item,) = report["tracks"][3]["items"]
    assert Path(item["file"]).parent == world["project"] / "DARC"
    assert not (world["recording"] / "DARC").exists()
    # A project never saved has no folder: REAPER's media folder, and the console says so.
    unsaved = run_lua("darc_generate_drums.lua", world["scenario"](project_file=""), tmp_path, world["env"])
    (item,) = unsaved["tracks"][3]["items"]
    assert Path(item["file"]).parent == world["recording"] / "DARC"
    assert any("not saved" in line for line in unsaved["console"])


def test_the_scripts_leave_no_temporary_files(world, tmp_path):
    report = run_lua("darc_generate_drums.lua", world["scenario"](), tmp_path, world["env"])
    assert report["messages"] == []
    assert sorted(p.name for p in tmp_path.glob("darc-*")) == [], "launcher .sh, .rc, .log"
    job_dir = world["project"] / "DARC"
    left = sorted(p.name for p in job_dir.iterdir())
    assert not [n for n in left if n.startswith(("job-", "mix-"))], left
    assert any(n.endswith(".wav") for n in left) and any(n.endswith(".mid") for n in left)


def test_a_client_that_dies_mid_job_is_reported_at_once(world, tmp_path):
    """It wrote a first status ("running"), then died: its exit code ends the poll."""
    scenario = world["scenario"](max_rounds=200)
    report = run_lua("darc_generate_drums.lua", scenario, tmp_path, {**world["env"], "FAKE_CLIENT_MODE": "die"})
    (message,) = report["messages"]
    assert "exited (code 1)" in message and "running" in message and "the client died" in message
    assert report["defer_rounds"] < 5
    assert report["ext"]["DARC/active_job"] == ""
    assert [t["name"] for t in report["tracks"]] == ["Guitar", "Bass", "Drums"]


def test_several_selected_tracks_are_rendered_as_one_stereo_mix(world, tmp_path):
    scenario = world["scenario"](tracks=[{"name": "Guitar", "selected": True}, {"name": "Bass", "selected": True},
                                         {"name": "Keys", "solo": 1}, {"name": "Drums"}])
    report = run_lua("darc_generate_drums.lua", scenario, tmp_path, world["env"])
    assert report["messages"] == []
    (render,) = report["renders"]
    assert render["numbers"]["RENDER_SETTINGS"] == 0, "the master: one file, never one per track"
    assert render["audible"] == ["Guitar", "Bass"]
    assert render["files"] == [render["output"]]
    assert option(world["argv"]()[0], "--mix") == render["output"]
    assert [t["solo"] for t in report["tracks"][:4]] == [0, 0, 1, 0], "the user's solos are back"


def test_render_settings_are_set_for_the_render_and_restored(world, tmp_path):
    scenario = world["scenario"]()
    report = run_lua("darc_generate_drums.lua", scenario, tmp_path, world["env"])
    (render,) = report["renders"]
    assert render["numbers"]["RENDER_BOUNDSFLAG"] == 2  # time selection
    assert render["numbers"]["RENDER_SETTINGS"] == 0  # the master, with the selected track soloed
    assert render["audible"] == ["Guitar"]
    assert render["numbers"]["RENDER_ADDTOPROJ"] == 0
    assert render["strings"]["RENDER_FILE"] == str(world["project"] / "DARC")
    assert render["strings"]["RENDER_FORMAT"] == "evaw"
    assert report["render"]["numbers"] == scenario["render_numbers"]
    assert report["render"]["strings"] == scenario["render_strings"]
    argv = world["argv"]()[0]
    assert option(argv, "--mix") == render["output"]


def test_without_selected_tracks_the_master_is_rendered_without_drums(world, tmp_path):
    scenario = world["scenario"](tracks=[{"name": "Keys"}, {"name": "Drums", "mute": 0}, {"name": "drums overhead"}])
    report = run_lua("darc_generate_drums.lua", scenario, tmp_path, world["env"])
    (render,) = report["renders"]
    assert render["numbers"]["RENDER_SETTINGS"] == 0
    assert render["mutes"] == {"Keys": 0, "Drums": 1, "drums overhead": 1}
    assert [t["mute"] for t in report["tracks"][:3]] == [0, 0, 0]


def test_client_command_keeps_paths_with_spaces_quotes_and_non_ascii(world, tmp_path):
    run_lua("darc_generate_drums.lua", world["scenario"](), tmp_path, world["env"])
    (argv,) = world["argv"]()
    job_dir = world["project"] / "DARC"
    assert argv[:5] == ["client", "--host", "127.0.0.1", "--port", "9123"]
    assert argv[5] == "generate"
    assert option(argv, "--prompt") == str(world["prompt"])
    assert option(argv, "--out-dir") == str(job_dir)
    assert option(argv, "--temperature") == "0.80"
    assert option(argv, "--rhythm-strength") == "1.50"
    assert Path(option(argv, "--status-file")).parent == job_dir
    assert re.fullmatch(r"[0-9a-f-]{36}", option(argv, "--job-id"))
    assert "--wait" in argv


def test_windows_command_line_survives_the_windows_argument_rules(tmp_path):
    args = ["C:\\Program Files\\darc\\darc-bridge.exe", "a \"quoted\" word", "trailing\\", "ü ß 漢字", "",
            "back\\\\\"slash", "C:\\Users\\Me\\My Song\\"]
    driver = tmp_path / "quote.lua"
    driver.write_text(
        f"reaper = {{}}\nlocal darc = dofile({lua_value(str(SCRIPTS / 'darc_common.lua'))})\n"
        f"io.write(darc.command_line({lua_value(args)}, true))\n", encoding="utf-8")
    out = subprocess.run([LUA, str(driver)], capture_output=True, timeout=30, check=True).stdout.decode("utf-8")
    assert parse_windows_command_line(out) == args


def test_a_failed_job_shows_a_message_and_changes_nothing(world, tmp_path):
    scenario = world["scenario"]()
    report = run_lua("darc_generate_drums.lua", scenario, tmp_path, {**world["env"], "FAKE_CLIENT_MODE": "error"})
    (message,) = report["messages"]
    assert "bad_input" in message and "mix is silent" in message
    assert [t["name"] for t in report["tracks"]] == ["Guitar", "Bass", "Drums"]
    assert all(not t["items"] for t in report["tracks"])
    assert report["undo"] == []
    assert report["render"]["numbers"] == scenario["render_numbers"]
    assert report["ext"]["DARC/active_job"] == ""


def test_without_a_time_selection_nothing_runs(world, tmp_path):
    report = run_lua("darc_generate_drums.lua", world["scenario"](time_selection=[3.0, 3.0]), tmp_path, world["env"])
    (message,) = report["messages"]
    assert "time selection" in message
    assert report["renders"] == [] and report["exec"] == [] and report["undo"] == []
    assert "GetSetProjectInfo" not in report["log"]


def test_a_missing_client_is_reported_from_its_exit_code(world, tmp_path):
    scenario = world["scenario"]()
    scenario["ext"]["DARC/client"] = str(tmp_path / "no such darc-bridge")
    report = run_lua("darc_generate_drums.lua", scenario, tmp_path, world["env"])
    (message,) = report["messages"]
    assert "exited (code 127)" in message and "Settings" in message
    assert all(not t["items"] for t in report["tracks"])


def test_progress_is_shown_while_the_client_works(world, tmp_path):
    scenario = world["scenario"](exec_foreground=False, real_sleep=0.05, defer_step=0.05)
    report = run_lua("darc_generate_drums.lua", scenario, tmp_path, {**world["env"], "FAKE_CLIENT_MODE": "slow"})
    assert "generate 50%" in report["gfx_text"]
    assert report["defer_rounds"] > 3, "REAPER was never blocked: the status was polled from defer"
    assert report["tracks"][-1]["items"][0]["position"] == 12.5


def test_a_terminated_script_frees_the_running_mark(world, tmp_path):
    scenario = world["scenario"](exec_foreground=False, max_rounds=2)
    report = run_lua("darc_generate_drums.lua", scenario, tmp_path, {**world["env"], "FAKE_CLIENT_MODE": "slow"},
                     finished=False)
    assert report["defer_left"] == 1
    assert report["ext"]["DARC/active_job"] == ""
    status_file = Path(option(wait_for_argv(world), "--status-file"))
    deadline = time.monotonic() + 10
    while not (status_file.exists() and '"done"' in status_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)  # let the background stand-in client finish before the test ends


def wait_for_argv(world) -> list[str]:
    deadline = time.monotonic() + 10
    while not world["argv"]() and time.monotonic() < deadline:
        time.sleep(0.05)
    return world["argv"]()[0]


def test_a_second_generate_while_one_runs_is_refused(world, tmp_path):
    scenario = world["scenario"]()
    scenario["ext"]["DARC/active_job"] = "job-in-flight"
    report = run_lua("darc_generate_drums.lua", scenario, tmp_path, world["env"])
    assert "already running" in report["messages"][0]
    assert report["renders"] == [] and report["exec"] == []


def test_set_rhythm_prompt_uses_a_whole_item_as_is(world, tmp_path):
    source = tone(tmp_path / "tap ü.wav", 1.5)
    scenario = world["scenario"](proj_ext={}, selected_items=[{"file": str(source)}])
    report = run_lua("darc_set_rhythm_prompt.lua", scenario, tmp_path, world["env"])
    assert report["proj_ext"]["DARC/prompt"] == str(source)
    assert report["renders"] == [] and report["messages"] == []


def test_set_rhythm_prompt_renders_a_trimmed_item(world, tmp_path):
    source = tone(tmp_path / "tap.wav", 1.5)
    scenario = world["scenario"](proj_ext={}, selected_items=[{"file": str(source), "startoffs": 0.25, "length": 1.0}])
    report = run_lua("darc_set_rhythm_prompt.lua", scenario, tmp_path, world["env"])
    (render,) = report["renders"]
    assert (render["numbers"]["RENDER_SETTINGS"], render["numbers"]["RENDER_BOUNDSFLAG"]) == (32, 4)
    assert report["proj_ext"]["DARC/prompt"] == render["output"]
    assert report["render"]["numbers"] == scenario["render_numbers"]


def test_set_rhythm_prompt_refuses_midi(world, tmp_path):
    scenario = world["scenario"](proj_ext={}, selected_items=[{"file": str(world["mix"]), "midi": True}])
    report = run_lua("darc_set_rhythm_prompt.lua", scenario, tmp_path, world["env"])
    assert "not audio" in report["messages"][0]
    assert "DARC/prompt" not in report["proj_ext"]


def test_record_prompt_sets_the_recording_as_prompt(world, tmp_path):
    scenario = world["scenario"](proj_ext={}, user_inputs=None, tempo=96)
    report = run_lua("darc_record_prompt.lua", scenario, tmp_path, world["env"])
    (argv,) = world["argv"]()
    assert argv[5:9] == ["record", "--seconds", "8.00", "--count-in"]
    assert option(argv, "--bpm") == "96.00"
    assert Path(report["proj_ext"]["DARC/prompt"]).is_file()
    assert report["messages"] == []


def test_cancel_sends_the_active_job_id(world, tmp_path):
    scenario = world["scenario"]()
    scenario["ext"]["DARC/active_job"] = "1234-abcd"
    report = run_lua("darc_cancel.lua", scenario, tmp_path, world["env"])
    assert report["messages"] == []
    assert world["argv"]() == [["client", "--host", "127.0.0.1", "--port", "9123", "cancel", "1234-abcd"]]
    idle = run_lua("darc_cancel.lua", world["scenario"](), tmp_path, world["env"])
    assert "No DARC generation" in idle["messages"][0]


def test_settings_are_validated_then_kept(world, tmp_path):
    good = world["scenario"](ext={}, user_inputs="10.0.0.2,9500,0.5,2,/opt/darc/bin/darc-bridge,s3cret,n,y")
    report = run_lua("darc_settings.lua", good, tmp_path)
    assert report["ext"] == {"DARC/host": "10.0.0.2", "DARC/port": "9500", "DARC/temperature": "0.5",
                             "DARC/rhythm_strength": "2", "DARC/client": "/opt/darc/bin/darc-bridge",
                             "DARC/token": "s3cret", "DARC/midi": "0", "DARC/stems": "split", "DARC/kit": ""}
    bad = world["scenario"](ext={}, user_inputs="localhost,9500,7,1,darc-bridge,,y,n")
    report = run_lua("darc_settings.lua", bad, tmp_path)
    assert "Temperature must be a number from 0 to 5" in report["messages"][0]
    assert not report["ext"], "nothing is saved when a value is refused"
    bad = world["scenario"](ext={}, user_inputs="localhost,9500,1,1,darc-bridge,,maybe,n")
    assert "MIDI track must be y or n" in run_lua("darc_settings.lua", bad, tmp_path)["messages"][0]


def test_settings_show_midi_on_and_split_off_by_default(world, tmp_path):
    scenario = world["scenario"](ext={}, user_inputs_cancel=True)
    report = run_lua("darc_settings.lua", scenario, tmp_path)
    assert not report["ext"] and report["messages"] == []
    driver = tmp_path / "defaults.lua"
    driver.write_text(f"reaper = {{GetExtState = function() return '' end}}\n"
                      f"local darc = dofile({lua_value(str(SCRIPTS / 'darc_common.lua'))})\n"
                      "local s = assert(darc.settings())\nio.write(s.midi, ' ', s.stems, ' [', s.kit, ']')\n",
                      encoding="utf-8")
    out = subprocess.run([LUA, str(driver)], capture_output=True, text=True, timeout=30, check=True).stdout
    assert out == "1 mix []"


KITS = [{"name": "builtin", "format": "builtin", "path": ""},
        {"name": "GMRockKit", "format": "hydrogen", "path": "/usr/share/hydrogen/data/drumkits/GMRockKit"},
        {"name": "FluidR3_GM", "format": "sf2", "path": "/usr/share/sounds/sf2/FluidR3_GM.sf2"}]


def test_settings_offer_a_kit_menu_filled_by_the_client(world, tmp_path):
    scenario = world["scenario"](user_inputs="127.0.0.1,9123,0.8,1.5," + str(world["client"]) + ",,y,n",
                                 menu_choice=4)
    env = {**world["env"], "FAKE_CLIENT_KITS": json.dumps(KITS)}
    report = run_lua("darc_settings.lua", scenario, tmp_path, env)
    assert report["messages"] == []
    assert world["argv"]() == [["client", "--host", "127.0.0.1", "--port", "9123", "kits", "--json"]]
    (menu,) = report["menus"]
    assert menu == "!(daemon default)|builtin (builtin)|GMRockKit (hydrogen)|FluidR3_GM (sf2)"
    assert report["ext"]["DARC/kit"] == "FluidR3_GM"
    assert sorted(p.name for p in tmp_path.glob("darc-*")) == []
    # The kit is then sent with every generation.
    run_lua("darc_generate_drums.lua", world["scenario"](ext={**world["scenario"]()["ext"], **report["ext"]}),
            tmp_path, world["env"])
    assert option(world["argv"]()[-1], "--kit") == "FluidR3_GM"
    # Back to the daemon's own kit.
    again = run_lua("darc_settings.lua", world["scenario"](ext=report["ext"], user_inputs=None, menu_choice=1),
                    tmp_path, env)
    assert again["menus"][0].startswith("(daemon default)|") and "|!FluidR3_GM (sf2)" in again["menus"][0]
    assert again["ext"]["DARC/kit"] == ""


def test_a_kit_list_that_fails_keeps_the_kit(world, tmp_path):
    scenario = world["scenario"](user_inputs=None, menu_choice=2)
    scenario["ext"]["DARC/kit"] = "GMRockKit"
    report = run_lua("darc_settings.lua", scenario, tmp_path, {**world["env"], "FAKE_CLIENT_KITS": "not json"})
    assert "kit list could not be read" in report["messages"][0]
    assert report["ext"]["DARC/kit"] == "GMRockKit" and report["menus"] == []


# ---------------------------------------------------------------- Windows


def windows(world, **changes) -> dict:
    return world["scenario"](os="Win64", **changes)


def test_windows_launch_runs_minimised_through_a_batch_file_that_keeps_every_argument(world, tmp_path):
    report = run_lua("darc_generate_drums.lua", windows(world), tmp_path, world["env"])
    assert report["messages"] == []
    (cmd,) = report["exec"]
    assert report["exec_timeouts"] == [-2], "-1 would leave a console window open for the whole job"
    assert re.fullmatch(r'cmd\.exe /d /s /c ""[^"]+\.cmd""', cmd)
    (argv,) = world["argv"]()
    assert option(argv, "--prompt") == str(world["prompt"]), "quotes, spaces, $ and non-ASCII survive cmd.exe"
    assert option(argv, "--out-dir") == str(world["project"] / "DARC")
    assert report["tracks"][3]["items"][0]["position"] == 12.5
    assert sorted(p.name for p in tmp_path.glob("darc-*")) == [], "the batch file deleted itself"


def test_windows_a_client_that_never_starts_is_reported_at_once(world, tmp_path):
    scenario = windows(world)
    scenario["ext"]["DARC/client"] = str(tmp_path / "no such" / "darc-bridge.exe")
    report = run_lua("darc_generate_drums.lua", scenario, tmp_path, world["env"])
    (message,) = report["messages"]
    assert "exited (code 9009)" in message and "is not recognized" in message
    assert report["defer_rounds"] < 5, "not after a 30 s timeout"


def test_windows_cancel_is_minimised_and_leaves_nothing(world, tmp_path):
    scenario = windows(world)
    scenario["ext"]["DARC/active_job"] = "1234-abcd"
    report = run_lua("darc_cancel.lua", scenario, tmp_path, world["env"])
    assert report["exec_timeouts"] == [-2]
    assert world["argv"]() == [["client", "--host", "127.0.0.1", "--port", "9123", "cancel", "1234-abcd"]]
    assert sorted(p.name for p in tmp_path.glob("darc-*")) == []


@pytest.mark.parametrize("arg", ["a & b", "100%", "%PATH%", "x^y", "say \"hi\" & (run) | <in> !bang!",
                                 "C:\\Users\\Me & You\\My Song\\", "ü ß 漢字", "", "tab\there"])
def test_windows_batch_lines_pass_cmd_metacharacters_through(tmp_path, arg):
    argv = ["C:\\Program Files (x86)\\darc 100%\\darc-bridge.exe", "client", arg, "--out", arg]
    driver = tmp_path / "batch.lua"
    driver.write_text(
        f"reaper = {{}}\nlocal darc = dofile({lua_value(str(SCRIPTS / 'darc_common.lua'))})\n"
        f"io.write(assert(darc.batch_command({lua_value(argv)})))\n", encoding="utf-8")
    line = subprocess.run([LUA, str(driver)], capture_output=True, timeout=30, check=True).stdout.decode("utf-8")
    text, redirects = fake_cmd.parse_batch_line(fake_cmd.expand_percent(line, 0, tmp_path / "x.cmd"))
    assert redirects == {}
    assert fake_cmd.command_line_to_argv(text) == argv


def test_windows_batch_lines_refuse_a_line_break(tmp_path):
    driver = tmp_path / "batch.lua"
    driver.write_text(
        f"reaper = {{}}\nlocal darc = dofile({lua_value(str(SCRIPTS / 'darc_common.lua'))})\n"
        "local line, err = darc.batch_command({'x.exe', 'a\\nb'})\nio.write(tostring(line), ' ', err)\n",
        encoding="utf-8")
    out = subprocess.run([LUA, str(driver)], capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.startswith("nil ") and "line break" in out


def test_reapack_headers_and_index_list_every_script():
    root = ElementTree.parse(REPO / "reaper_scripts" / "index.xml").getroot()
    (package,) = root.iter("reapack")
    (ver,) = package.iter("version")
    sources = {s.get("file") or package.get("name"): s for s in ver.iter("source")}
    main = (SCRIPTS / "darc_generate_drums.lua").read_text(encoding="utf-8")
    version = re.search(r"^-- @version (\S+)", main, re.M).group(1)
    provided = re.findall(r"^--   \[(?:main|nomain)\] (\S+)", main, re.M)
    scripts = sorted(p.name for p in SCRIPTS.glob("*.lua"))
    assert sorted([*provided, "darc_generate_drums.lua"]) == scripts
    assert sorted(sources) == scripts
    assert ver.get("name") == version
    for name in scripts:
        text = (SCRIPTS / name).read_text(encoding="utf-8")
        if name != "darc_common.lua":
            assert re.search(rf"^-- @version {re.escape(version)}$", text, re.M), name
            assert re.search(r"^-- @description DARC: ", text, re.M), name
            assert sources[name].get("main") == "main", name
        assert sources[name].text.endswith(f"/reaper_scripts/DARC/{name}")


def test_reapack_index_is_generated_from_the_scripts_with_an_rtf_about():
    from darc_bridge.daw import reapack

    assert reapack.main(["--check"]) == 0
    root = ElementTree.parse(REPO / "reaper_scripts" / "index.xml").getroot()
    (description,) = root.iter("description")
    assert description.text.startswith("{\\rtf1") and description.text.endswith("}"), "ReaPack on macOS shows RTF"
    assert "MIDI track" in description.text
    repository = reapack.repository_url()
    assert all(s.text.startswith(repository + "/raw/main/reaper_scripts/DARC/") for s in root.iter("source"))
    assert reapack.rtf(["a {b} \\ ü", "", "next"]) == (
        "{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0\\fswiss Helvetica;}}\\f0\\fs20 a \\{b\\} \\\\ \\u252?\\par\\par next\\par}")


def test_reapack_local_index_points_at_this_checkout(tmp_path):
    from darc_bridge.daw import reapack

    out = tmp_path / "index.xml"
    assert reapack.main(["--local", str(out)]) == 0
    sources = [s.text for s in ElementTree.parse(out).getroot().iter("source")]
    assert sources and all(s.startswith("file://") for s in sources)
    assert all(Path(s[len("file://"):]).is_file() for s in sources)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_generate_against_the_real_daemon_through_the_real_client(tmp_path):
    from darc_bridge.audio.music import synth_drumless_mix
    from darc_bridge.audio.prompts import random_pattern, synth_prompt

    sr = 22050
    mix, _beats, _downbeats = synth_drumless_mix(3.0, bpm=120, sample_rate=sr, seed=1)
    mix_path = tmp_path / "mix.wav"
    sf.write(mix_path, mix.T, sr)
    prompt_path = tmp_path / "beat box é.wav"
    sf.write(prompt_path, synth_prompt(random_pattern(2.0, 120, seed=2), 2.0, sample_rate=sr, seed=2), sr)
    project = tmp_path / "Song ü"
    project.mkdir()
    port = free_udp_port()
    client = Path(sys.executable).with_name("darc-bridge")
    assert client.exists(), "the darc-bridge entry point is not installed in this environment"
    daemon_log = tmp_path / "daemon.log"
    with open(daemon_log, "w") as log:
        daemon = subprocess.Popen(
            [str(client), "serve", "--engine", "kit", "--port", str(port), "--state-dir", str(tmp_path / "state"),
             "--output-dir", str(tmp_path / "out"), "--no-warmup"], stdout=log, stderr=subprocess.STDOUT)
    try:
        ready = subprocess.run([str(client), "client", "--port", str(port), "--timeout", "2", "--retries", "15", "ping"],
                               capture_output=True, text=True, timeout=60)
        assert ready.returncode == 0, ready.stderr + daemon_log.read_text()[-3000:]
        scenario = {
            "os": "Linux", "project_file": str(project / "Song.rpp"), "project_path": str(project),
            "time_selection": [4.0, 7.0],
            "tracks": [{"name": "Band", "selected": True}],
            "ext": {"DARC/client": str(client), "DARC/port": str(port), "DARC/temperature": "0.5"},
            "proj_ext": {"DARC/prompt": str(prompt_path)},
            "render_numbers": {"RENDER_SETTINGS": 0}, "render_strings": {"RENDER_FILE": "", "RENDER_PATTERN": ""},
            "render_source": str(mix_path), "real_sleep": 0.1, "defer_step": 0.1, "max_rounds": 900,
        }
        report = run_lua("darc_generate_drums.lua", scenario, tmp_path, {"TMPDIR": str(tmp_path)}, timeout=150)
        assert report["messages"] == [], (report["messages"], daemon_log.read_text()[-3000:])
        assert [t["name"] for t in report["tracks"]] == ["Band", "Drums", "Drums MIDI"]
        new = report["tracks"][1]
        assert new["inserted"]
        (item,) = new["items"]
        assert item["position"] == 4.0
        assert Path(item["file"]).parent == project / "DARC"
        stem, stem_sr = sf.read(item["file"])
        assert stem.shape[0] / stem_sr == pytest.approx(3.0, abs=0.05)
        assert np.max(np.abs(stem)) > 0.01, "the kit engine wrote a silent stem"
        assert item["length"] == pytest.approx(3.0, abs=0.05)
        (midi,) = report["tracks"][2]["items"]
        assert midi["midi"] and midi["position"] == 4.0 and midi["notes"], "the daemon's MIDI file became notes"
        assert all(0 <= n["on"] < 3.0 * 2 * 960 and n["chan"] == 9 for n in midi["notes"])
        assert {n["pitch"] for n in midi["notes"]} <= {36, 38, 42, 46, 45, 49, 51, 39}
        assert report["undo"] == ["begin", "end:DARC: insert drum stem"]
        assert set(report["render"]["numbers"].values()) == {0}, "the user's render settings are back"
        assert report["render"]["strings"]["RENDER_FILE"] == ""
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def test_read_midi_reads_the_files_the_daemon_writes(tmp_path):
    from darc_bridge.rhythm.features import Onset
    from darc_bridge.rhythm.midi import velocity_of, write_midi_atomic

    onsets = [Onset(0.0, 0, 1.0), Onset(0.37, 2, 0.3), Onset(0.75, 1, 0.8), Onset(1.5, 0, 0.55)]
    midi = write_midi_atomic(tmp_path / "drums ü.mid", onsets, tempo=97.0)
    driver = tmp_path / "midi.lua"
    driver.write_text(
        f"reaper = {{}}\nlocal darc = dofile({lua_value(str(SCRIPTS / 'darc_common.lua'))})\n"
        f"local notes = assert(darc.read_midi({lua_value(str(midi))}))\n"
        "for _, n in ipairs(notes) do io.write(string.format('%d %.6f %d %.6f\\n', n.pitch, n.sec, n.velocity, n.dur)) end\n"
        "io.write(tostring(darc.read_midi('" + str(tmp_path / "missing.mid") + "')))\n", encoding="utf-8")
    out = subprocess.run([LUA, str(driver)], capture_output=True, text=True, timeout=30, check=True).stdout.split("\n")
    rows = [line.split() for line in out[:-1]]
    assert [int(r[0]) for r in rows] == [36, 42, 38, 36]
    assert [int(r[2]) for r in rows] == [velocity_of(o.strength) for o in onsets]
    assert [float(r[1]) for r in rows] == pytest.approx([o.time for o in onsets], abs=1.5e-3)
    assert all(float(r[3]) > 0 for r in rows)
    assert out[-1] == "nil", "a missing file is refused, not a crash"
