"""The Max for Live device: its patcher is valid and wired to the JavaScript, the committed .amxd
matches its source, and the JavaScript behaves under node with fakes of Max and Live."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from darc_bridge.daw import build_m4l

REPO = Path(__file__).resolve().parents[1]
JS = REPO / "max_for_live" / "darc_drums.js"
PROTOCOL = REPO / "docs" / "protocol.md"


@pytest.fixture(scope="module")
def patcher() -> dict:
    return build_m4l.load_patcher()["patcher"]


@pytest.fixture(scope="module")
def js_source() -> str:
    return JS.read_text(encoding="utf-8")


def boxes_by(patcher: dict, key: str) -> dict[str, dict]:
    return {b["box"][key]: b["box"] for b in patcher["boxes"] if key in b["box"]}


def by_text(patcher: dict, first_word: str) -> list[dict]:
    return [b["box"] for b in patcher["boxes"] if b["box"].get("text", "").split(" ")[:1] == [first_word]]


def links(patcher: dict) -> set[tuple[str, int, str, int]]:
    return {(*ln["patchline"]["source"], *ln["patchline"]["destination"]) for ln in patcher["lines"]}


def js_box(patcher: dict) -> dict:
    (box,) = by_text(patcher, "js")
    return box


def js_number(source: str, name: str) -> int:
    m = re.search(rf"^var {name} = (\d+);", source, re.M)
    assert m, f"{name} not found in darc_drums.js"
    return int(m.group(1))


def protocol_ranges() -> dict[str, tuple[float, float]]:
    """`key | type | lo–hi | ...` rows of the /darc/generate options table."""
    ranges = {}
    for m in re.finditer(r"^\| `(\w+)` \| f \| ([\d.]+)–([\d.]+) \|", PROTOCOL.read_text(encoding="utf-8"), re.M):
        ranges[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return ranges


def test_committed_device_matches_its_source():
    assert build_m4l.main(["--check"]) == 0


def test_device_chunks_hold_an_audio_effect_and_the_patcher(patcher):
    chunks = build_m4l.read_device(build_m4l.DEVICE.read_bytes())
    assert list(chunks) == ["ampf", "meta", "ptch"]
    assert chunks["ampf"] == b"aaaa"
    assert json.loads(chunks["ptch"].rstrip(b"\x00").decode("utf-8"))["patcher"] == patcher


def test_check_fails_when_the_source_changes(tmp_path, patcher):
    source = tmp_path / "edited.maxpat"
    edited = {"patcher": dict(patcher, rect=[0.0, 0.0, 1.0, 1.0])}
    source.write_text(json.dumps(edited), encoding="utf-8")
    assert build_m4l.main(["--check", "--source", str(source)]) == 1
    device = tmp_path / "out.amxd"
    assert build_m4l.main(["--source", str(source), "--device", str(device)]) == 0
    assert build_m4l.main(["--check", "--source", str(source), "--device", str(device)]) == 0


def test_build_refuses_a_line_to_a_missing_inlet(tmp_path, patcher):
    broken = json.loads(json.dumps(patcher))
    broken["lines"].append({"patchline": {"source": ["obj-js", 0], "destination": ["obj-udpsend", 5]}})
    source = tmp_path / "broken.maxpat"
    source.write_text(json.dumps({"patcher": broken}), encoding="utf-8")
    device = tmp_path / "broken.amxd"
    assert build_m4l.main(["--source", str(source), "--device", str(device)]) == 2
    assert not device.exists()


def test_every_named_object_the_script_addresses_exists(patcher, js_source):
    block = re.search(r"var NAMED = \{(.*?)\};", js_source, re.S).group(1)
    names = re.findall(r':\s*"(\w+)"', block)
    assert {"status", "connected", "temperature", "rhythm_strength"} <= set(names)
    varnames = boxes_by(patcher, "varname")
    missing = [n for n in names if n not in varnames]
    assert not missing, f"darc_drums.js addresses objects missing from the patcher: {missing}"
    assert varnames["status"]["maxclass"] == "comment"
    assert varnames["connected"]["maxclass"] == "led"


def test_every_message_sent_to_the_script_is_a_function_in_it(patcher, js_source):
    box = js_box(patcher)
    into_js = [s for (s, _o, d, _i) in links(patcher) if d == box["id"]]
    boxes = boxes_by(patcher, "id")
    selectors = set()
    for src in into_js:
        b = boxes[src]
        if b["maxclass"] == "message":
            selectors.add(b["text"].split()[0])
        elif b.get("text", "").startswith("prepend "):
            selectors.add(b["text"].split()[1])
    assert {"generate", "cancel", "prompt_file", "prompt_source", "region_source"} <= selectors
    for name in selectors:
        assert re.search(rf"^function {name}\(", js_source, re.M), f"darc_drums.js has no function {name}"
    sources = {boxes[s]["maxclass"] if boxes[s]["maxclass"] != "newobj" else boxes[s]["text"].split()[0]
               for s in into_js}
    assert {"live.thisdevice", "udpreceive"} <= sources
    assert re.search(r"^function (bang|anything)\(", js_source, re.M)


def test_script_outlets_reach_udpsend_and_the_recorder(patcher, js_source):
    box = js_box(patcher)
    assert box["text"] == f"js {JS.name}"
    n_outlets = int(re.search(r"^outlets = (\d+);", js_source, re.M).group(1))
    assert box["numoutlets"] == n_outlets
    boxes = boxes_by(patcher, "id")
    targets = {o: boxes[d]["text"].split()[0] for (s, o, d, _i) in links(patcher) if s == box["id"]}
    assert targets[js_number(js_source, "OUT_OSC")] == "udpsend"
    assert targets[js_number(js_source, "OUT_RECORDER")] == "sfrecord~"
    (plugin,) = by_text(patcher, "plugin~")
    (record,) = by_text(patcher, "sfrecord~")
    assert {(plugin["id"], 0, record["id"], 0), (plugin["id"], 1, record["id"], 1)} <= links(patcher)


def test_udp_ports_match_the_protocol(patcher, js_source):
    default = re.search(r"by default on\s+`([\d.]+):(\d+)`", PROTOCOL.read_text(encoding="utf-8"))
    (send,) = by_text(patcher, "udpsend")
    (recv,) = by_text(patcher, "udpreceive")
    assert send["text"].split()[1:3] == [default.group(1), default.group(2)]
    assert js_number(js_source, "DAEMON_PORT") == int(default.group(2))
    daemon_port = int(default.group(2))
    reply = js_number(js_source, "DEFAULT_REPLY_PORT")
    assert recv["text"].split()[1] == str(reply)
    assert reply != daemon_port
    assert "@defer 1" in recv["text"]


def test_script_retunes_udpreceive_to_a_per_device_port_range(patcher, js_source):
    """Each device moves [udpreceive] (by scripting name) into its own port range, clear of the
    daemon's port and of the patcher's default, so two devices do not collide."""
    (recv,) = by_text(patcher, "udpreceive")
    named = dict(re.findall(r'(\w+):\s*"(\w+)"', re.search(r"var NAMED = \{(.*?)\};", js_source, re.S).group(1)))
    assert named["oscIn"] == recv["varname"]
    base, span = js_number(js_source, "REPLY_PORT_BASE"), js_number(js_source, "REPLY_PORT_SPAN")
    ports = range(base, base + span)
    assert span >= 100 and ports[-1] <= 65535
    assert js_number(js_source, "DAEMON_PORT") not in ports
    assert js_number(js_source, "DEFAULT_REPLY_PORT") not in ports


def test_dials_are_parameters_with_the_protocol_ranges(patcher):
    ranges = protocol_ranges()
    assert {"temperature", "rhythm_strength"} <= set(ranges)
    varnames = boxes_by(patcher, "varname")
    for key in ("temperature", "rhythm_strength"):
        dial = varnames[key]
        assert dial["maxclass"] == "live.dial"
        assert dial["parameter_enable"] == 1
        v = dial["saved_attribute_attributes"]["valueof"]
        assert (v["parameter_mmin"], v["parameter_mmax"]) == ranges[key]
        assert v["parameter_type"] == 0  # float
        assert v["parameter_invisible"] == 0  # automatable
        assert v["parameter_initial"] == [1.0]
        assert dial["id"] in patcher["parameters"]


def test_max_finds_the_script_in_the_device_folder(patcher):
    """Max looks a device's files up in the folder holding the device (not its subfolders): the
    script the [js] box names, and the device's dependency list, must point there."""
    name = js_box(patcher)["text"].split()[1]
    assert (build_m4l.DEVICE.parent / name).is_file()
    assert patcher["dependency_cache"] == [{"name": name, "patcherrelativepath": ".", "type": "TEXT", "implicit": 1}]
    assert not list(build_m4l.DEVICE.parent.glob("*/*.js")), "a script in a subfolder would never be found"


