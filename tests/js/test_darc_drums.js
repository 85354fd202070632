// Behaviour of darc_drums.js under node with fakes of Max and Live (run: node --test tests/js).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { loadDevice } = require("./max_fakes");

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DEVICE_ID = 42; // the Live API id of the device in arrangementSet()
const PORT = 9100 + DEVICE_ID; // its reply port: 9100 + (id % 800)

// Two tracks; the device sits on track 1; the Detail view shows a warped arrangement clip on track 0
// whose warp markers put beat 0 at 0.5 s and beat 16 at 8.5 s in its file (0.5 s per beat).
function arrangementSet(overrides = {}) {
  const clip = Object.assign({
    name: "Verse", file_path: "/Users/me/My Song/Samples/mix ü.wav", is_audio_clip: 1, warping: 1,
    looping: 0, start_marker: 4, end_marker: 12, length: 8, start_time: 32, sample_rate: 44100,
    sample_length: 44100 * 20,
    warp_markers: [{ beat_time: 0, sample_time: 0.5 }, { beat_time: 16, sample_time: 8.5 }],
  }, overrides);
  return {
    devicePath: "live_set tracks 1 devices 0",
    song: {
      tempo: 120, loop_start: 16, loop_length: 8, current_song_time: 0,
      view: { detail_clip: "live_set tracks 0 arrangement_clips 0" },
      tracks: [
        { name: "Band", arrangement_clips: [clip], clip_slots: [{}, {}, {}, {}] },
        { name: "DARC", arrangement_clips: [], clip_slots: [{}, {}, {}, {}], devices: [{ name: "DARC Drums", id: DEVICE_ID }] },
      ],
    },
    dials: { temperature: 0.7, rhythm_strength: 1.5 },
  };
}

function started(spec) {
  const d = loadDevice(spec);
  d.start();
  return d;
}

function generateMessage(d) {
  const msgs = d.osc().filter((m) => m[0] === "/darc/generate");
  assert.equal(msgs.length, 1, "exactly one generate request");
  return msgs[0];
}

test("the script addresses only objects that exist in the patcher", () => {
  const d = started(arrangementSet());
  d.send("prompt_file", "Macintosh HD:/Users/me/beat box.wav");
  d.send("generate");
  d.send("/darc/done", generateMessage(d)[1], "/tmp/stem.wav", "", 4.0, 44100);
  d.runTasks();
  assert.deepEqual(d.patcher.missing, []);
  assert.deepEqual(d.live.violations, []);
});

test("Generate sends the generate request with region seconds, prompt and dial values", () => {
  const d = started(arrangementSet());
  d.send("prompt_file", "Macintosh HD:/Users/me/beat box.wav");
  d.send("generate");
  const msg = generateMessage(d);
  assert.equal(msg[0], "/darc/generate");
  assert.match(msg[1], UUID);
  assert.equal(msg[2], PORT);
  assert.equal(msg[3], "/Users/me/My Song/Samples/mix ü.wav");
  assert.equal(msg[4], "/Users/me/beat box.wav");
  const opts = {};
  for (let i = 5; i < msg.length; i += 2) opts[msg[i]] = msg[i + 1];
  assert.equal(opts.temperature, 0.7);
  assert.equal(opts.rhythm_strength, 1.5);
  assert.ok(Math.abs(opts.start - 2.5) < 1e-9, "beat 4 -> 0.5 + 4 * 0.5 s");
  assert.ok(Math.abs(opts.end - 6.5) < 1e-9, "beat 12 -> 0.5 + 12 * 0.5 s");
  assert.match(d.status(), /waiting/);
});

test("a file on another volume becomes a /Volumes path; Windows paths stay", () => {
  const d = started(arrangementSet());
  d.send("prompt_file", "Samples:/loops/tap.wav");
  d.send("generate");
  assert.equal(generateMessage(d)[4], "/Volumes/Samples/loops/tap.wav");
  const w = started(arrangementSet());
  w.send("prompt_file", "C:/Users/me/tap.wav");
  w.send("generate");
  assert.equal(generateMessage(w)[4], "C:/Users/me/tap.wav");
});

test("an unwarped clip's markers are read as seconds", () => {
  const d = started(arrangementSet({ warping: 0, start_marker: 1.25, end_marker: 5.75, length: 9 }));
  d.send("generate");
  const msg = generateMessage(d);
  assert.equal(msg[4], "", "no prompt: empty string");
  assert.equal(msg[msg.indexOf("start") + 1], 1.25);
  assert.equal(msg[msg.indexOf("end") + 1], 5.75);
});

