// DARC Drums: the logic of the Max for Live device.
//
// Max's [js] object runs ES5 with globals (inlets, outlets, outlet, post, LiveAPI, Task, File,
// Folder), so this file uses var/function only. It sits beside "DARC Drums.amxd": Max looks a
// device's files up in the device's own folder, not in its subfolders. It talks OSC to the
// darc-bridge daemon (docs/protocol.md) through [udpsend] (outlet 0) and receives replies from
// [udpreceive] as messages named "/darc/...". Each device instance listens on its own reply port
// (see replyPortFor), so several devices in one Live set, or in two Live instances, do not steal
// each other's replies.
//
// Rules kept here on purpose:
// - the Live API is touched only after [live.thisdevice] has banged (init);
// - Live is never changed inside an observer callback or an OSC reply: changes run in a Task;
// - every change Live is asked for is checked (a LiveAPI call that fails only posts to the Max
//   window), and the user is told when it did not happen;
// - the stem plays in time with the region: a warped region's warp map is copied onto the stem,
//   an unwarped region's stem stays unwarped (both play the file's seconds as the region does).
//
// Clip timing (LOM): loop_start/loop_end give the played region for looping and non-looping clips
// alike, in beats for warped clips and in seconds for unwarped ones (Clip.length means nothing for
// unwarped audio, so it is never used).

autowatch = 1;
inlets = 1;
outlets = 2;

var OUT_OSC = 0; // to [udpsend]
var OUT_RECORDER = 1; // to [sfrecord~] (capture)

var DAEMON_HOST = "127.0.0.1";
var DAEMON_PORT = 9001; // docs/protocol.md default
var DEFAULT_REPLY_PORT = 9011; // [udpreceive] port in the patcher, used until the device id is known
// After live.thisdevice: REPLY_PORT_BASE + (device id % REPLY_PORT_SPAN), i.e. 9100-9899.
var REPLY_PORT_BASE = 9100;
var REPLY_PORT_SPAN = 800;
var SILENT_PINGS_BEFORE_MOVE = 3; // unanswered pings on one port before trying another
// Moving only helps when the daemon runs but our port is taken; with no daemon at all no port
// would ever hear a pong, so the device stops moving after this many moves until a pong comes.
var MAX_PORT_MOVES = 3;

var PING_INTERVAL_MS = 2000;
var MISSED_PONGS_OFFLINE = 3; // pings without an answer before the light goes off
var ACCEPT_TIMEOUT_MS = 3000;
var SEND_RETRIES = 3;
var WARP_RETRIES = 10; // deferred tries while Live has not yet applied `warping` to a new stem

// Live 12.0.5 added Track.create_audio_clip and ClipSlot.create_audio_clip: without them nothing
// can be inserted (the patcher's minimum_live_version says the same).
var MIN_LIVE = [12, 0, 5];

// GM drum notes of the MIDI file (docs/protocol.md); the MIDI clip keeps the file's pitches.
var MIDI_NOTE_BEATS = 0.25; // shortest note length written into the clip

// Scripting names of the patcher objects this file addresses (the test checks they exist).
var NAMED = {
    status: "status",
    light: "connected",
    temperature: "temperature",
    rhythmStrength: "rhythm_strength",
    promptMenu: "prompt_source",
    regionMenu: "region_source",
    trackMenu: "prompt_track",
    trackStore: "prompt_track_store",
    kitMenu: "kit",
    kitStore: "kit_store",
    midiToggle: "midi_out",
    splitToggle: "split_stems",
    oscOut: "osc_out",
    oscIn: "osc_in"
};

var PROMPT_SOURCES = ["file", "clip", "track"]; // live.menu items, in order
var REGION_SOURCES = ["clip", "capture"];
var KIT_DEFAULT_ITEM = "(daemon default)";
// Per-piece stems, in the order of the contract (docs/protocol.md), and their track names.
var PIECES = ["kick", "snare", "hats", "toms", "cymbals"];

var ready = false;
var job = null; // the job in flight: {id, message, region, settings, retries, ...}
var promptFile = "";
var promptClip = null; // {path, name}
var promptTrackIndex = -1;
var promptSource = "file";
var regionSource = "clip";
var trackList = []; // [{index, name}] offered in the track menu
var kitNames = []; // from /darc/kits, "builtin" first
var kitName = ""; // "" = the daemon's own kit
var midiOut = true; // MIDI track beside the stem (on by default)
var splitStems = false; // per-piece stems as a group of tracks
var missedPongs = MISSED_PONGS_OFFLINE;
var replyPort = DEFAULT_REPLY_PORT;
var silentPings = 0; // pings sent on replyPort without a pong
var portMoves = 0; // moves since the last pong
var pingTask = null;
var acceptTask = null;
var capture = null; // {path, loopStart, loopEnd, recording, lastTime, observers}

// ---------------------------------------------------------------- helpers

function named(key) {
    return this.patcher.getnamed(NAMED[key]);
}

function setStatus(text) {
    var box = named("status");
    if (box) {
        box.message("set", text);
    }
}

function setLight(on) {
    var led = named("light");
    if (led) {
        led.message(on ? 1 : 0);
    }
}

function dialValue(key, fallback) {
    var dial = named(key);
    if (!dial) {
        return fallback;
    }
    var v = dial.getvalueof();
    if (v instanceof Array) {
        v = v[0];
    }
    v = Number(v);
    return isFinite(v) ? v : fallback;
}

