// DARC Drums: the logic of the Max for Live device.
//
// Max's [js] object runs ES5 with globals (inlets, outlets, outlet, post, LiveAPI, Task), so this
// file uses var/function only. It talks OSC to the darc-bridge daemon (docs/protocol.md) through
// [udpsend] (outlet 0) and receives replies from [udpreceive] as messages named "/darc/...".
// Each device instance listens on its own reply port (see replyPortFor), so several devices in one
// Live set, or in two Live instances, do not steal each other's replies.
//
// Rules kept here on purpose:
// - the Live API is touched only after [live.thisdevice] has banged (init);
// - Live is never changed inside an observer callback or an OSC reply: changes run in a Task;
// - the stem goes on a new audio track at the region's start, warping off, named after the job.
//
// Timing assumption (see docs/daw.md): a warped clip's markers (beats) map to seconds in its file
// through its warp markers (Live 11+), else through the song tempo; an unwarped clip's markers are
// read as seconds unless they match the clip's length in beats, then the song tempo converts them.

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

var PING_INTERVAL_MS = 2000;
var MISSED_PONGS_OFFLINE = 3; // pings without an answer before the light goes off
var ACCEPT_TIMEOUT_MS = 3000;
var SEND_RETRIES = 3;

// Scripting names of the patcher objects this file addresses (the test checks they exist).
var NAMED = {
    status: "status",
    light: "connected",
    temperature: "temperature",
    rhythmStrength: "rhythm_strength",
    promptMenu: "prompt_source",
    regionMenu: "region_source",
    trackMenu: "prompt_track",
    oscOut: "osc_out",
    oscIn: "osc_in"
};

var PROMPT_SOURCES = ["file", "clip", "track"]; // live.menu items, in order
var REGION_SOURCES = ["clip", "capture"];

var ready = false;
var job = null; // the job in flight: {id, message, position, view, settings, retries, ...}
var promptFile = "";
var promptClip = null; // {path, name}
var promptTrackIndex = -1;
var promptSource = "file";
var regionSource = "clip";
var trackList = []; // [{index, name}] offered in the track menu
var missedPongs = MISSED_PONGS_OFFLINE;
var replyPort = DEFAULT_REPLY_PORT;
var silentPings = 0; // pings sent on replyPort without a pong
var pingTask = null;
var acceptTask = null;
var capture = null; // {path, loopStart, loopEnd, observer}

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