def test_generate_and_cancel_are_not_automatable(patcher):
    varnames = boxes_by(patcher, "varname")
    for key in ("generate_button", "cancel_button", "pick_button"):
        assert varnames[key]["saved_attribute_attributes"]["valueof"]["parameter_invisible"] == 2, key


def test_minimum_live_version_is_the_one_the_script_needs(patcher, js_source):
    wanted = re.search(r"^var MIN_LIVE = \[(\d+), (\d+), (\d+)\];", js_source, re.M).groups()
    assert patcher["minimum_live_version"] == ".".join(wanted) == "12.0.5"


def test_choices_made_at_run_time_are_kept_in_stored_pattr_objects(patcher):
    """Menus whose items the script sets are restored by Live only as an index: the names live in
    pattr objects stored with the set (parameter mode, blob type, not automatable)."""
    varnames = boxes_by(patcher, "varname")
    for key in ("prompt_track_store", "kit_store"):
        box = varnames[key]
        assert box["text"] == f"pattr {key}"
        v = box["saved_attribute_attributes"]["valueof"]
        assert box["parameter_enable"] == 1 and v["parameter_type"] == 3 and v["parameter_invisible"] == 1
    for key, initial in (("midi_out", 1), ("split_stems", 0)):
        v = varnames[key]["saved_attribute_attributes"]["valueof"]
        assert v["parameter_initial"] == [initial], key