function storedText(key) {
    var box = named(key);
    if (!box) {
        return "";
    }
    var v = box.getvalueof();
    if (v instanceof Array) {
        v = v.join(" ");
    }
    return v === undefined || v === null || v === 0 ? "" : String(v);
}

function storeText(key, text) {
    var box = named(key);
    if (box) {
        box.setvalueof(text);
    }
}

function newJobId() {
    var hex = "0123456789abcdef";
    var s = "";
    for (var i = 0; i < 32; i++) {
        s += hex.charAt(Math.floor(Math.random() * 16));
        if (i === 7 || i === 11 || i === 15 || i === 19) {
            s += "-";
        }
    }
    return s;
}

function first(value) {
    return value instanceof Array ? value[0] : value;
}

function num(api, prop) {
    return Number(first(api.get(prop)));
}

function pathOf(api) {
    var p = api.unquotedpath;
    if (p === undefined) {
        p = String(api.path).replace(/"/g, "");
    }
    return p;
}

function exists(api) {
    return api && Number(api.id) !== 0;
}

// Max hands files as "Volume:/dir/file"; the daemon needs a native path.
function nativePath(path) {
    var m = /^([^:\/]+):(\/.*)$/.exec(path);
    if (!m) {
        return path;
    }
    if (m[1].length === 1) {
        return m[1] + ":" + m[2]; // Windows drive letter
    }
    if (m[1] === "Macintosh HD") {
        return m[2];
    }
    return "/Volumes/" + m[1] + m[2];
}

function fmt(x) {
    return (Math.round(x * 100) / 100).toFixed(2);
}

function song() {
    return new LiveAPI("live_set");
}

function isLoopback(host) {
    return host === "127.0.0.1" || host === "localhost" || host === "::1";
}

// [major, minor, bugfix] of the running Live.
function liveVersion() {
    var app = new LiveAPI("live_app");
    return [Number(first(app.call("get_major_version"))), Number(first(app.call("get_minor_version"))),
        Number(first(app.call("get_bugfix_version")))];
}

function versionAtLeast(have, want) {
    for (var i = 0; i < want.length; i++) {
        if ((have[i] || 0) !== want[i]) {
            return (have[i] || 0) > want[i];
        }
    }
    return true;
}

// ---------------------------------------------------------------- clip timing

// The clip's warp map as [{beat, sec}] sorted by beat; [] when it has none.
function warpMarkers(clip) {
    var raw = clip.get("warp_markers");
    try {
        var dict = JSON.parse(raw instanceof Array ? raw.join(" ") : String(raw));
        var list = dict.warp_markers || [];
        var out = [];
        for (var i = 0; i < list.length; i++) {
            out.push({beat: Number(list[i].beat_time), sec: Number(list[i].sample_time)});
        }
        out.sort(function (a, b) { return a.beat - b.beat; });
        return out;
    } catch (e) {
        return [];
    }
}

// Piecewise-linear map between two keys of the markers (extrapolated past the ends).
function interpolate(markers, x, from, to) {
    var i = 0;
    while (i < markers.length - 2 && x > markers[i + 1][from]) {
        i++;
    }
    var a = markers[i];
    var b = markers[i + 1];
    return a[to] + (x - a[from]) * (b[to] - a[to]) / (b[from] - a[from]);
}

// A warped clip's map from clip beats to file seconds (the song tempo when it has no markers).
function warpMap(clip, tempo) {
    var markers = warpMarkers(clip);
    if (markers.length >= 2) {
        return markers;
    }
    var base = markers.length ? markers[0] : {beat: 0, sec: 0};
    return [base, {beat: base.beat + 1, sec: base.sec + 60.0 / tempo}];
}

// The stem's own warp map: the source's map over the region, shifted to start at (0, 0).
function stemWarp(markers, startBeat, endBeat, startSec, endSec) {
    var out = [{beat: 0, sec: 0}];
    for (var i = 0; i < markers.length; i++) {
        var m = markers[i];
        if (m.beat > startBeat + 1e-6 && m.beat < endBeat - 1e-6) {
            out.push({beat: m.beat - startBeat, sec: m.sec - startSec});
        }
    }
    out.push({beat: endBeat - startBeat, sec: endSec - startSec});
    return out;
}

// The region to accompany, from the clip shown in Live's Detail view.
function regionFromSelectedClip() {
    var clip = new LiveAPI("live_set view detail_clip");
    if (!exists(clip)) {
        throw new Error("select an audio clip (the region) first");
    }
    if (num(clip, "is_audio_clip") !== 1) {
        throw new Error("the selected clip is a MIDI clip: select an audio clip");
    }
    var file = String(first(clip.get("file_path")) || "");
    if (!file) {
        throw new Error("the selected clip has no audio file");
    }
    var tempo = num(song(), "tempo");
    var warped = num(clip, "warping") === 1;
    var loopStart = num(clip, "loop_start"); // beats if warped, seconds if not
    var loopEnd = num(clip, "loop_end");
    var start;
    var end;
    var map = null;
    if (warped) {
        map = warpMap(clip, tempo);
        start = interpolate(map, loopStart, "beat", "sec");
        end = interpolate(map, loopEnd, "beat", "sec");
    } else {
        start = loopStart;
        end = loopEnd;
    }
    start = Math.max(0, start);
    var rate = num(clip, "sample_rate");
    var frames = num(clip, "sample_length");
    if (rate > 0 && frames > 0) {
        end = Math.min(end, frames / rate);
    }
    if (!(end > start)) {
        throw new Error("the selected clip's region is empty");
    }
    var beatsPerSecond = tempo / 60.0;
    // Where the region's (clamped) ends fall in clip time: the stem's warp map starts there.
    var startBeat = warped ? interpolate(map, start, "sec", "beat") : loopStart;
    var region = {
        mix: file, start: start, end: end, name: String(first(clip.get("name")) || ""),
        warp: warped ? stemWarp(map, startBeat, interpolate(map, end, "sec", "beat"), start, end) : null
    };
    region.lengthBeats = warped ? region.warp[region.warp.length - 1].beat : (end - start) * beatsPerSecond;
    var slot = /^live_set tracks (\d+) clip_slots (\d+) clip$/.exec(pathOf(clip));
    if (slot) {
        region.view = "session";
        region.scene = Number(slot[2]);
        region.position = 0;
    } else {
        // A looping Arrangement clip plays from its start marker, then loops the region: the region
        // first plays whole at start_time + the distance from the start marker to the loop's start
        // (or, when the start marker lies inside the loop, to the loop's next start).
        var offset = 0;
        if (num(clip, "looping") === 1) {
            var startMarker = num(clip, "start_marker");
            offset = startMarker <= loopStart + 1e-9 ? loopStart - startMarker : loopEnd - startMarker;
        }
        region.view = "arrangement";
        region.position = num(clip, "start_time") + (warped ? offset + startBeat - loopStart
            : offset * beatsPerSecond + (start - loopStart) * beatsPerSecond);
    }
    region.outDir = projectFolderFor(file);
    return region;
}

// ---------------------------------------------------------------- where stems go

function folderHasFiles(path) {
    try {
        var f = new Folder(path);
        var n = f.count;
        f.close();
        return n > 0;
    } catch (e) {
        return false;
    }
}

// The Live project folder holding `file` (the folder with "Ableton Project Info"); the stems go
// to its Samples folder (where Live keeps a project's audio), else to its top. "" when the file
// is not in a project (then the daemon's --output-dir is used, and the status line says so).
function projectFolderFor(file) {
    var path = nativePath(String(file)).replace(/\\/g, "/");
    var parts = path.split("/");
    for (var i = parts.length - 1; i > 0; i--) {
        var dir = parts.slice(0, i).join("/");
        if (dir && folderHasFiles(dir + "/Ableton Project Info")) {
            return parts[i] === "Samples" ? dir + "/Samples" : dir;
        }
    }
    return "";
}

// ---------------------------------------------------------------- prompt

function resolvePrompt(region) {
    if (promptSource === "file") {
        return promptFile;
    }
    if (promptSource === "clip") {
        if (!promptClip) {
            throw new Error("no prompt clip picked: select a clip and press Pick");
        }
        return promptClip.path;
    }
    return promptFromTrack(region);
}

// The audio clip on the chosen track that plays at the region's start (or its first audio clip).
function promptFromTrack(region) {
    if (promptTrackIndex < 0) {
        throw new Error("no prompt track chosen");
    }
    var base = "live_set tracks " + promptTrackIndex;
    var track = new LiveAPI(base);
    var name = String(first(track.get("name")));
    var count = track.getcount("arrangement_clips");
    var fallback = "";
    for (var i = 0; i < count; i++) {
        var clip = new LiveAPI(base + " arrangement_clips " + i);
        if (num(clip, "is_audio_clip") !== 1) {
            continue;
        }
        var file = String(first(clip.get("file_path")) || "");
        var s = num(clip, "start_time");
        var e = num(clip, "end_time");
        if (!fallback) {
            fallback = file;
        }
        if (region && region.view === "arrangement" && s <= region.position && region.position < e) {
            return file;
        }
    }
    if (!fallback) {
        throw new Error("track '" + name + "' has no audio clip to use as the rhythm prompt");
    }
    return fallback;
}

function refreshTracks() {
    var s = song();
    var n = s.getcount("tracks");
    trackList = [];
    var names = [];
    for (var i = 0; i < n; i++) {
        var t = new LiveAPI("live_set tracks " + i);
        var name = String(first(t.get("name")));
        trackList.push({index: i, name: name});
        names.push(name);
    }
    var menu = named("trackMenu");
    if (menu && names.length) {
        menu.message("_parameter_range", names);
    }
    // The menu's items are set at run time, so Live restores only an index into "(none)": the
    // chosen track's name is kept in a stored [pattr] and chosen again here.
    var saved = storedText("trackStore");
    for (var j = 0; j < trackList.length && saved; j++) {
        if (trackList[j].name === saved) {
            promptTrackIndex = trackList[j].index;
            if (menu) {
                menu.message("set", j);
            }
            break;
        }
    }
}

// ---------------------------------------------------------------- OSC out

function send(args) {
    outlet(OUT_OSC, args);
}

// The Live API id differs between devices of one Live set, so ports derived from it differ too
// (ids 800 apart would collide; moveReplyPort resolves that). Without an id: a random port.
function replyPortFor(deviceId) {
    var id = Math.floor(Number(deviceId));
    if (!(isFinite(id) && id > 0)) {
        id = Math.floor(Math.random() * REPLY_PORT_SPAN);
    }
    return REPLY_PORT_BASE + (id % REPLY_PORT_SPAN);
}

function listenOn(port) {
    replyPort = port;
    silentPings = 0;
    var receiver = named("oscIn");
    if (receiver) {
        receiver.message("port", replyPort);
    }
}

// Another program (or a DARC Drums in another Live instance, whose ids start from the same small
// numbers) may hold our port, so its replies never reach us: after a few silent pings, move to a
// random other port in the range, at most MAX_PORT_MOVES times until a pong is heard again.
function moveReplyPort() {
    var port = replyPort;
    while (port === replyPort) {
        port = REPLY_PORT_BASE + Math.floor(Math.random() * REPLY_PORT_SPAN);
    }
    portMoves++;
    listenOn(port);
}

function ping() {
    silentPings++;
    send(["/darc/ping", replyPort]);
}

// Every tick: ping, and ask for the running job's state, so a lost UDP reply (done, error) is
// recovered (the protocol's /darc/status answers with the stem path once the job is done).
function pingTick() {
    if (missedPongs >= MISSED_PONGS_OFFLINE) {
        setLight(false);
    }
    missedPongs++;
    if (silentPings >= SILENT_PINGS_BEFORE_MOVE && portMoves < MAX_PORT_MOVES) {
        moveReplyPort();
    }
    ping();
    if (job && job.accepted) {
        send(["/darc/status", job.id, replyPort]);
    }
}

function generateMessage(id, region, prompt, settings) {
    var msg = ["/darc/generate", id, replyPort, region.mix, prompt || "",
        "temperature", settings.temperature,
        "rhythm_strength", settings.rhythmStrength,
        "start", region.start, "end", region.end,
        "midi", settings.midi ? 1 : 0];
    if (settings.split) {
        msg.push("stems", "split");
    }
    if (settings.kit) {
        msg.push("kit", settings.kit);
    }
    // Stems go into the Live project when the daemon runs here and the project can be found.
    if (region.outDir && isLoopback(DAEMON_HOST)) {
        msg.push("out_dir", region.outDir);
    }
    return msg;
}

function submit(region, prompt) {
    var settings = {
        temperature: dialValue("temperature", 1.0),
        rhythmStrength: dialValue("rhythmStrength", 1.0),
        midi: midiOut,
        split: splitStems,
        kit: kitName
    };
    var id = newJobId();
    job = {
        id: id,
        region: region,
        prompt: prompt,
        settings: settings,
        retries: 0,
        accepted: false,
        message: generateMessage(id, region, prompt, settings)
    };
    send(job.message);
    setStatus("Sent to daemon: waiting...");
    acceptTask = new Task(acceptTimeout, this);
    acceptTask.schedule(ACCEPT_TIMEOUT_MS);
}

// No /darc/accepted yet: resend the same job id (the daemon never starts it twice).
function acceptTimeout() {
    if (!job || job.accepted) {
        return;
    }
    if (job.retries >= SEND_RETRIES) {
        fail("daemon not answering on " + DAEMON_HOST + ":" + DAEMON_PORT + " (start it: darc-bridge serve)");
        return;
    }
    job.retries++;
    job.message[2] = replyPort; // same job id; replies to where we listen now
    send(job.message);
    acceptTask = new Task(acceptTimeout, this);
    acceptTask.schedule(ACCEPT_TIMEOUT_MS);
}

function fail(message) {
    job = null;
    setStatus("Error: " + message);
    post("DARC Drums: " + message + "\n");
}

function requestKits() {
    send(["/darc/kits", replyPort]);
}

// ---------------------------------------------------------------- capture (sfrecord~)

// Plays the Arrangement loop region once from its start and records this track meanwhile.
// Recording starts when Live reports the transport playing (start_playing only asks for it), and
// stops at the loop's end, or when song time jumps back (the loop switch is on: time wraps).
function startCapture() {
    var s = song();
    var loopStart = num(s, "loop_start");
    var loopLength = num(s, "loop_length");
    if (!(loopLength > 0)) {
        throw new Error("set a loop region to capture first");
    }
    var folder = captureFolder();
    var path = folder + "/darc-capture-" + newJobId() + ".wav";
    capture = {path: path, loopStart: loopStart, loopEnd: loopStart + loopLength, recording: false,
        lastTime: loopStart, observers: []};
    outlet(OUT_RECORDER, "open", path);
    if (num(s, "is_playing") === 1) {
        s.call("stop_playing");
    }
    s.set("current_song_time", loopStart);
    s.call("start_playing");
    capture.observers.push(observe("is_playing", capturePlaying));
    capture.observers.push(observe("current_song_time", captureTime));
    setStatus("Capturing the loop region...");
}

function observe(property, callback) {
    var api = new LiveAPI(callback, "live_set");
    api.property = property;
    return api;
}

var captureDir = "";

function capture_folder(path) {
    captureDir = nativePath(String(path));
}

function captureFolder() {
    if (captureDir) {
        return captureDir;
    }
    return max.os === "windows" ? "C:/Users/Public/Documents" : "/private/tmp";
}

// Observer callbacks: they start/stop the recorder (not Live) and defer every change to a Task.
function capturePlaying(args) {
    if (!capture || args[0] !== "is_playing") {
        return;
    }
    var playing = Number(args[1]) === 1;
    if (playing && !capture.recording && !capture.stopping) {
        capture.recording = true;
        outlet(OUT_RECORDER, 1);
    } else if (!playing && capture.recording && !capture.stopping) {
        capture.stopping = true;
        capture.aborted = true; // the user stopped the transport
        new Task(finishCapture, this).schedule(0);
    }
}

function captureTime(args) {
    if (!capture || args[0] !== "current_song_time" || !capture.recording || capture.stopping) {
        return;
    }
    var t = Number(args[1]);
    var wrapped = t < capture.lastTime - 1e-6;
    capture.lastTime = t;
    if (t >= capture.loopEnd || wrapped) {
        capture.stopping = true;
        new Task(finishCapture, this).schedule(0);
    }
}

function stopObservers() {
    for (var i = 0; i < capture.observers.length; i++) {
        capture.observers[i].property = "";
    }
}

function finishCapture() {
    if (!capture) {
        return;
    }
    outlet(OUT_RECORDER, 0);
    stopObservers();
    var done = capture;
    capture = null;
    if (done.aborted) {
        setStatus("Capture stopped before the loop's end: nothing sent");
        return;
    }
    song().call("stop_playing");
    var tempo = num(song(), "tempo");
    var beats = done.loopEnd - done.loopStart;
    var region = {mix: done.path, start: 0, end: beats * 60.0 / tempo, view: "arrangement",
        position: done.loopStart, name: "capture", warp: null, lengthBeats: beats, outDir: ""};
    try {
        submit(region, resolvePrompt(region));
    } catch (e) {
        fail(e.message);
    }
}

// ---------------------------------------------------------------- reading the MIDI file

function readBytes(path) {
    var f = new File(path, "read");
    if (!f.isopen) {
        throw new Error("cannot open the MIDI file " + path);
    }
    var bytes = [];
    // Max's File: `eof` is the file's length in bytes and `position` where reading is.
    while (f.position < f.eof) {
        var chunk = f.readbytes(4096);
        if (!chunk || !chunk.length) {
            break;
        }
        for (var i = 0; i < chunk.length; i++) {
            bytes.push(chunk[i] & 255);
        }
    }
    f.close();
    return bytes;
}

// Notes of a Standard MIDI File as [{pitch, sec, dur, velocity}], seconds through its tempo map.
function parseMidi(bytes) {
    function u32(p) { return ((bytes[p] << 24) | (bytes[p + 1] << 16) | (bytes[p + 2] << 8) | bytes[p + 3]) >>> 0; }
    function tag(p) { return String.fromCharCode(bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]); }
    if (tag(0) !== "MThd") {
        throw new Error("not a MIDI file");
    }
    var division = (bytes[12] << 8) | bytes[13];
    if (division & 0x8000) {
        throw new Error("SMPTE-timed MIDI files are not supported");
    }
    var events = []; // {tick, kind: "tempo"|"on"|"off", ...}
    var pos = 8 + u32(4);
    while (pos + 8 <= bytes.length) {
        var end = pos + 8 + u32(pos + 4);
        if (tag(pos) === "MTrk") {
            var p = pos + 8;
            var tick = 0;
            var running = 0;
            while (p < end) {
                var delta = 0;
                var b;
                do { b = bytes[p++]; delta = (delta << 7) | (b & 127); } while (b & 128);
                tick += delta;
                var status = bytes[p];
                if (status < 0x80) {
                    status = running;
                } else {
                    p++;
                }
                if (status === 0xff) {
                    var type = bytes[p++];
                    var len = 0;
                    do { b = bytes[p++]; len = (len << 7) | (b & 127); } while (b & 128);
                    if (type === 0x51) {
                        events.push({tick: tick, kind: "tempo", usPerBeat: (bytes[p] << 16) | (bytes[p + 1] << 8) | bytes[p + 2]});
                    }
                    p += len;
                } else if (status === 0xf0 || status === 0xf7) {
                    var slen = 0;
                    do { b = bytes[p++]; slen = (slen << 7) | (b & 127); } while (b & 128);
                    p += slen;
                } else {
                    running = status;
                    var hi = status & 0xf0;
                    var d1 = bytes[p++];
                    var d2 = (hi === 0xc0 || hi === 0xd0) ? 0 : bytes[p++];
                    if (hi === 0x90 && d2 > 0) {
                        events.push({tick: tick, kind: "on", pitch: d1, velocity: d2});
                    } else if (hi === 0x80 || (hi === 0x90 && d2 === 0)) {
                        events.push({tick: tick, kind: "off", pitch: d1});
                    }
                }
            }
        }
        pos = end;
    }
    events.sort(function (a, b) { return a.tick - b.tick || (a.kind === "tempo" ? -1 : 0) - (b.kind === "tempo" ? -1 : 0); });
    var usPerBeat = 500000;
    var lastTick = 0;
    var sec = 0;
    var open = {};
    var notes = [];
    for (var i = 0; i < events.length; i++) {
        var ev = events[i];
        sec += (ev.tick - lastTick) / division * usPerBeat / 1e6;
        lastTick = ev.tick;
        if (ev.kind === "tempo") {
            usPerBeat = ev.usPerBeat;
        } else if (ev.kind === "on") {
            var note = {pitch: ev.pitch, sec: sec, dur: 0, velocity: ev.velocity};
            notes.push(note);
            (open[ev.pitch] = open[ev.pitch] || []).push(note);
        } else if (open[ev.pitch] && open[ev.pitch].length) {
            var n = open[ev.pitch].shift();
            n.dur = sec - n.sec;
        }
    }
    return notes;
}

