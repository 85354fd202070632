// Fakes of Max's [js] globals (LiveAPI, Task, outlet, post, File, Folder, this.patcher) and of a
// small Live set, so darc_drums.js runs under node as Max would run it. Plain CommonJS, no npm.
//
// What the fakes model, because it is what real hosts do (see docs/daw.md):
// - Max loads the device from "DARC Drums.amxd" and finds its js file by name in the device's own
//   folder only (not in subfolders);
// - Live's version gates functions: Track.create_audio_clip and ClipSlot.create_audio_clip need
//   12.0.5; a missing function, or one listed in spec.failCalls, only posts an error (no throw);
// - song time wraps at the Arrangement loop's end while the loop switch is on;
// - start_playing and set("warping") take effect later (when Live next runs: live.settle());
// - warped clips map beats to file seconds through warp markers (the ratio need not be 1).
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const REPO = path.resolve(__dirname, "..", "..");
const DEVICE_FILE = path.join(REPO, "max_for_live", "DARC Drums.amxd");

// ---------------------------------------------------------------- the device file, as Max reads it

function readChunks(data) {
  const chunks = {};
  let pos = 0;
  while (pos + 8 <= data.length) {
    const tag = data.toString("latin1", pos, pos + 4);
    const size = data.readUInt32LE(pos + 4);
    chunks[tag] = data.subarray(pos + 8, pos + 8 + size);
    pos += 8 + size;
  }
  return chunks;
}

function devicePatcher(deviceFile) {
  const chunks = readChunks(fs.readFileSync(deviceFile));
  if (!chunks.ptch) throw new Error(deviceFile + ": no ptch chunk (frozen devices are not modelled)");
  return JSON.parse(chunks.ptch.toString("utf8").replace(/\0+$/, "")).patcher;
}