def test_displays_the_script_updates_are_not_parameters(patcher):
    varnames = boxes_by(patcher, "varname")
    for key in ("status", "connected"):
        assert not varnames[key].get("parameter_enable")
    assert varnames["prompt_track"]["saved_attribute_attributes"]["valueof"]["parameter_invisible"] != 0


def test_javascript_behaviour_under_node():
    node = shutil.which("node")
    assert node, "node (v18+) is needed to test the Max for Live JavaScript"
    tests = sorted(str(p) for p in (REPO / "tests" / "js").glob("test_*.js"))
    assert tests
    proc = subprocess.run([node, "--test", *tests], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    passed = int(re.search(r"^# pass (\d+)", proc.stdout, re.M).group(1))
    assert passed >= 40


def test_javascript_stays_within_what_max_js_runs(js_source):
    """Max's classic [js] object is ES5: no let/const, arrow functions, classes or template strings."""
    code = re.sub(r"//[^\n]*|\"(?:[^\"\\]|\\.)*\"", "", js_source)
    for pattern, what in [(r"\blet\s", "let"), (r"\bconst\s", "const"), (r"=>", "arrow functions"),
                          (r"`", "template strings"), (r"\bclass\s", "classes"), (r"\brequire\(", "require")]:
        assert not re.search(pattern, code), f"darc_drums.js uses {what}, which Max's js object does not run"


def test_the_device_reads_the_midi_files_the_daemon_writes(tmp_path):
    """The daemon's own MIDI writer (mido) against the device's reader, under node: every hit comes
    back with its GM note, time (through the file's tempo) and velocity."""
    from darc_bridge.rhythm.features import Onset
    from darc_bridge.rhythm.midi import velocity_of, write_midi_atomic

    node = shutil.which("node")
    assert node
    onsets = [Onset(0.0, 0, 1.0), Onset(0.37, 2, 0.3), Onset(0.75, 1, 0.8), Onset(1.5, 0, 0.55)]
    midi = write_midi_atomic(tmp_path / "drums ü.mid", onsets, tempo=97.0)
    script = tmp_path / "read.js"
    script.write_text(
        f"const {{ loadDevice }} = require({json.dumps(str(REPO / 'tests' / 'js' / 'max_fakes.js'))});\n"
        "const d = loadDevice({ song: { tracks: [], view: {} } });\n"
        f"const notes = d.ctx.parseMidi(d.ctx.readBytes({json.dumps(str(midi))}));\n"
        "process.stdout.write(JSON.stringify(notes));\n", encoding="utf-8")
    out = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60, check=True).stdout
    notes = json.loads(out)
    assert [n["pitch"] for n in notes] == [36, 42, 38, 36]
    assert [n["velocity"] for n in notes] == [velocity_of(o.strength) for o in onsets]
    assert [n["sec"] for n in notes] == pytest.approx([o.time for o in onsets], abs=1.5e-3)  # tick rounding
    assert all(n["dur"] > 0 for n in notes)


def _device_script(tmp_path: Path, name: str, body: str) -> Path:
    script = tmp_path / name
    script.write_text(f"const {{ loadDevice }} = require({json.dumps(str(REPO / 'tests' / 'js' / 'max_fakes.js'))});\n"
                      + body, encoding="utf-8")
    return script