// Notes for Clip.add_new_notes: start times in the clip's beats, following the region's warp map
// (warped region) or the song tempo (unwarped region, which plays the file's seconds).
function clipNotes(notes, region, tempo) {
    var toBeat = region.warp
        ? function (s) { return interpolate(region.warp, s, "sec", "beat"); }
        : function (s) { return s * tempo / 60.0; };
    var out = [];
    for (var i = 0; i < notes.length; i++) {
        var n = notes[i];
        var start = toBeat(n.sec);
        if (start < 0 || start >= region.lengthBeats) {
            continue;
        }
        var dur = Math.max(MIDI_NOTE_BEATS, toBeat(n.sec + n.dur) - start);
        out.push({pitch: n.pitch, start_time: start, duration: Math.min(dur, region.lengthBeats - start),
            velocity: Math.max(1, Math.min(127, n.velocity)), mute: 0});
    }
    return out;
}

// ---------------------------------------------------------------- inserting the results

function clipName(settings) {
    return "DARC T" + fmt(settings.temperature) + " R" + fmt(settings.rhythmStrength);
}

function capitalised(word) {
    return word.charAt(0).toUpperCase() + word.substring(1);
}

// The track holding this device; the results go right after it (or at the end).
function deviceTrackIndex() {
    var device = new LiveAPI("this_device");
    var parent = new LiveAPI(pathOf(device).replace(/ devices \d+$/, ""));
    var m = /^live_set tracks (\d+)$/.exec(pathOf(parent));
    return m ? Number(m[1]) : -1;
}