test("an unwarped clip reporting beats is converted with the song tempo", () => {
  const d = started(arrangementSet({ warping: 0, start_marker: 2, end_marker: 10, length: 8 }));
  d.send("generate");
  const msg = generateMessage(d);
  assert.equal(msg[msg.indexOf("start") + 1], 1.0);
  assert.equal(msg[msg.indexOf("end") + 1], 5.0);
});

test("progress updates the status line; replies for other jobs are ignored", () => {
  const d = started(arrangementSet());
  d.send("generate");
  const id = generateMessage(d)[1];
  d.send("/darc/accepted", id, 0);
  assert.equal(d.status(), "Generating...");
  d.send("/darc/progress", id, "generate", 0.42);
  assert.equal(d.status(), "Generating: generate 42%");
  d.send("/darc/progress", "another-job", "render", 0.99);
  assert.equal(d.status(), "Generating: generate 42%");
});

test("done creates an audio track after the device's and the clip at the region's beat", () => {
  const d = started(arrangementSet());
  d.send("generate");
  const id = generateMessage(d)[1];
  d.send("/darc/done", id, "/Users/me/out/drums 1.wav", "", 4.0, 44100);
  assert.equal(d.live.song.tracks.length, 2, "Live is changed from a Task, not from the OSC reply");
  d.runTasks();
  const tracks = d.live.song.tracks;
  assert.equal(tracks.length, 3);
  const track = tracks[2];
  assert.equal(track.name, "DARC Drums");
  assert.equal(track.arrangement_clips.length, 1);
  const clip = track.arrangement_clips[0];
  assert.equal(clip.file_path, "/Users/me/out/drums 1.wav");
  assert.equal(clip.start_time, 32);
  assert.equal(clip.warping, 0);
  assert.equal(clip.name, "DARC T0.70 R1.50");
  assert.match(d.status(), /^Done: DARC T0.70 R1.50 at beat 32/);
  assert.deepEqual(d.live.violations, []);
});

test("a Session clip's stem goes in the same scene's slot of the new track", () => {
  const spec = arrangementSet();
  spec.song.tracks[0].clip_slots[3] = { clip: spec.song.tracks[0].arrangement_clips[0] };
  spec.song.view.detail_clip = "live_set tracks 0 clip_slots 3 clip";
  const d = started(spec);
  d.send("generate");
  const id = generateMessage(d)[1];
  d.send("/darc/done", id, "/tmp/stem.wav", "", 4.0, 44100);
  d.runTasks();
  const track = d.live.song.tracks[2];
  assert.equal(track.arrangement_clips.length, 0);
  assert.equal(track.clip_slots[3].clip.file_path, "/tmp/stem.wav");
  assert.equal(track.clip_slots[3].clip.warping, 0);
});

test("without Track.create_audio_clip (Live < 12.0.5) the stem goes to Session slot 1", () => {
  const spec = arrangementSet();
  spec.arrangementInsert = false;
  const d = started(spec);
  d.send("generate");
  d.send("/darc/done", generateMessage(d)[1], "/tmp/stem.wav", "", 4.0, 44100);
  d.runTasks();
  assert.equal(d.live.song.tracks[2].clip_slots[0].clip.file_path, "/tmp/stem.wav");
  assert.match(d.status(), /Session slot 1/);
});

test("an error reply is shown and nothing is inserted", () => {
  const d = started(arrangementSet());
  d.send("generate");
  const id = generateMessage(d)[1];
  d.send("/darc/error", id, "bad_input", "mix is silent (peak below -70 dBFS)");
  d.runTasks();
  assert.equal(d.status(), "Error: bad_input: mix is silent (peak below -70 dBFS)");
  assert.equal(d.live.song.tracks.length, 2);
  d.send("generate");
  assert.equal(d.osc().filter((m) => m[0] === "/darc/generate").length, 2, "a new job can start");
});

test("a MIDI clip or no clip is refused with a clear status and no request", () => {
  const d = started(arrangementSet({ is_audio_clip: 0 }));
  d.send("generate");
  assert.match(d.status(), /MIDI clip/);
  const e = loadDevice(arrangementSet());
  e.live.song.view.detail_clip = null;
  e.start();
  e.send("generate");
  assert.match(e.status(), /select an audio clip/);
  assert.equal(d.osc().filter((m) => m[0] === "/darc/generate").length, 0);
});