def _osc_as_max_sends_it(args: list) -> bytes:
    """An OSC message typed the way Max's [udpsend] types js values: whole numbers as i, others f."""
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder(args[0])
    for a in args[1:]:
        if isinstance(a, str):
            b.add_arg(a, "s")
        elif float(a).is_integer():
            b.add_arg(int(a), "i")
        else:
            b.add_arg(float(a), "f")
    return b.build().dgram


@pytest.mark.slow
def test_the_devices_request_is_served_by_the_real_daemon_and_its_reply_inserted(tmp_path):
    """The device's exact /darc/generate (default options) against the real daemon (kit engine),
    then the daemon's /darc/done fed back: the stem lands in the Live project, the MIDI track holds
    the daemon's notes."""
    import socket

    from pythonosc.osc_packet import OscPacket
    from server_support import make_daemon, write_mix, write_prompt

    node = shutil.which("node")
    assert node
    project = tmp_path / "My Song Project"
    (project / "Ableton Project Info").mkdir(parents=True)
    (project / "Ableton Project Info" / "Project8_1.cfg").write_text("x")
    (project / "Samples" / "Recorded").mkdir(parents=True)
    mix = write_mix(project / "Samples" / "Recorded" / "band ü.wav", seconds=3.0)
    prompt = write_prompt(tmp_path / "tap.wav", seconds=2.0)
    spec = {"devicePath": "live_set tracks 0 devices 0", "song": {
        "tempo": 120, "view": {"detail_clip": "live_set tracks 0 arrangement_clips 0"},
        "tracks": [{"name": "Band", "clip_slots": [{}], "devices": [{"id": 7}], "arrangement_clips": [{
            "file_path": str(mix), "is_audio_clip": 1, "warping": 0, "looping": 0, "start_marker": 0.5,
            "end_marker": 2.5, "loop_start": 0.5, "loop_end": 2.5, "start_time": 8, "name": "Band"}]}]}}
    common = (f"const spec = {json.dumps(spec)};\nconst d = loadDevice(spec);\nd.start();\n"
              f"d.send('prompt_file', {json.dumps(str(prompt))});\nd.send('generate');\n"
              "const msg = d.osc().find((m) => m[0] === '/darc/generate');\n")
    out = subprocess.run([node, str(_device_script(tmp_path, "request.js", common + "process.stdout.write(JSON.stringify(msg));\n"))],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    request = json.loads(out)
    daemon = make_daemon(tmp_path / "daemon").start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(60)
            request[2] = sock.getsockname()[1]  # the device listens on its own port; here: ours
            sock.sendto(_osc_as_max_sends_it(request), ("127.0.0.1", daemon.port))
            while True:
                msg = OscPacket(sock.recvfrom(65535)[0]).messages[0].message
                assert msg.address != "/darc/error", (list(msg.params), daemon.stderr()[-2000:])
                if msg.address == "/darc/done":
                    done = list(msg.params)
                    break
    finally:
        daemon.stop()
    stem, midi = done[1], done[2]
    assert Path(stem).parent == project / "Samples", "the stem went into the Live project"
    assert midi and Path(midi).is_file()
    feed = (common + f"d.send('/darc/done', msg[1], ...{json.dumps(done[1:])});\nd.runTasks();\n"
            "process.stdout.write(JSON.stringify({tracks: d.live.song.tracks, status: d.status(), "
            "errors: d.live.errors, violations: d.live.violations}));\n")
    result = json.loads(subprocess.run([node, str(_device_script(tmp_path, "insert.js", feed))],
                                       capture_output=True, text=True, timeout=60, check=True).stdout)
    assert result["status"].startswith("Done: ") and "in the project" in result["status"], result["status"]
    assert result["errors"] == [] and result["violations"] == []
    names = [t["name"] for t in result["tracks"]]
    assert names == ["Band", "DARC Drums", "DARC MIDI"]
    (stem_clip,) = result["tracks"][1]["arrangement_clips"]
    assert stem_clip["file_path"] == stem and stem_clip["start_time"] == 8 and stem_clip["warping"] == 0
    (clip,) = result["tracks"][2]["arrangement_clips"]
    assert clip["start_time"] == 8 and clip["length"] == pytest.approx(4.0)  # 2 s at 120 bpm
    assert clip["notes"], "the daemon's MIDI file became notes"
    assert all(0 <= n["start_time"] < 4.0 and n["pitch"] in (36, 38, 42, 46, 45, 49, 51, 39) for n in clip["notes"])