// A new track at `index` (kind "audio" or "midi"), checked: Live posts failures, it does not throw.
function newTrack(kind, index, name) {
    var s = song();
    var before = s.getcount("tracks");
    s.call(kind === "midi" ? "create_midi_track" : "create_audio_track", index);
    if (s.getcount("tracks") !== before + 1) {
        throw new Error("Live did not create the " + kind + " track");
    }
    var track = new LiveAPI("live_set tracks " + index);
    track.set("name", name);
    return track;
}

function newArrangementClip(track, create) {
    var before = track.getcount("arrangement_clips");
    create();
    var count = track.getcount("arrangement_clips");
    if (count <= before) {
        return null;
    }
    var base = pathOf(track);
    // Live keeps arrangement clips in time order: take the one that is not among the old ones.
    for (var i = count - 1; i >= 0; i--) {
        var clip = new LiveAPI(base + " arrangement_clips " + i);
        if (exists(clip) && Math.abs(num(clip, "start_time") - create.position) < 1e-6) {
            return clip;
        }
    }
    return new LiveAPI(base + " arrangement_clips " + (count - 1));
}

function newAudioClip(track, region, stem) {
    var base = pathOf(track);
    if (region.view === "arrangement") {
        var create = function () { track.call("create_audio_clip", stem, region.position); };
        create.position = region.position;
        return newArrangementClip(track, create);
    }
    var slot = new LiveAPI(base + " clip_slots " + region.scene);
    slot.call("create_audio_clip", stem);
    var clip = new LiveAPI(base + " clip_slots " + region.scene + " clip");
    return exists(clip) ? clip : null;
}