// Max's lookup of a file named in a box: the folder holding the device, then the search path
// (here: spec.searchPath folders); never the device folder's subfolders.
function findFile(deviceFile, name, searchPath) {
  for (const dir of [path.dirname(deviceFile), ...(searchPath || [])]) {
    const candidate = path.join(dir, name);
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error("js: can't find file " + name);
}

// ---------------------------------------------------------------- Live

function versionAtLeast(have, want) {
  for (let i = 0; i < want.length; i++) if ((have[i] || 0) !== want[i]) return (have[i] || 0) > want[i];
  return true;
}

const NEEDS = { // Live API functions and the version that has them
  "Track.create_audio_clip": [12, 0, 5],
  "ClipSlot.create_audio_clip": [12, 0, 5],
  "Track.create_midi_clip": [12, 1, 0],
  "Clip.add_new_notes": [11, 1, 0],
  "Clip.add_warp_marker": [11, 0, 0],
};

class FakeLive {
  constructor(spec) {
    this.song = spec.song;
    this.devicePath = spec.devicePath || "live_set tracks 0 devices 0";
    this.version = spec.liveVersion || [12, 1, 0];
    this.failCalls = new Set(spec.failCalls || []);
    this.autoWarp = spec.autoWarp !== undefined ? spec.autoWarp : 1; // Live's preference for new clips
    this.calls = []; // every set() and call(): [path, what, args]
    this.errors = []; // what Live would print in the Max window
    this.violations = []; // Live changed from an observer, or used before live.thisdevice
    this.observers = [];
    this.pending = []; // host work Live does later (transport start, warping)
    this.ready = false;
    this.inObserver = false;
    this.app = {};
  }

  resolve(p) {
    const tokens = String(p).replace(/"/g, "").trim().split(/\s+/);
    if (tokens[0] === "this_device") {
      return this.resolve(this.devicePath + (tokens.length > 1 ? " " + tokens.slice(1).join(" ") : ""));
    }
    if (tokens[0] === "live_app") return { obj: this.app, path: "live_app", kind: "Application" };
    if (tokens[0] !== "live_set") return null;
    if (tokens[1] === "view" && tokens[2] === "detail_clip") {
      return this.song.view.detail_clip ? this.resolve(this.song.view.detail_clip) : null;
    }
    let node = { obj: this.song, path: "live_set", kind: "Song" };
    for (let i = 1; i < tokens.length; i++) {
      const key = tokens[i];
      const child = node.obj[key];
      if (child === undefined || child === null) return null;
      if (Array.isArray(child)) {
        const item = child[Number(tokens[++i])];
        if (!item) return null;
        const kind = { tracks: "Track", clip_slots: "ClipSlot", arrangement_clips: "Clip", devices: "Device" }[key];
        node = { obj: item, path: node.path + " " + key + " " + tokens[i], kind };
      } else {
        node = { obj: child, path: node.path + " " + key, kind: key === "clip" ? "Clip" : "Object" };
      }
    }
    return node;
  }

  change(pathText, what, args) {
    if (this.inObserver) this.violations.push("changed Live inside an observer: " + what);
    this.calls.push([pathText, what, args]);
  }

  emit(prop, value) {
    this.song[prop] = value;
    for (const o of this.observers.slice()) {
      if (o.property === prop) {
        this.inObserver = true;
        try { o.cb.call(o, [prop, value]); } finally { this.inObserver = false; }
      }
    }
  }

  // Live's main loop runs: the transport starts, warping switches are applied.
  settle() {
    const work = this.pending;
    this.pending = [];
    for (const fn of work) fn();
  }

  // The transport plays `beats` forward in steps; the song time wraps at the loop's end when the
  // loop switch is on (as in Live), else runs on.
  play(beats, step = 1) {
    const s = this.song;
    const loopEnd = s.loop_start + s.loop_length;
    for (let done = 0; done < beats - 1e-9 && s.is_playing; done += step) {
      let t = s.current_song_time + step;
      if (s.loop && t >= loopEnd) t = s.loop_start + (t - loopEnd);
      this.emit("current_song_time", t);
    }
  }

  fails(node, name) {
    const key = node.kind + "." + name;
    if (this.failCalls.has(name) || (NEEDS[key] && !versionAtLeast(this.version, NEEDS[key]))) {
      this.errors.push("live.object: invalid call " + name + " on " + node.path);
      return true;
    }
    return false;
  }

  callFunction(node, name, args) {
    const obj = node.obj;
    if (this.fails(node, name)) return undefined;
    if (node.kind === "Application") {
      return { get_major_version: this.version[0], get_minor_version: this.version[1],
        get_bugfix_version: this.version[2] }[name];
    }
    if (name === "create_audio_track" || name === "create_midi_track") {
      const index = args[0] < 0 ? obj.tracks.length : args[0];
      obj.tracks.splice(index, 0, { name: name === "create_midi_track" ? "MIDI" : "Audio", color: 0x1100ff + index,
        has_midi_input: name === "create_midi_track" ? 1 : 0, arrangement_clips: [],
        clip_slots: [{}, {}, {}, {}, {}, {}, {}, {}] });
    } else if (name === "delete_track") {
      obj.tracks.splice(args[0], 1);
    } else if (name === "create_audio_clip" && node.kind === "Track") {
      obj.arrangement_clips.push(this.newAudioClip(args[0], { start_time: args[1] }));
      obj.arrangement_clips.sort((a, b) => a.start_time - b.start_time);
    } else if (name === "create_audio_clip") {
      obj.clip = this.newAudioClip(args[0], {});
    } else if (name === "create_midi_clip") {
      obj.arrangement_clips.push({ is_audio_clip: 0, is_midi_clip: 1, start_time: args[0], length: args[1], notes: [], name: "" });
      obj.arrangement_clips.sort((a, b) => a.start_time - b.start_time);
    } else if (name === "create_clip") {
      obj.clip = { is_audio_clip: 0, is_midi_clip: 1, length: args[0], notes: [], name: "" };
    } else if (name === "add_new_notes") {
      obj.notes.push(...JSON.parse(JSON.stringify(args[0].notes)));
    } else if (name === "add_warp_marker") {
      if (!obj.warping) { this.errors.push("add_warp_marker: the clip is not warped"); return undefined; }
      const m = { beat_time: args[0].beat_time, sample_time: args[0].sample_time };
      obj.warp_markers = obj.warp_markers.filter((w) => Math.abs(w.beat_time - m.beat_time) > 1e-9).concat([m])
        .sort((a, b) => a.beat_time - b.beat_time);
    } else if (name === "remove_warp_marker") {
      obj.warp_markers = obj.warp_markers.filter((w) => Math.abs(w.beat_time - args[0]) > 1e-9);
    } else if (name === "start_playing") {
      this.pending.push(() => { if (!this.song.is_playing) this.emit("is_playing", 1); });
    } else if (name === "stop_playing") {
      this.song.is_playing = 0;
      this.pending.push(() => this.emit("is_playing", 0));
    }
    return undefined;
  }

  // A new audio clip as Live makes it: warped or not by preference, with Live's own warp guess.
  newAudioClip(file, extra) {
    return Object.assign({ file_path: file, is_audio_clip: 1, warping: this.autoWarp, name: path.basename(file),
      looping: 0, start_marker: 0, end_marker: 16, loop_start: 0, loop_end: 16,
      warp_markers: [{ beat_time: 0, sample_time: 0 }, { beat_time: 16, sample_time: 8 }] }, extra);
  }

  set(node, prop, value) {
    if (prop === "warping" && node.kind === "Clip") {
      this.pending.push(() => { node.obj.warping = value; }); // "applied later by Live"
      return;
    }
    node.obj[prop] = value;
  }
}

function makeLiveAPI(live) {
  function LiveAPI(a, b) {
    const cb = typeof a === "function" ? a : null;
    const p = cb ? b : a;
    if (!live.ready) live.violations.push("LiveAPI used before live.thisdevice: " + p);
    const node = live.resolve(p);
    this._node = node;
    this.unquotedpath = node ? node.path : "";
    this.path = '"' + this.unquotedpath + '"';
    // Max gives ids as strings; a Live object may fix its own (a device's id picks its reply port).
    this.id = String(node ? (node.obj.id !== undefined ? node.obj.id : 1 + live.calls.length) : 0);
    this._cb = cb;
    let property = "";
    Object.defineProperty(this, "property", {
      get: () => property,
      set: (v) => {
        property = v;
        live.observers = live.observers.filter((o) => o !== this._observer);
        if (v) {
          this._observer = { property: v, cb: cb };
          live.observers.push(this._observer);
        }
      },
    });
  }
  LiveAPI.prototype.get = function (prop) {
    const v = this._node ? this._node.obj[prop] : undefined;
    if (prop === "warp_markers") return JSON.stringify({ warp_markers: v || [] });
    if (prop === "end_time" && v === undefined && this._node) {
      return [this._node.obj.start_time + (this._node.obj.length || 0)];
    }
    return [v === undefined ? 0 : v];
  };
  LiveAPI.prototype.set = function (prop, value) {
    live.change(this.unquotedpath, "set " + prop, [value]);
    live.set(this._node, prop, value);
  };
  LiveAPI.prototype.call = function (name, ...args) {
    if (this._node && this._node.kind !== "Application") live.change(this.unquotedpath, name, args);
    return live.callFunction(this._node, name, args);
  };
  LiveAPI.prototype.getcount = function (child) {
    const list = this._node ? this._node.obj[child] : null;
    return Array.isArray(list) ? list.length : 0;
  };
  return LiveAPI;
}

// ---------------------------------------------------------------- Max

// Boxes of the device's patcher, found by scripting name (varname) like this.patcher.getnamed();
// `stored` holds values Live restores from the set (parameters, stored pattr objects).
function makePatcher(patcher, dialValues, stored) {
  const boxes = {};
  const missing = [];
  for (const entry of patcher.boxes) {
    const box = entry.box;
    if (!box.varname) continue;
    const param = box.saved_attribute_attributes ? box.saved_attribute_attributes.valueof : {};
    const initial = param && param.parameter_initial ? param.parameter_initial[0] : 0;
    let value = box.varname in dialValues ? dialValues[box.varname] : initial;
    if (box.varname in stored) value = stored[box.varname];
    boxes[box.varname] = {
      maxclass: box.maxclass,
      text: box.text || "",
      messages: [],
      value,
      message(...args) { this.messages.push(args); },
      getvalueof() { return this.value; },
      setvalueof(v) { this.value = v; },
      last() { return this.messages[this.messages.length - 1]; },
    };
  }
  return {
    boxes,
    missing,
    getnamed(name) {
      if (!(name in boxes)) { missing.push(name); return null; }
      return boxes[name];
    },
  };
}

// Max's File (read mode, bytes) and Folder (count of entries), over the real file system, with
// spec.folders standing in for folders the test does not create ({path: [names]}).
function makeFileClasses(spec) {
  // Max's File: `eof` is the length in bytes (not a flag), `position` the read position.
  function File(p, mode) {
    this.isopen = false;
    this.position = 0;
    this.eof = 0;
    try { this._data = fs.readFileSync(p); this.isopen = true; this.eof = this._data.length; }
    catch (e) { this._data = null; }
  }
  File.prototype.readbytes = function (n) {
    if (!this._data) return [];
    const out = Array.from(this._data.subarray(this.position, this.position + n));
    this.position += out.length;
    return out;
  };
  File.prototype.close = function () { this.isopen = false; };
  function Folder(p) {
    const folders = spec.folders || {};
    if (p in folders) this.count = folders[p].length;
    else {
      try { this.count = fs.readdirSync(p).length; } catch (e) { this.count = 0; }
    }
  }
  Folder.prototype.close = function () {};
  return { File, Folder };
}

// Load the device as Live would: its patcher from the .amxd, its script found by Max's lookup.
function loadDevice(spec = {}) {
  const deviceFile = spec.deviceFile || DEVICE_FILE;
  const patcherJson = devicePatcher(deviceFile);
  const jsBox = patcherJson.boxes.map((b) => b.box).find((b) => /^js /.test(b.text || ""));
  const jsFile = findFile(deviceFile, jsBox.text.split(" ")[1], spec.searchPath);
  const live = new FakeLive(spec);
  const patcher = makePatcher(patcherJson, spec.dials || {}, spec.stored || {});
  const outlets = [];
  const tasks = [];
  const posts = [];
  function Task(fn, obj, ...args) {
    this.fn = fn; this.obj = obj; this.args = args; this.interval = 0;
    this.scheduled = false; this.repeating = false; this.delay = 0;
    tasks.push(this);
  }
  Task.prototype.schedule = function (ms) { this.scheduled = true; this.delay = ms || 0; };
  Task.prototype.repeat = function () { this.repeating = true; };
  Task.prototype.cancel = function () { this.scheduled = false; this.repeating = false; };
  Task.prototype.execute = function () { this.fn.apply(this.obj, this.args); };

  const files = makeFileClasses(spec);
  const ctx = {
    outlet(n, ...args) { outlets.push([n, ...(args.length === 1 && Array.isArray(args[0]) ? args[0] : args)]); },
    post(...args) { posts.push(args.join(" ")); },
    arrayfromargs(a) { return Array.prototype.slice.call(a); },
    LiveAPI: makeLiveAPI(live),
    Task,
    File: files.File,
    Folder: files.Folder,
    max: { os: spec.os || "macintosh" },
    patcher,
    messnamed() {},
  };
  vm.createContext(ctx);
  vm.runInContext(fs.readFileSync(jsFile, "utf8"), ctx, { filename: jsFile });

  const device = {
    ctx, live, patcher, outlets, tasks, posts, jsFile,
    // live.thisdevice bangs: the Live API becomes usable.
    start() { live.ready = true; ctx.bang(); },
    // A message arriving at the js inlet (from udpreceive this is "/darc/..." + args).
    send(name, ...args) {
      if (typeof ctx[name] === "function" && name.charAt(0) !== "/") return ctx[name](...args);
      ctx.messagename = name;
      return ctx.anything(...args);
    },
    // Scheduler: run the one-shot tasks due within `ms` (0: deferred work only, not timeouts),
    // again and again while they schedule more, letting Live do its later work in between;
    // repeating tasks only through tickRepeating().
    runTasks(ms = 0) {
      let ran = 0;
      for (let guard = 0; guard < 200; guard++) {
        live.settle();
        const due = tasks.filter((t) => t.scheduled && !t.repeating && t.delay <= ms);
        if (!due.length) return ran;
        for (const t of due) { t.scheduled = false; t.execute(); ran++; }
      }
      throw new Error("tasks keep rescheduling themselves");
    },
    tickRepeating() { for (const t of tasks.filter((x) => x.repeating)) t.execute(); },
    osc() { return outlets.filter((o) => o[0] === 0).map((o) => o.slice(1)); },
    recorder() { return outlets.filter((o) => o[0] === 1).map((o) => o.slice(1)); },
    // Plain node data (arrays made inside the vm context have another Array prototype).
    plain(x) { return JSON.parse(JSON.stringify(x)); },
    status() { const m = patcher.boxes.status.last(); return m ? m.slice(1).join(" ") : ""; },
  };
  return device;
}

module.exports = { loadDevice, findFile, devicePatcher, REPO, DEVICE_FILE };