function pathOf(api) {
    var p = api.unquotedpath;
    if (p === undefined) {
        p = String(api.path).replace(/"/g, "");
    }
    return p;
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

// ---------------------------------------------------------------- clip timing

// Seconds in the clip's file at a clip-time value (beats for warped clips).
function clipSecondsAt(clip, value, tempo) {
    if (Number(first(clip.get("warping"))) === 1) {
        var markers = warpMarkers(clip);
        if (markers.length >= 2) {
            return interpolate(markers, value);
        }
        return value * 60.0 / tempo;
    }
    var span = Number(first(clip.get("end_marker"))) - Number(first(clip.get("start_marker")));
    var lengthBeats = Number(first(clip.get("length")));
    if (Math.abs(span - lengthBeats) < 1e-6 && isFinite(lengthBeats)) {
        // Unwarped, but reported in beats: they play at the song tempo.
        return value * 60.0 / tempo;
    }
    return value;
}

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

function interpolate(markers, beat) {
    var i = 0;
    while (i < markers.length - 2 && beat > markers[i + 1].beat) {
        i++;
    }
    var a = markers[i];
    var b = markers[i + 1];
    var slope = (b.sec - a.sec) / (b.beat - a.beat);
    return a.sec + (beat - a.beat) * slope;
}

// The region to accompany, from the clip shown in Live's Detail view.
function regionFromSelectedClip() {
    var clip = new LiveAPI("live_set view detail_clip");
    if (!clip || Number(clip.id) === 0) {
        throw new Error("select an audio clip (the region) first");
    }
    if (Number(first(clip.get("is_audio_clip"))) !== 1) {
        throw new Error("the selected clip is a MIDI clip: select an audio clip");
    }
    var file = String(first(clip.get("file_path")) || "");
    if (!file) {
        throw new Error("the selected clip has no audio file");
    }
    var tempo = Number(first(song().get("tempo")));
    var looping = Number(first(clip.get("looping"))) === 1;
    var startMark = Number(first(clip.get(looping ? "loop_start" : "start_marker")));
    var endMark = Number(first(clip.get(looping ? "loop_end" : "end_marker")));
    var start = Math.max(0, clipSecondsAt(clip, startMark, tempo));
    var end = clipSecondsAt(clip, endMark, tempo);
    var rate = Number(first(clip.get("sample_rate")));
    var frames = Number(first(clip.get("sample_length")));
    if (rate > 0 && frames > 0) {
        end = Math.min(end, frames / rate);
    }
    if (!(end > start)) {
        throw new Error("the selected clip's region is empty");
    }
    var path = pathOf(clip);
    var region = {mix: file, start: start, end: end, name: String(first(clip.get("name")) || "")};
    var slot = /^live_set tracks (\d+) clip_slots (\d+) clip$/.exec(path);
    if (slot) {
        region.view = "session";
        region.scene = Number(slot[2]);
        region.position = 0;
    } else {
        region.view = "arrangement";
        region.position = Number(first(clip.get("start_time")));
    }
    return region;
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
        if (Number(first(clip.get("is_audio_clip"))) !== 1) {
            continue;
        }
        var file = String(first(clip.get("file_path")) || "");
        var s = Number(first(clip.get("start_time")));
        var e = Number(first(clip.get("end_time")));
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
// random other port in the range. When the daemon is simply not running this just keeps moving,
// which is harmless: every request names the port its replies go to.
function moveReplyPort() {
    var port = replyPort;
    while (port === replyPort) {
        port = REPLY_PORT_BASE + Math.floor(Math.random() * REPLY_PORT_SPAN);
    }
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
    if (silentPings >= SILENT_PINGS_BEFORE_MOVE) {
        moveReplyPort();
    }
    ping();
    if (job && job.accepted) {
        send(["/darc/status", job.id, replyPort]);
    }
}

function generateMessage(id, region, prompt, settings) {
    return ["/darc/generate", id, replyPort, region.mix, prompt || "",
        "temperature", settings.temperature,
        "rhythm_strength", settings.rhythmStrength,
        "start", region.start, "end", region.end];
}

function submit(region, prompt) {
    var settings = {
        temperature: dialValue("temperature", 1.0),
        rhythmStrength: dialValue("rhythmStrength", 1.0)
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
        fail("daemon not answering on " + DAEMON_HOST + ":" + DAEMON_PORT + " (start: darc-bridge serve)");
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

// ---------------------------------------------------------------- capture (sfrecord~)

function startCapture() {
    var s = song();
    var loopStart = Number(first(s.get("loop_start")));
    var loopLength = Number(first(s.get("loop_length")));
    if (!(loopLength > 0)) {
        throw new Error("set a loop region to capture first");
    }
    var folder = captureFolder();
    var path = folder + "/darc-capture-" + newJobId() + ".wav";
    capture = {path: path, loopStart: loopStart, loopEnd: loopStart + loopLength, started: false};
    outlet(OUT_RECORDER, "open", path);
    s.set("current_song_time", loopStart);
    s.call("start_playing");
    outlet(OUT_RECORDER, 1);
    capture.observer = new LiveAPI(captureObserver, "live_set");
    capture.observer.property = "current_song_time";
    setStatus("Capturing the loop region...");
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

// Observer callback: only notes the end and defers the change to a Task.
function captureObserver(args) {
    if (!capture || args[0] !== "current_song_time") {
        return;
    }
    var t = Number(args[1]);
    if (t >= capture.loopEnd && !capture.stopping) {
        capture.stopping = true;
        var stopTask = new Task(finishCapture, this);
        stopTask.schedule(0);
    }
}

function finishCapture() {
    if (!capture) {
        return;
    }
    outlet(OUT_RECORDER, 0);
    song().call("stop_playing");
    if (capture.observer) {
        capture.observer.property = "";
    }
    var region = {mix: capture.path, start: 0, end: (capture.loopEnd - capture.loopStart) * 60.0
        / Number(first(song().get("tempo"))), view: "arrangement", position: capture.loopStart, name: "capture"};
    capture = null;
    try {
        submit(region, resolvePrompt(region));
    } catch (e) {
        fail(e.message);
    }
}

// ---------------------------------------------------------------- inserting the stem

function clipName(settings) {
    return "DARC T" + fmt(settings.temperature) + " R" + fmt(settings.rhythmStrength);
}

// The track holding this device; the stem goes right after it (or at the end).
function deviceTrackIndex() {
    var device = new LiveAPI("this_device");
    var parent = new LiveAPI(pathOf(device).replace(/ devices \d+$/, ""));
    var m = /^live_set tracks (\d+)$/.exec(pathOf(parent));
    return m ? Number(m[1]) : -1;
}

function insertStem(done) {
    var s = song();
    var after = deviceTrackIndex();
    var index = after >= 0 ? after + 1 : s.getcount("tracks");
    s.call("create_audio_track", index);
    var base = "live_set tracks " + index;
    var track = new LiveAPI(base);
    var name = clipName(done.settings);
    track.set("name", "DARC Drums");
    var clip = null;
    var note = "";
    if (done.region.view === "arrangement") {
        clip = insertInArrangement(track, base, done.stem, done.region.position);
        if (!clip) {
            note = " (Live 12.0.5+ inserts in the Arrangement)";
        }
    }
    if (!clip) {
        var slot = done.region.view === "session" ? done.region.scene : 0;
        new LiveAPI(base + " clip_slots " + slot).call("create_audio_clip", done.stem);
        clip = new LiveAPI(base + " clip_slots " + slot + " clip");
    }
    clip.set("warping", 0);
    clip.set("name", name);
    if (done.region.view === "arrangement" && !note) {
        setStatus("Done: " + name + " at beat " + fmt(done.region.position));
    } else {
        setStatus("Done: " + name + " in Session slot " + ((done.region.scene || 0) + 1) + note);
    }
}

function insertInArrangement(track, base, stem, position) {
    var before = track.getcount("arrangement_clips");
    track.call("create_audio_clip", stem, position);
    var after = track.getcount("arrangement_clips");
    if (after <= before) {
        return null;
    }
    for (var i = 0; i < after; i++) {
        var clip = new LiveAPI(base + " arrangement_clips " + i);
        if (Math.abs(Number(first(clip.get("start_time"))) - position) < 1e-6) {
            return clip;
        }
    }
    return null;
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

function onDone(id, stem) {
    var done = {stem: String(stem), region: job.region, settings: job.settings};
    job = null;
    setStatus("Inserting the stem...");
    var task = new Task(insertStem, this, done);
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
        onDone(id, stem);
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

function anything() {
    var args = arrayfromargs(arguments);
    var address = messagename;
    if (address === "/darc/pong") {
        missedPongs = 0;
        silentPings = 0;
        setLight(true);
        return;
    }
    if (address.indexOf("/darc/") !== 0) {
        post("DARC Drums: unknown message " + address + "\n");
        return;
    }
    var id = String(args[0]);
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
        onDone(id, args[1]);
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
        if (capture.observer) {
            capture.observer.property = "";
        }
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
    var entry = trackList[Number(index)];
    promptTrackIndex = entry ? entry.index : -1;
}

function region_source(index) {
    regionSource = REGION_SOURCES[Number(index)] || "clip";
}

// "Pick": remember the clip shown in the Detail view as the rhythm prompt.
function pick_prompt() {
    if (!ready) {
        return;
    }
    var clip = new LiveAPI("live_set view detail_clip");
    if (!clip || Number(clip.id) === 0 || Number(first(clip.get("is_audio_clip"))) !== 1) {
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
    ping();
}