// The MIDI clip at the region: Track.create_midi_clip in the Arrangement where this Live has it,
// else ClipSlot.create_clip in the region's scene (or the first slot) of the MIDI track.
function newMidiClip(track, region) {
    var base = pathOf(track);
    var where = "";
    if (region.view === "arrangement") {
        var create = function () { track.call("create_midi_clip", region.position, region.lengthBeats); };
        create.position = region.position;
        var clip = newArrangementClip(track, create);
        if (clip) {
            return {clip: clip, where: ""};
        }
        where = " (MIDI clip in Session slot 1: this Live cannot create Arrangement MIDI clips)";
    }
    var scene = region.view === "session" ? region.scene : 0;
    new LiveAPI(base + " clip_slots " + scene).call("create_clip", region.lengthBeats);
    var made = new LiveAPI(base + " clip_slots " + scene + " clip");
    return exists(made) ? {clip: made, where: where} : null;
}

// Stems to insert: the per-piece stems as a group of tracks when they came, else the mix.
function stemList(done) {
    var list = [];
    for (var i = 0; i < PIECES.length; i++) {
        if (done.pieces[PIECES[i]]) {
            list.push({name: "DARC " + capitalised(PIECES[i]), path: done.pieces[PIECES[i]]});
        }
    }
    return list.length ? list : [{name: "DARC Drums", path: done.stem}];
}

