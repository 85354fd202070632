// Fakes of the Max [js] globals (LiveAPI, Task, outlet, post, this.patcher) and a tiny Live set,
// so darc_drums.js runs under node exactly as written for Max. Plain CommonJS, no npm packages.
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const REPO = path.resolve(__dirname, "..", "..");
const JS_FILE = path.join(REPO, "max_for_live", "src", "darc_drums.js");
const PATCHER_FILE = path.join(REPO, "max_for_live", "src", "darc_drums.maxpat");

// A Live set: song -> tracks -> arrangement_clips / clip_slots -> clip; paths as in the LOM.
class FakeLive {
  constructor(spec) {
    this.song = spec.song;
    this.devicePath = spec.devicePath || "live_set tracks 0 devices 0";
    this.arrangementInsert = spec.arrangementInsert !== false; // Live 12.0.5+
    this.calls = []; // every set() and call(): [path, what, args]
    this.violations = []; // Live changed from an observer, or used before live.thisdevice
    this.observers = [];
    this.ready = false;
    this.inObserver = false;
  }

  resolve(p) {
    const tokens = String(p).replace(/"/g, "").trim().split(/\s+/);
    if (tokens[0] === "this_device") {
      return this.resolve(this.devicePath + (tokens.length > 1 ? " " + tokens.slice(1).join(" ") : ""));
    }
    if (tokens[0] !== "live_set") return null;
    if (tokens[1] === "view" && tokens[2] === "detail_clip") {
      return this.song.view.detail_clip ? this.resolve(this.song.view.detail_clip) : null;
    }
    let node = { obj: this.song, path: "live_set" };
    for (let i = 1; i < tokens.length; i++) {
      const key = tokens[i];
      const child = node.obj[key];
      if (child === undefined || child === null) return null;
      if (Array.isArray(child)) {
        const item = child[Number(tokens[++i])];
        if (!item) return null;
        node = { obj: item, path: node.path + " " + key + " " + tokens[i] };
      } else {
        node = { obj: child, path: node.path + " " + key };
      }
    }
    return node;
  }

  change(pathText, what, args) {
    if (this.inObserver) this.violations.push("changed Live inside an observer: " + what);
    this.calls.push([pathText, what, args]);
  }

  emit(prop, value) {
    for (const o of this.observers) {
      if (o.property === prop) {
        this.inObserver = true;
        try { o.cb.call(o, [prop, value]); } finally { this.inObserver = false; }
      }
    }
  }

  callFunction(node, name, args) {
    const obj = node.obj;
    if (name === "create_audio_track") {
      const index = args[0] < 0 ? obj.tracks.length : args[0];
      obj.tracks.splice(index, 0, { name: "Audio", arrangement_clips: [], clip_slots: [{}, {}, {}, {}, {}, {}, {}, {}] });
    } else if (name === "create_audio_clip" && obj.arrangement_clips) {
      if (!this.arrangementInsert) return; // older Live: the function does not exist
      obj.arrangement_clips.push(newClip(args[0], { start_time: args[1] }));
    } else if (name === "create_audio_clip") {
      obj.clip = newClip(args[0], {});
    } else if (name === "start_playing" || name === "stop_playing") {
      obj.is_playing = name === "start_playing" ? 1 : 0;
    }
  }
}

function newClip(file, extra) {
  return Object.assign({ file_path: file, is_audio_clip: 1, warping: 1, name: path.basename(file), looping: 0 }, extra);
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
    this._node.obj[prop] = value;
  };
  LiveAPI.prototype.call = function (name, ...args) {
    live.change(this.unquotedpath, name, args);
    live.callFunction(this._node, name, args);
  };
  LiveAPI.prototype.getcount = function (child) {
    const list = this._node ? this._node.obj[child] : null;
    return Array.isArray(list) ? list.length : 0;
  };
  return LiveAPI;
}

// Boxes of the real patcher, found by scripting name (varname) like this.patcher.getnamed().
function makePatcher(dialValues) {
  const patcher = JSON.parse(fs.readFileSync(PATCHER_FILE, "utf8")).patcher;
  const boxes = {};
  const missing = [];
  for (const entry of patcher.boxes) {
    const box = entry.box;
    if (!box.varname) continue;
    const param = box.saved_attribute_attributes ? box.saved_attribute_attributes.valueof : {};
    const initial = param && param.parameter_initial ? param.parameter_initial[0] : 0;
    boxes[box.varname] = {
      maxclass: box.maxclass,
      messages: [],
      value: box.varname in dialValues ? dialValues[box.varname] : initial,
      message(...args) { this.messages.push(args); },
      getvalueof() { return this.value; },
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

// Load darc_drums.js into a fresh context holding the fakes; returns handles for the test.
function loadDevice(spec = {}) {
  const live = new FakeLive(spec);
  const patcher = makePatcher(spec.dials || {});
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

  const ctx = {
    outlet(n, ...args) { outlets.push([n, ...(args.length === 1 && Array.isArray(args[0]) ? args[0] : args)]); },
    post(...args) { posts.push(args.join(" ")); },
    arrayfromargs(a) { return Array.prototype.slice.call(a); },
    LiveAPI: makeLiveAPI(live),
    Task,
    max: { os: spec.os || "macintosh" },
    patcher,
    messnamed() {},
  };
  vm.createContext(ctx);
  vm.runInContext(fs.readFileSync(JS_FILE, "utf8"), ctx, { filename: JS_FILE });

  const device = {
    ctx, live, patcher, outlets, tasks, posts,
    // live.thisdevice bangs: the Live API becomes usable.
    start() { live.ready = true; ctx.bang(); },
    // A message arriving at the js inlet (from udpreceive this is "/darc/..." + args).
    send(name, ...args) {
      if (typeof ctx[name] === "function" && name.charAt(0) !== "/") return ctx[name](...args);
      ctx.messagename = name;
      return ctx.anything(...args);
    },
    // Scheduler: run the one-shot tasks due within `ms` (0: deferred work only, not timeouts),
    // again and again while they schedule more; repeating tasks only through tickRepeating().
    runTasks(ms = 0) {
      let ran = 0;
      for (let guard = 0; guard < 100; guard++) {
        const due = tasks.filter((t) => t.scheduled && !t.repeating && t.delay <= ms);
        if (!due.length) return ran;
        for (const t of due) { t.scheduled = false; t.execute(); ran++; }
      }
      throw new Error("tasks keep rescheduling themselves");
    },
    tickRepeating() { for (const t of tasks.filter((x) => x.repeating)) t.execute(); },
    osc() { return outlets.filter((o) => o[0] === 0).map((o) => o.slice(1)); },
    // Plain node data (arrays made inside the vm context have another Array prototype).
    plain(x) { return JSON.parse(JSON.stringify(x)); },
    status() { const m = patcher.boxes.status.last(); return m ? m.slice(1).join(" ") : ""; },
  };
  return device;
}

module.exports = { loadDevice, REPO, JS_FILE, PATCHER_FILE };
