// Behaviour of darc_drums.js under node with fakes of Max and Live (run: node --test tests/js).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { loadDevice, DEVICE_FILE } = require("./max_fakes");

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DEVICE_ID = 42; // the Live API id of the device in arrangementSet()
const PORT = 9100 + DEVICE_ID; // its reply port: 9100 + (id % 800)

// Two tracks; the device sits on track 1; the Detail view shows a warped arrangement clip on track 0
// whose warp markers put beat 0 at 0.5 s and beat 16 at 8.5 s in its file (0.5 s per beat, the song
// tempo). Its region (loop_start..loop_end, as the LOM reports it for a clip that does not loop)
// is beats 4..12.
function arrangementSet(overrides = {}) {
  const clip = Object.assign({
    name: "Verse", file_path: "/Users/me/My Song/Samples/mix ü.wav", is_audio_clip: 1, warping: 1,
    looping: 0, start_marker: 4, end_marker: 12, loop_start: 4, loop_end: 12, length: 8, start_time: 32,
    sample_rate: 44100, sample_length: 44100 * 20,
    warp_markers: [{ beat_time: 0, sample_time: 0.5 }, { beat_time: 16, sample_time: 8.5 }],
  }, overrides);
  return {
    devicePath: "live_set tracks 1 devices 0",
    song: {
      tempo: 120, loop_start: 16, loop_length: 8, loop: 0, current_song_time: 0, is_playing: 0,
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

function generates(d) {
  return d.osc().filter((m) => m[0] === "/darc/generate");
}

function generateMessage(d) {
  const msgs = generates(d);
  assert.equal(msgs.length, 1, "exactly one generate request (status: " + d.status() + ")");
  return msgs[0];
}

function options(msg) {
  const opts = {};
  for (let i = 5; i < msg.length; i += 2) opts[msg[i]] = msg[i + 1];
  return opts;
}

function close(a, b, what) {
  assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} != ${b}`);
}

// Generate, answer done, let the deferred insert run.
function generateAndFinish(d, stem = "/tmp/stem.wav", midi = "", pairs = []) {
  d.send("generate");
  const id = generateMessage(d)[1];
  d.send("/darc/done", id, stem, midi, 4.0, 44100, ...pairs);
  d.runTasks();
  return id;
}

// A Standard MIDI File (format 0) with the given tempo and notes [{pitch, tick, len, vel}].
function writeMidi(file, bpm, ppq, notes) {
  const events = [];
  for (const n of notes) {
    events.push([n.tick, 1, [0x99, n.pitch, n.vel]]);
    events.push([n.tick + n.len, 0, [0x89, n.pitch, 0]]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const tempo = Math.round(60e6 / bpm);
  const body = [0, 0xff, 0x51, 3, (tempo >> 16) & 255, (tempo >> 8) & 255, tempo & 255];
  let last = 0;
  for (const [tick, , bytes] of events) {
    let delta = tick - last;
    last = tick;
    const vlq = [delta & 127];
    while ((delta >>= 7)) vlq.unshift((delta & 127) | 128);
    body.push(...vlq, ...bytes);
  }
  body.push(0, 0xff, 0x2f, 0);
  const u32 = (n) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  const data = [0x4d, 0x54, 0x68, 0x64, ...u32(6), 0, 0, 0, 1, (ppq >> 8) & 255, ppq & 255,
    0x4d, 0x54, 0x72, 0x6b, ...u32(body.length), ...body];
  fs.writeFileSync(file, Buffer.from(data));
  return file;
}

function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), "darc-js-"));
}

// ---------------------------------------------------------------- loading (issue 12, item 1)

test("Max finds the script beside the device, not in a subfolder", () => {
  const d = loadDevice(arrangementSet());
  assert.equal(path.dirname(d.jsFile), path.dirname(DEVICE_FILE));
  // A copy of the device with its script moved into src/ (the old layout) does not load.
  const dir = tmpDir();
  fs.copyFileSync(DEVICE_FILE, path.join(dir, "DARC Drums.amxd"));
  fs.mkdirSync(path.join(dir, "src"));
  fs.copyFileSync(d.jsFile, path.join(dir, "src", "darc_drums.js"));
  assert.throws(() => loadDevice({ ...arrangementSet(), deviceFile: path.join(dir, "DARC Drums.amxd") }),
    /can't find file darc_drums\.js/);
  // Copied as the install steps say (the whole folder), it loads.
  fs.copyFileSync(d.jsFile, path.join(dir, "darc_drums.js"));
  const copy = loadDevice({ ...arrangementSet(), deviceFile: path.join(dir, "DARC Drums.amxd") });
  assert.equal(copy.jsFile, path.join(dir, "darc_drums.js"));
});

test("the script addresses only objects that exist in the patcher", () => {
  const d = started(arrangementSet());
  d.send("prompt_file", "Macintosh HD:/Users/me/beat box.wav");
  generateAndFinish(d);
  assert.deepEqual(d.patcher.missing, []);
  assert.deepEqual(d.live.violations, []);
  assert.deepEqual(d.live.errors, []);
});

// ---------------------------------------------------------------- the request

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
  const opts = options(msg);
  assert.equal(opts.temperature, 0.7);
  assert.equal(opts.rhythm_strength, 1.5);
  close(opts.start, 2.5, "beat 4 -> 0.5 + 4 * 0.5 s");
  close(opts.end, 6.5, "beat 12 -> 0.5 + 12 * 0.5 s");
  assert.equal(opts.midi, 1, "MIDI is on by default");
  assert.ok(!("stems" in opts) && !("kit" in opts), "default options are left to the daemon");
  assert.ok(!("out_dir" in opts), "the clip is not in a Live project: the daemon's folder");
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

// ---------------------------------------------------------------- timing (issue 12, items 2 and 3)

test("an unwarped clip's region is loop_start..loop_end in seconds, whatever Clip.length says", () => {
  // Clip.length "makes no sense for unwarped audio": here it happens to equal the marker span.
  const d = started(arrangementSet({ warping: 0, start_marker: 2, end_marker: 10, loop_start: 2, loop_end: 10, length: 8 }));
  d.send("generate");
  const opts = options(generateMessage(d));
  assert.equal(opts.start, 2);
  assert.equal(opts.end, 10);
});

test("a looping unwarped clip sends its loop (seconds) and the stem starts where the loop first plays", () => {
  // Start marker at 1 s, loop 2..6 s: the loop first plays 1 s (2 beats at 120 bpm) after start_time.
  const d = started(arrangementSet({ warping: 0, looping: 1, start_marker: 1, loop_start: 2, loop_end: 6, end_marker: 6 }));
  generateAndFinish(d);
  const msg = generates(d)[0];
  assert.equal(options(msg).start, 2);
  assert.equal(options(msg).end, 6);
  const stem = d.live.song.tracks[2].arrangement_clips[0];
  close(stem.start_time, 34, "32 + 1 s * 2 beats/s");
  assert.equal(stem.warping, 0, "the region plays unwarped, so does its stem");
});

test("a looping warped clip: one loop cycle, placed where the cycle first plays", () => {
  const d = started(arrangementSet({ looping: 1, start_marker: 0, loop_start: 8, loop_end: 16, end_marker: 16 }));
  generateAndFinish(d);
  const opts = options(generates(d)[0]);
  close(opts.start, 4.5, "beat 8");
  close(opts.end, 8.5, "beat 16");
  close(d.live.song.tracks[2].arrangement_clips[0].start_time, 40, "32 + (8 - 0) beats");
  // With the start marker inside the loop, the first whole cycle starts at the loop's next start.
  const e = started(arrangementSet({ looping: 1, start_marker: 10, loop_start: 8, loop_end: 16, end_marker: 16 }));
  generateAndFinish(e);
  close(e.live.song.tracks[2].arrangement_clips[0].start_time, 38, "32 + (16 - 10) beats");
});

test("a warped clip whose file tempo is not the song's: the stem is warped with the region's map", () => {
  // 0.6 s per beat in the file (100 bpm) against a 120 bpm song, with a tempo change at beat 8.
  const d = started(arrangementSet({
    warp_markers: [{ beat_time: 0, sample_time: 0.5 }, { beat_time: 8, sample_time: 5.3 }, { beat_time: 16, sample_time: 9.3 }],
  }));
  d.send("generate");
  const opts = options(generateMessage(d));
  close(opts.start, 2.9, "beat 4");
  close(opts.end, 7.3, "beat 12");
  d.send("/darc/done", generateMessage(d)[1], "/tmp/stem.wav", "", 4.4, 44100);
  d.runTasks();
  const stem = d.live.song.tracks[2].arrangement_clips[0];
  assert.equal(stem.warping, 1);
  const markers = stem.warp_markers.map((m) => [m.beat_time, Math.round(m.sample_time * 1e9) / 1e9]);
  assert.deepEqual(markers, [[0, 0], [4, 2.4], [8, 4.4]], "the region's map, shifted; Live's own guess removed");
  assert.equal(stem.end_marker, 8, "the stem is as long as the region in beats");
  assert.equal(stem.start_time, 32);
  assert.deepEqual(d.live.violations, []);
});

test("warping is applied by Live later: the stem's markers wait for it", () => {
  const spec = arrangementSet();
  spec.autoWarp = 0; // Live's preference makes new clips unwarped
  const d = started(spec);
  generateAndFinish(d);
  const stem = d.live.song.tracks[2].arrangement_clips[0];
  assert.equal(stem.warping, 1);
  assert.deepEqual(stem.warp_markers.map((m) => m.beat_time), [0, 8]);
  assert.deepEqual(d.live.errors, [], "no warp marker was added to a clip Live had not yet warped");
});

// ---------------------------------------------------------------- progress and results

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
  assert.equal(tracks.length, 3, "no MIDI file came: no MIDI track");
  const track = tracks[2];
  assert.equal(track.name, "DARC Drums");
  assert.equal(track.arrangement_clips.length, 1);
  const clip = track.arrangement_clips[0];
  assert.equal(clip.file_path, "/Users/me/out/drums 1.wav");
  assert.equal(clip.start_time, 32);
  assert.equal(clip.name, "DARC T0.70 R1.50");
  assert.match(d.status(), /^Done: DARC T0.70 R1.50 at beat 32.00, stems in \/Users\/me\/out \(not in a Live project\)/);
  assert.deepEqual(d.live.violations, []);
});

test("a Session clip's stem goes in the same scene's slot of the new track", () => {
  const spec = arrangementSet();
  spec.song.tracks[0].clip_slots[3] = { clip: spec.song.tracks[0].arrangement_clips[0] };
  spec.song.view.detail_clip = "live_set tracks 0 clip_slots 3 clip";
  const d = started(spec);
  generateAndFinish(d);
  const track = d.live.song.tracks[2];
  assert.equal(track.arrangement_clips.length, 0);
  assert.equal(track.clip_slots[3].clip.file_path, "/tmp/stem.wav");
  assert.equal(track.clip_slots[3].clip.warping, 1);
  assert.match(d.status(), /in Session slot 4/);
});

test("before Live 12.0.5 nothing can be inserted: the user is told where the stem is", () => {
  for (const view of ["arrangement", "session"]) {
    const spec = arrangementSet();
    spec.liveVersion = [12, 0, 1];
    if (view === "session") {
      spec.song.tracks[0].clip_slots[1] = { clip: spec.song.tracks[0].arrangement_clips[0] };
      spec.song.view.detail_clip = "live_set tracks 0 clip_slots 1 clip";
    }
    const d = started(spec);
    generateAndFinish(d, "/tmp/stem 1.wav");
    assert.equal(d.live.song.tracks.length, 2, view + ": no empty track is left behind");
    assert.match(d.status(), /^Error: Live 12\.0\.5 or newer is needed .*\/tmp\/stem 1\.wav/);
  }
});

test("a Live API call that fails is reported and the set is left as it was", () => {
  const spec = arrangementSet();
  spec.failCalls = ["create_audio_clip"];
  const d = started(spec);
  generateAndFinish(d, "/tmp/stem.wav");
  assert.equal(d.live.song.tracks.length, 2, "the empty track was deleted again");
  assert.match(d.status(), /^Error: Live did not create the audio clip.*the stem is at \/tmp\/stem\.wav/);
  const e = started({ ...arrangementSet(), failCalls: ["create_audio_track"] });
  generateAndFinish(e);
  assert.match(e.status(), /^Error: Live did not create the audio track/);
  assert.ok(!/^Done/.test(e.status()));
});

test("stems go into the Live project when the region's file is in one", () => {
  const project = "/Users/me/Music/My Song Project";
  const spec = arrangementSet({ file_path: project + "/Samples/Recorded/take 1.wav" });
  spec.folders = { [project + "/Ableton Project Info"]: ["Project8_1.cfg"] };
  const d = started(spec);
  d.send("generate");
  assert.equal(options(generateMessage(d)).out_dir, project + "/Samples");
  d.send("/darc/done", generateMessage(d)[1], project + "/Samples/drums-1.wav", "", 4.0, 44100);
  d.runTasks();
  assert.match(d.status(), /stems in the project/);
  // A daemon on another computer cannot write there: its own folder is used.
  const r = started(spec);
  r.send("daemon", "192.168.1.5", 9001);
  r.send("generate");
  assert.ok(!("out_dir" in options(generateMessage(r))));
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
  assert.equal(generates(d).length, 2, "a new job can start");
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
  assert.equal(generates(d).length, 0);
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
  assert.equal(generates(d).length, 1, "no resend before the timeout");
  d.runTasks(Infinity);
  const sent = generates(d);
  assert.equal(sent.length, 4);
  assert.ok(sent.every((m) => m[1] === sent[0][1]));
  assert.match(d.status(), /daemon not answering.*darc-bridge serve/);
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

// ---------------------------------------------------------------- prompt

function beatboxSet() {
  const spec = arrangementSet();
  spec.song.tracks.push({
    name: "Beatbox", clip_slots: [],
    arrangement_clips: [
      { is_audio_clip: 1, file_path: "/p/early.wav", start_time: 0, length: 16 },
      { is_audio_clip: 1, file_path: "/p/verse take.wav", start_time: 30, length: 16 },
    ],
  });
  return spec;
}

test("the prompt can come from a track's clip at the region's start", () => {
  const d = started(beatboxSet());
  d.send("prompt_source", 2);
  d.send("prompt_track", 2);
  d.send("generate");
  assert.equal(generateMessage(d)[4], "/p/verse take.wav");
  assert.deepEqual(d.plain(d.patcher.boxes.prompt_track.messages[0]), ["_parameter_range", ["Band", "DARC", "Beatbox"]]);
  assert.equal(d.patcher.boxes.prompt_track_store.value, "Beatbox", "kept with the set");
});

test("on reload the prompt track is chosen again by name", () => {
  // Live restores the stored pattr, and the menu's stale index (its items were "(none)").
  const spec = beatboxSet();
  spec.stored = { prompt_track_store: "Beatbox", prompt_source: 2 };
  const d = loadDevice(spec);
  d.send("prompt_source", 2);
  d.send("prompt_track", 0);
  d.start();
  assert.deepEqual(d.plain(d.patcher.boxes.prompt_track.last()), ["set", 2]);
  d.send("generate");
  assert.equal(generateMessage(d)[4], "/p/verse take.wav");
});

test("Pick takes the Detail view's clip as the prompt", () => {
  const d = started(arrangementSet());
  d.send("pick_prompt");
  d.send("generate");
  assert.equal(generateMessage(d)[4], "/Users/me/My Song/Samples/mix ü.wav");
});

// ---------------------------------------------------------------- capture (issue 12, item 4)

test("capture records from when the transport really starts to the loop's end, then sends it", () => {
  const d = started(arrangementSet());
  d.send("region_source", 1);
  d.send("generate");
  const rec = d.recorder();
  assert.equal(rec[0][0], "open");
  assert.match(rec[0][1], /^\/private\/tmp\/darc-capture-.*\.wav$/);
  assert.equal(rec.length, 1, "not recording before Live reports the transport playing");
  assert.equal(d.live.song.current_song_time, 16);
  d.runTasks(); // Live starts the transport
  assert.deepEqual(d.recorder()[1], [1]);
  d.live.play(7.5, 0.5);
  assert.equal(generates(d).length, 0);
  d.live.play(1, 0.5); // reaches beat 24, the loop's end
  assert.deepEqual(d.live.violations, []);
  d.runTasks();
  assert.deepEqual(d.recorder().pop(), [0]);
  assert.equal(d.live.song.is_playing, 0);
  const msg = generateMessage(d);
  assert.equal(msg[3], rec[0][1]);
  assert.equal(options(msg).end, 4.0, "8 beats at 120 bpm");
  d.send("/darc/done", msg[1], "/tmp/cap-stem.wav", "", 4.0, 44100);
  d.runTasks();
  assert.equal(d.live.song.tracks[2].arrangement_clips[0].start_time, 16);
  assert.deepEqual(d.live.violations, []);
});

test("capture stops when song time wraps at the loop's end (loop switch on)", () => {
  const spec = arrangementSet();
  spec.song.loop = 1;
  const d = started(spec);
  d.send("region_source", 1);
  d.send("generate");
  d.runTasks();
  d.live.play(7, 1);
  assert.equal(generates(d).length, 0);
  d.live.play(2, 1); // 23 -> 16 -> 17: time never reaches 24
  d.runTasks();
  assert.deepEqual(d.recorder().pop(), [0]);
  assert.equal(options(generateMessage(d)).end, 4.0);
  assert.deepEqual(d.live.violations, []);
});

test("stopping the transport during a capture sends nothing", () => {
  const d = started(arrangementSet());
  d.send("region_source", 1);
  d.send("generate");
  d.runTasks();
  d.live.play(2, 1);
  d.live.emit("is_playing", 0);
  d.runTasks();
  assert.deepEqual(d.recorder().pop(), [0]);
  assert.equal(generates(d).length, 0);
  assert.match(d.status(), /Capture stopped/);
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

test("with no daemon at all the reply port stops moving after a few tries", () => {
  const d = started(arrangementSet());
  for (let i = 0; i < 60; i++) d.tickRepeating(); // two minutes without a pong
  const moves = portMessages(d).length - 1;
  assert.equal(moves, 3);
  d.send("/darc/pong", "0.1.0", "kit", "cpu", 1, 0, 1); // the daemon starts: moving may resume
  for (let i = 0; i < 4; i++) d.tickRepeating();
  assert.equal(portMessages(d).length - 1, 4);
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
  const resent = generates(d).slice(1);
  assert.equal(resent.length, 3);
  for (const m of resent) {
    assert.equal(m[1], first[1], "same job id");
    assert.equal(m[2], moved);
  }
});

// ---------------------------------------------------------------- MIDI into the session (issue 14)

// 100 bpm file, 480 ticks per beat: kick at 0 s, hat at 0.3 s, snare at 0.6 s.
function rhythmMidi() {
  return writeMidi(path.join(tmpDir(), "drums ü.mid"), 100, 480, [
    { pitch: 36, tick: 0, len: 60, vel: 110 },
    { pitch: 42, tick: 240, len: 60, vel: 40 },
    { pitch: 38, tick: 480, len: 60, vel: 90 },
  ]);
}

function notesOf(clip) {
  return clip.notes.map((n) => [n.pitch, Math.round(n.start_time * 1e6) / 1e6, n.velocity]);
}

test("the played rhythm lands as a MIDI clip beside the stem, in beats at the song tempo", () => {
  const d = started(arrangementSet({ warping: 0, loop_start: 1, loop_end: 5, start_marker: 1, end_marker: 5 }));
  generateAndFinish(d, "/tmp/stem.wav", rhythmMidi());
  const tracks = d.live.song.tracks;
  assert.deepEqual(tracks.map((t) => t.name), ["Band", "DARC", "DARC Drums", "DARC MIDI"]);
  const midiTrack = tracks[3];
  assert.equal(midiTrack.has_midi_input, 1);
  assert.equal(midiTrack.color, tracks[2].color);
  const [clip] = midiTrack.arrangement_clips;
  assert.equal(clip.start_time, 32, "at the region's position");
  assert.equal(clip.length, 8, "4 s at 120 bpm");
  assert.equal(clip.name, "DARC T0.70 R1.50");
  // 120 bpm song: 0.3 s = 0.6 beat, 0.6 s = 1.2 beats; velocity is the file's (from hit strength).
  assert.deepEqual(notesOf(clip), [[36, 0, 110], [42, 0.6, 40], [38, 1.2, 90]]);
  assert.ok(clip.notes.every((n) => n.duration > 0 && n.mute === 0));
  assert.match(d.status(), /^Done: /);
  assert.deepEqual(d.live.violations, []);
});

test("for a warped region the MIDI notes follow the region's warp map", () => {
  // The file plays at 0.6 s per beat: a hit 0.6 s into the region falls on beat 1.
  const d = started(arrangementSet({ warp_markers: [{ beat_time: 0, sample_time: 0.5 }, { beat_time: 16, sample_time: 10.1 }] }));
  generateAndFinish(d, "/tmp/stem.wav", rhythmMidi());
  const [clip] = d.live.song.tracks[3].arrangement_clips;
  assert.equal(clip.length, 8, "the region's 8 beats");
  assert.deepEqual(notesOf(clip), [[36, 0, 110], [42, 0.5, 40], [38, 1, 90]]);
});

test("a MIDI file that cannot be read leaves the stem in place and says so", () => {
  const bad = path.join(tmpDir(), "broken.mid");
  fs.writeFileSync(bad, "not midi");
  const d = started(arrangementSet());
  generateAndFinish(d, "/tmp/stem.wav", bad);
  assert.deepEqual(d.live.song.tracks.map((t) => t.name), ["Band", "DARC", "DARC Drums"]);
  assert.match(d.status(), /^Done: .*\(no MIDI clip: not a MIDI file\)/);
  const e = started({ ...arrangementSet(), failCalls: ["create_clip", "create_midi_clip"] });
  generateAndFinish(e, "/tmp/stem.wav", rhythmMidi());
  assert.deepEqual(e.live.song.tracks.map((t) => t.name), ["Band", "DARC", "DARC Drums"], "the empty MIDI track is gone");
  assert.match(e.status(), /no MIDI clip: Live did not create the MIDI clip/);
});

test("the MIDI toggle off: no MIDI asked for, no MIDI track", () => {
  const d = started(arrangementSet());
  d.send("midi_out", 0);
  generateAndFinish(d, "/tmp/stem.wav", rhythmMidi());
  assert.equal(options(generates(d)[0]).midi, 0);
  assert.deepEqual(d.live.song.tracks.map((t) => t.name), ["Band", "DARC", "DARC Drums"]);
});

test("a Live without Track.create_midi_clip gets the MIDI clip in Session view, and is told", () => {
  const spec = arrangementSet();
  spec.liveVersion = [12, 0, 5];
  const d = started(spec);
  generateAndFinish(d, "/tmp/stem.wav", rhythmMidi());
  const midiTrack = d.live.song.tracks[3];
  assert.equal(midiTrack.arrangement_clips.length, 0);
  assert.equal(midiTrack.clip_slots[0].clip.notes.length, 3);
  assert.equal(d.live.song.tracks[2].arrangement_clips.length, 1, "the stem is in the Arrangement");
  assert.match(d.status(), /MIDI clip in Session slot 1/);
});

test("split stems: the per-piece stems come as a group of tracks, one colour, before the MIDI track", () => {
  const d = started(arrangementSet());
  d.send("split_stems", 1);
  generateAndFinish(d, "/o/x.wav", rhythmMidi(), ["snare", "/o/x.snare.wav", "kick", "/o/x.kick.wav", "hats", "/o/x.hats.wav"]);
  const opts = options(generates(d)[0]);
  assert.equal(opts.stems, "split");
  const tracks = d.live.song.tracks;
  assert.deepEqual(tracks.map((t) => t.name), ["Band", "DARC", "DARC Kick", "DARC Snare", "DARC Hats", "DARC MIDI"]);
  assert.deepEqual(tracks.slice(2, 5).map((t) => t.arrangement_clips[0].file_path), ["/o/x.kick.wav", "/o/x.snare.wav", "/o/x.hats.wav"]);
  assert.ok(tracks.slice(2, 5).every((t) => t.arrangement_clips[0].start_time === 32));
  assert.equal(new Set(tracks.slice(2).map((t) => t.color)).size, 1);
});

test("the kit menu is filled from /darc/kits, and the chosen kit is sent and kept", () => {
  const d = started(arrangementSet());
  assert.ok(d.osc().some((m) => m[0] === "/darc/kits" && m[1] === PORT));
  d.send("/darc/kits", "builtin", "GMkit", "FluidR3_GM");
  assert.deepEqual(d.plain(d.patcher.boxes.kit.last()), ["_parameter_range", ["(daemon default)", "builtin", "GMkit", "FluidR3_GM"]]);
  d.send("kit", 3);
  d.send("generate");
  assert.equal(options(generateMessage(d)).kit, "FluidR3_GM");
  assert.equal(d.patcher.boxes.kit_store.value, "FluidR3_GM");
  // Reloaded: the stored name picks the kit again once the daemon lists its kits.
  const r = loadDevice({ ...arrangementSet(), stored: { kit_store: "GMkit" } });
  r.send("kit", 0); // Live restores the menu's stale index first
  r.start();
  r.send("/darc/kits", "builtin", "GMkit");
  assert.deepEqual(r.plain(r.patcher.boxes.kit.last()), ["set", 2]);
  r.send("generate");
  assert.equal(options(generateMessage(r)).kit, "GMkit");
  r.send("kit", 0);
});

test("an older daemon without /darc/kits does not break a running job", () => {
  const d = started(arrangementSet());
  d.send("generate");
  const id = generateMessage(d)[1];
  d.send("/darc/error", "", "unknown_address", "no such address: /darc/kits");
  d.send("/darc/accepted", id, 0);
  assert.equal(d.status(), "Generating...");
});