function insertResult(done) {
    var where = done.stem.replace(/[\/\\][^\/\\]*$/, "");
    var version = liveVersion();
    if (!versionAtLeast(version, MIN_LIVE)) {
        fail("Live " + MIN_LIVE.join(".") + " or newer is needed to insert the stem (this is Live "
            + version.join(".") + "): drag it in from " + done.stem);
        return;
    }
    var s = song();
    var after = deviceTrackIndex();
    var index = after >= 0 ? after + 1 : s.getcount("tracks");
    var created = 0;
    try {
        var stems = stemList(done);
        var name = clipName(done.settings);
        var color = -1;
        for (var i = 0; i < stems.length; i++) {
            var track = newTrack("audio", index + created, stems[i].name);
            created++;
            if (color < 0) {
                color = num(track, "color");
            } else {
                track.set("color", color); // one colour: the pieces read as one group
            }
            var clip = newAudioClip(track, done.region, stems[i].path);
            if (!clip) {
                throw new Error("Live did not create the audio clip for " + stems[i].path);
            }
            clip.set("name", name);
            clip.set("warping", done.region.warp ? 1 : 0);
            if (done.region.warp) {
                new Task(warpStem, this, pathOf(clip), done.region.warp, 0).schedule(0);
            }
        }
        var note = "";
        if (done.settings.midi && done.midi) {
            note = insertMidi(done, index + created, color, name);
        }
        var at = done.region.view === "arrangement" ? "at beat " + fmt(done.region.position)
            : "in Session slot " + (done.region.scene + 1);
        var dest = done.region.outDir && done.stem.indexOf(done.region.outDir) === 0 ? "in the project"
            : "in " + where + " (not in a Live project)";
        setStatus("Done: " + name + " " + at + ", stems " + dest + note);
    } catch (e) {
        for (var k = created - 1; k >= 0; k--) {
            s.call("delete_track", index + k); // leave the set as it was
        }
        fail(e.message + "; the stem is at " + done.stem);
    }
}