test("before live.thisdevice bangs, Generate does nothing to Live", () => {
  const d = loadDevice(arrangementSet());
  d.send("generate");
  assert.match(d.status(), /still loading/);
  assert.deepEqual(d.live.violations, []);
  assert.equal(d.osc().length, 0);
});

test("an unanswered request is resent with the same job id, then reported", () => {
  const d = started(arrangementSet());
  d.send("generate");
  d.runTasks();
  assert.equal(d.osc().filter((m) => m[0] === "/darc/generate").length, 1, "no resend before the timeout");
  d.runTasks(Infinity);
  const sent = d.osc().filter((m) => m[0] === "/darc/generate");
  assert.equal(sent.length, 4);
  assert.ok(sent.every((m) => m[1] === sent[0][1]));
  assert.match(d.status(), /daemon not answering/);
});

test("Cancel sends the job id and reply port; a cancelled reply says so", () => {
  const d = started(arrangementSet());
  d.send("generate");
  const id = generateMessage(d)[1];
  d.send("cancel");
  assert.deepEqual(d.osc().pop(), ["/darc/cancel", id, PORT]);
  d.send("/darc/status", id, "cancelled", 0.3, "", "", "cancelled", "");
  assert.equal(d.status(), "Cancelled");
});

test("the connected light follows ping/pong", () => {
  const d = started(arrangementSet());
  d.tickRepeating();
  assert.deepEqual(d.osc().pop(), ["/darc/ping", PORT]);
  d.send("/darc/pong", "0.1.0", "kit", "cpu", 1, 0, 1);
  assert.deepEqual(d.patcher.boxes.connected.last(), [1]);
  for (let i = 0; i < 4; i++) d.tickRepeating();
  assert.deepEqual(d.patcher.boxes.connected.last(), [0]);
});

test("the prompt can come from a track's clip at the region's start", () => {
  const spec = arrangementSet();
  spec.song.tracks.push({
    name: "Beatbox", clip_slots: [],
    arrangement_clips: [
      { is_audio_clip: 1, file_path: "/p/early.wav", start_time: 0, length: 16 },
      { is_audio_clip: 1, file_path: "/p/verse take.wav", start_time: 30, length: 16 },
    ],
  });
  const d = started(spec);
  d.send("prompt_source", 2);
  d.send("prompt_track", 2);
  d.send("generate");
  assert.equal(generateMessage(d)[4], "/p/verse take.wav");
  assert.deepEqual(d.plain(d.patcher.boxes.prompt_track.messages[0]), ["_parameter_range", ["Band", "DARC", "Beatbox"]]);
});

test("Pick takes the Detail view's clip as the prompt", () => {
  const d = started(arrangementSet());
  d.send("pick_prompt");
  d.send("generate");
  assert.equal(generateMessage(d)[4], "/Users/me/My Song/Samples/mix ü.wav");
});

test("capture records the loop region, stops from a Task, then sends the recording", () => {
  const d = started(arrangementSet());
  d.send("region_source", 1);
  d.send("generate");
  const rec = d.outlets.filter((o) => o[0] === 1).map((o) => o.slice(1));
  assert.equal(rec[0][0], "open");
  assert.match(rec[0][1], /^\/private\/tmp\/darc-capture-.*\.wav$/);
  assert.deepEqual(rec[1], [1]);
  assert.equal(d.live.song.current_song_time, 16);
  assert.equal(d.live.song.is_playing, 1);
  d.live.emit("current_song_time", 20);
  d.live.emit("current_song_time", 24.01);
  assert.deepEqual(d.live.violations, []);
  assert.equal(d.osc().filter((m) => m[0] === "/darc/generate").length, 0);
  d.runTasks();
  assert.deepEqual(d.outlets.filter((o) => o[0] === 1).pop(), [1, 0]);
  assert.equal(d.live.song.is_playing, 0);
  const msg = generateMessage(d);
  assert.equal(msg[3], rec[0][1]);
  assert.equal(msg[msg.indexOf("end") + 1], 4.0, "8 beats at 120 bpm");
  d.send("/darc/done", msg[1], "/tmp/cap-stem.wav", "", 4.0, 44100);
  d.runTasks();
  assert.equal(d.live.song.tracks[2].arrangement_clips[0].start_time, 16);
  assert.deepEqual(d.live.violations, []);
});