// The MIDI track and clip of the played rhythm; a failure here leaves the stems in place and is
// told in the status line. Returns a note for the status line ("" when all went as planned).
function insertMidi(done, index, color, name) {
    var created = false;
    try {
        var notes = clipNotes(parseMidi(readBytes(done.midi)), done.region, num(song(), "tempo"));
        var midiTrack = newTrack("midi", index, "DARC MIDI");
        created = true;
        midiTrack.set("color", color);
        var made = newMidiClip(midiTrack, done.region);
        if (!made) {
            throw new Error("Live did not create the MIDI clip");
        }
        made.clip.set("name", name);
        if (notes.length) {
            made.clip.call("add_new_notes", {notes: notes});
        }
        return made.where;
    } catch (e) {
        if (created) {
            song().call("delete_track", index);
        }
        post("DARC Drums: no MIDI clip: " + e.message + "\n");
        return " (no MIDI clip: " + e.message + ")";
    }
}

// Live applies `warping` later, so the stem's warp map is written from a Task once Live reports
// the clip warped: the region's markers, then any marker Live placed itself is removed.
function warpStem(clipPath, markers, attempt) {
    var clip = new LiveAPI(clipPath);
    if (!exists(clip)) {
        return;
    }
    if (num(clip, "warping") !== 1) {
        if (attempt < WARP_RETRIES) {
            new Task(warpStem, this, clipPath, markers, attempt + 1).schedule(10);
        } else {
            fail("Live did not warp the stem: set it to the song (Warp on) by hand");
        }
        return;
    }
    for (var i = 0; i < markers.length; i++) {
        clip.call("add_warp_marker", {beat_time: markers[i].beat, sample_time: markers[i].sec});
    }
    var have = warpMarkers(clip);
    for (var j = 0; j < have.length; j++) {
        var ours = false;
        for (var k = 0; k < markers.length; k++) {
            ours = ours || Math.abs(markers[k].beat - have[j].beat) < 1e-6;
        }
        if (!ours) {
            clip.call("remove_warp_marker", have[j].beat);
        }
    }
    var endBeat = markers[markers.length - 1].beat;
    clip.set("loop_end", endBeat);
    clip.set("end_marker", endBeat);
}

// ---------------------------------------------------------------- OSC replies

function onAccepted(id, position) {
    job.accepted = true;
    setStatus(position > 0 ? "Queued (" + position + " ahead)" : "Generating...");
}

function onProgress(id, stage, fraction) {
    job.accepted = true;
    var pct = Math.round(Number(fraction) * 100);
    setStatus("Generating: " + stage + " " + pct + "%");
}

// pairs: ["kick", path, "snare", path, ...] after /darc/done's five arguments (split stems).
function onDone(id, stem, midi, pairs) {
    var pieces = {};
    for (var i = 0; pairs && i + 1 < pairs.length; i += 2) {
        pieces[String(pairs[i])] = String(pairs[i + 1]);
    }
    var done = {stem: String(stem), midi: midi ? String(midi) : "", pieces: pieces, region: job.region,
        settings: job.settings};
    job = null;
    setStatus("Inserting the stem...");
    var task = new Task(insertResult, this, done);
    task.schedule(0);
}

function onError(id, code, message) {
    if (String(code) === "cancelled") {
        job = null;
        setStatus("Cancelled");
        return;
    }
    fail(code + ": " + message);
}

function onStatus(id, state, fraction, stem, midi, code, message) {
    if (state === "done" && stem) {
        onDone(id, stem, midi, []);
    } else if (state === "cancelled") {
        job = null;
        setStatus("Cancelled");
    } else if (state === "error") {
        fail(code + ": " + message);
    } else if (state === "unknown") {
        fail("the daemon does not know this job (restarted?)");
    } else {
        job.accepted = true;
    }
}

function onKits(names) {
    kitNames = [];
    for (var i = 0; i < names.length; i++) {
        kitNames.push(String(names[i]));
    }
    var menu = named("kitMenu");
    if (menu) {
        menu.message("_parameter_range", [KIT_DEFAULT_ITEM].concat(kitNames));
    }
    var saved = storedText("kitStore");
    kitName = "";
    for (var j = 0; j < kitNames.length; j++) {
        if (kitNames[j] === saved) {
            kitName = saved;
            if (menu) {
                menu.message("set", j + 1);
            }
        }
    }
}

function anything() {
    var args = arrayfromargs(arguments);
    var address = messagename;
    if (address === "/darc/pong") {
        var wasOffline = missedPongs >= MISSED_PONGS_OFFLINE;
        missedPongs = 0;
        silentPings = 0;
        portMoves = 0;
        setLight(true);
        if (wasOffline && !kitNames.length) {
            requestKits(); // the daemon (back) online: fill the kit menu
        }
        return;
    }
    if (address === "/darc/kits") {
        onKits(args);
        return;
    }
    if (address.indexOf("/darc/") !== 0) {
        post("DARC Drums: unknown message " + address + "\n");
        return;
    }
    var id = String(args[0]);
    if (address === "/darc/error" && id === "" && String(args[1]) === "unknown_address") {
        return; // an older daemon without /darc/kits
    }
    if (address === "/darc/error" && id === "" && job) {
        onError(id, args[1], args[2]);
        return;
    }
    if (!job || id !== job.id) {
        return; // a reply for another (older) job
    }
    if (address === "/darc/accepted") {
        onAccepted(id, Number(args[1]));
    } else if (address === "/darc/progress") {
        onProgress(id, args[1], args[2]);
    } else if (address === "/darc/done") {
        onDone(id, args[1], args[2], args.slice(5));
    } else if (address === "/darc/error") {
        onError(id, args[1], args[2]);
    } else if (address === "/darc/status") {
        onStatus(id, args[1], args[2], args[3], args[4], args[5], args[6]);
    }
}

// ---------------------------------------------------------------- messages from the patcher

function init() {
    ready = true;
    listenOn(replyPortFor(new LiveAPI("this_device").id));
    refreshTracks();
    if (pingTask) {
        pingTask.cancel(); // live.thisdevice bangs again when the device is re-initialised
    }
    pingTask = new Task(pingTick, this);
    pingTask.interval = PING_INTERVAL_MS;
    pingTask.repeat();
    requestKits();
    setStatus("Ready");
}

function bang() {
    init();
}

function generate() {
    if (!ready) {
        setStatus("Error: the device is still loading");
        return;
    }
    if (job || capture) {
        setStatus("Busy: press Cancel first");
        return;
    }
    try {
        if (regionSource === "capture") {
            resolvePrompt(null);
            startCapture();
            return;
        }
        var region = regionFromSelectedClip();
        submit(region, resolvePrompt(region));
    } catch (e) {
        fail(e.message);
    }
}

function cancel() {
    if (capture) {
        outlet(OUT_RECORDER, 0);
        stopObservers();
        capture = null;
        setStatus("Capture cancelled");
        return;
    }
    if (!job) {
        setStatus("Nothing to cancel");
        return;
    }
    send(["/darc/cancel", job.id, replyPort]);
    setStatus("Cancelling...");
}

function prompt_file(path) {
    promptFile = nativePath(String(path));
    promptSource = "file";
    setStatus("Prompt: " + promptFile.replace(/^.*[\/\\]/, ""));
}

function prompt_source(index) {
    promptSource = PROMPT_SOURCES[Number(index)] || "file";
    if (promptSource === "track" && ready) {
        refreshTracks();
    }
}

function prompt_track(index) {
    if (!trackList.length) {
        return; // Live restoring the menu's stale index at load: refreshTracks chooses the track
    }
    var entry = trackList[Number(index)];
    promptTrackIndex = entry ? entry.index : -1;
    storeText("trackStore", entry ? entry.name : "");
}

function region_source(index) {
    regionSource = REGION_SOURCES[Number(index)] || "clip";
}

function kit(index) {
    if (!kitNames.length) {
        return; // the menu's stale index at load: onKits chooses the kit
    }
    var i = Number(index);
    kitName = i >= 1 && i <= kitNames.length ? kitNames[i - 1] : "";
    storeText("kitStore", kitName);
}

function midi_out(value) {
    midiOut = Number(value) !== 0;
}

function split_stems(value) {
    splitStems = Number(value) !== 0;
}

// "Pick": remember the clip shown in the Detail view as the rhythm prompt.
function pick_prompt() {
    if (!ready) {
        return;
    }
    var clip = new LiveAPI("live_set view detail_clip");
    if (!exists(clip) || num(clip, "is_audio_clip") !== 1) {
        fail("select an audio clip to use as the rhythm prompt");
        return;
    }
    promptClip = {path: String(first(clip.get("file_path"))), name: String(first(clip.get("name")))};
    promptSource = "clip";
    setStatus("Prompt: clip " + promptClip.name);
}

function daemon(host, port) {
    DAEMON_HOST = String(host);
    DAEMON_PORT = Number(port);
    var out = named("oscOut");
    if (out) {
        out.message("host", DAEMON_HOST);
        out.message("port", DAEMON_PORT);
    }
    portMoves = 0;
    ping();
}