test("a lost done reply is recovered by asking the job's status on each ping", () => {
  const d = started(arrangementSet());
  d.send("generate");
  const id = generateMessage(d)[1];
  d.send("/darc/accepted", id, 1);
  assert.equal(d.status(), "Queued (1 ahead)");
  d.tickRepeating();
  assert.deepEqual(d.osc().slice(-2), [["/darc/ping", PORT], ["/darc/status", id, PORT]]);
  d.send("/darc/status", id, "done", 1.0, "/tmp/late stem.wav", "", "", "");
  d.runTasks();
  assert.equal(d.live.song.tracks[2].arrangement_clips[0].file_path, "/tmp/late stem.wav");
  d.tickRepeating();
  assert.deepEqual(d.osc().pop(), ["/darc/ping", PORT], "no status requests once the job is over");
});

test("a looping clip sends one loop cycle", () => {
  const d = started(arrangementSet({ looping: 1, loop_start: 8, loop_end: 16, start_marker: 0, end_marker: 16 }));
  d.send("generate");
  const msg = generateMessage(d);
  assert.equal(msg[msg.indexOf("start") + 1], 4.5);
  assert.equal(msg[msg.indexOf("end") + 1], 8.5);
});

// ---------------------------------------------------------------- reply ports

function withDeviceId(id) {
  const spec = arrangementSet();
  spec.song.tracks[1].devices[0].id = id;
  return spec;
}

function portMessages(d) {
  return d.plain(d.patcher.boxes.osc_in.messages);
}

test("two devices with different Live ids listen on different ports and tell udpreceive", () => {
  const a = loadDevice(withDeviceId(42));
  const b = loadDevice(withDeviceId(843));
  assert.deepEqual(portMessages(a), [], "udpreceive keeps the patcher's port until live.thisdevice");
  a.start();
  b.start();
  assert.deepEqual(portMessages(a), [["port", 9142]]);
  assert.deepEqual(portMessages(b), [["port", 9143]], "843 % 800 = 43");
  a.tickRepeating();
  b.tickRepeating();
  assert.deepEqual(a.osc().pop(), ["/darc/ping", 9142]);
  assert.deepEqual(b.osc().pop(), ["/darc/ping", 9143]);
});

test("every request carries the device's own reply port", () => {
  const d = started(withDeviceId(1234)); // 9100 + 434
  d.send("generate");
  const msg = generateMessage(d);
  assert.equal(msg[2], 9534);
  d.send("/darc/accepted", msg[1], 0);
  d.tickRepeating();
  assert.deepEqual(d.osc().slice(-2), [["/darc/ping", 9534], ["/darc/status", msg[1], 9534]]);
  d.send("cancel");
  assert.deepEqual(d.osc().pop(), ["/darc/cancel", msg[1], 9534]);
  d.send("daemon", "192.168.1.5", 9001);
  assert.deepEqual(d.osc().pop(), ["/darc/ping", 9534]);
  assert.ok(d.osc().every((m) => !m.includes(9011)), "the default port is never sent once the id is known");
});

test("a device whose id gives no port still picks one in the range", () => {
  const d = started(withDeviceId(0));
  const [[word, port]] = portMessages(d);
  assert.equal(word, "port");
  assert.ok(port >= 9100 && port < 9900, String(port));
});

test("a port that hears no pong is left for another; a pong keeps the port", () => {
  const d = started(arrangementSet());
  for (let i = 0; i < 3; i++) d.tickRepeating();
  assert.deepEqual(portMessages(d), [["port", PORT]], "three silent pings are allowed");
  d.send("/darc/pong", "0.1.0", "kit", "cpu", 1, 0, 1);
  for (let i = 0; i < 3; i++) d.tickRepeating();
  assert.deepEqual(portMessages(d), [["port", PORT]], "the pong reset the count");
  d.tickRepeating();
  const moves = portMessages(d);
  assert.equal(moves.length, 2);
  const moved = moves[1][1];
  assert.notEqual(moved, PORT);
  assert.ok(moved >= 9100 && moved < 9900, String(moved));
  assert.deepEqual(d.osc().pop(), ["/darc/ping", moved], "the ping after the move names the new port");
});

test("a resent generate request names the port the device listens on now", () => {
  const d = started(arrangementSet());
  d.send("generate");
  const first = generateMessage(d);
  assert.equal(first[2], PORT);
  for (let i = 0; i < 4; i++) d.tickRepeating(); // no pong: the device moves
  const moved = portMessages(d).pop()[1];
  assert.notEqual(moved, PORT);
  d.runTasks(Infinity); // the accept timeouts: three resends
  const resent = d.osc().filter((m) => m[0] === "/darc/generate").slice(1);
  assert.equal(resent.length, 3);
  for (const m of resent) {
    assert.equal(m[1], first[1], "same job id");
    assert.equal(m[2], moved);
  }
});
