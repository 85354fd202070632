-- A fake `reaper` (and `gfx`) table for running the DARC ReaScripts in plain Lua 5.4.
-- It models what the scripts touch (tracks, items, takes, MIDI, render settings, ext state,
-- defer) and records every call, so tests can check what a script did to the project.
-- Host behaviour modelled because it broke scripts (docs/daw.md):
-- - GetProjectPath() is the *recording* path; the project's folder is that of EnumProjects' file;
-- - RENDER_SETTINGS 128 (selected tracks via master) writes one file per selected track;
-- - on Windows (scenario.os "Win64") ExecProcess runs its command line the Windows way, through
--   tests/lua/fake_cmd.py (CreateProcess argument rules, cmd.exe batch-file rules).

local Fake = {}

local function wav_duration(path)
  local f = io.open(path, "rb")
  if not f then
    return 0
  end
  local data = f:read(1 << 20) or ""
  f:close()
  if data:sub(1, 4) ~= "RIFF" or data:sub(9, 12) ~= "WAVE" then
    return 0
  end
  local pos, byte_rate = 13, nil
  while pos + 8 <= #data do
    local id, size = data:sub(pos, pos + 3), string.unpack("<I4", data, pos + 4)
    if id == "fmt " then
      byte_rate = string.unpack("<I4", data, pos + 16)
    elseif id == "data" then
      local fsize = io.open(path, "rb"):seek("end")
      size = math.min(size, fsize - (pos + 7))
      return byte_rate and size / byte_rate or 0
    end
    pos = pos + 8 + size + (size % 2)
  end
  return 0
end
Fake.wav_duration = wav_duration

local function copy_file(src, dst)
  local i = assert(io.open(src, "rb"))
  local data = i:read("a")
  i:close()
  local o = assert(io.open(dst, "wb"))
  o:write(data)
  o:close()
end

function Fake.install(scenario)
  local state = {
    scenario = scenario,
    log = {}, -- names of the reaper functions called, in order
    messages = {}, -- ShowMessageBox texts
    console = {},
    exec = {}, -- ExecProcess command lines
    exec_timeouts = {}, -- and their timeout argument (-1: no wait, -2: no wait, minimised)
    renders = {}, -- render settings and track mutes at the moment of each render
    gfx_text = {},
    menus = {},
    undo = {},
    clock = 1000.0,
    queue = {},
    ext = {},
    proj_ext = {},
    tracks = {},
    selected_items = {},
    render = { numbers = {}, strings = {} },
  }
  Fake.state = state
  for k, v in pairs(scenario.ext or {}) do
    state.ext[k] = v
  end
  for k, v in pairs(scenario.proj_ext or {}) do
    state.proj_ext[k] = v
  end
  for _, t in ipairs(scenario.tracks or {}) do
    state.tracks[#state.tracks + 1] = { name = t.name, selected = t.selected or false, mute = t.mute or 0,
      solo = t.solo or 0, depth = 0, items = {} }
  end
  for k, v in pairs(scenario.render_numbers or {}) do
    state.render.numbers[k] = v
  end
  for k, v in pairs(scenario.render_strings or {}) do
    state.render.strings[k] = v
  end
  for _, it in ipairs(scenario.selected_items or {}) do
    local src = { file = it.file, length = it.source_length or wav_duration(it.file) }
    local item = { info = { D_LENGTH = it.length or src.length, D_POSITION = it.position or 0 } }
    item.take = { item = item, source = src, midi = it.midi or false,
      info = { D_STARTOFFS = it.startoffs or 0, D_PLAYRATE = it.playrate or 1 } }
    state.selected_items[#state.selected_items + 1] = item
  end

  local r = {}

  function r.GetOS() return scenario.os or "Other" end
  function r.GetExtState(section, key) return state.ext[section .. "/" .. key] or "" end
  function r.SetExtState(section, key, value, persist) state.ext[section .. "/" .. key] = value end
  function r.GetProjExtState(proj, section, key)
    local v = state.proj_ext[section .. "/" .. key]
    return v and 1 or 0, v or ""
  end
  function r.SetProjExtState(proj, section, key, value) state.proj_ext[section .. "/" .. key] = value; return 1 end
  function r.GetSet_LoopTimeRange(is_set, is_loop, s, e, allow_autoseek)
    local ts = scenario.time_selection or { 0, 0 }
    return ts[1], ts[2]
  end
  function r.GetProjectPath(buf) return scenario.recording_path or scenario.project_path end
  function r.EnumProjects(idx, buf)
    return { project = 0 }, scenario.project_file or ""
  end
  function r.RecursiveCreateDirectory(path, ignored)
    os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "'")
    return 1
  end
  function r.time_precise() return state.clock end
  function r.defer(fn) state.queue[#state.queue + 1] = fn end
  function r.atexit(fn) state.atexit = fn end
  function r.ShowMessageBox(msg, title, kind) state.messages[#state.messages + 1] = msg; return 1 end
  function r.ShowConsoleMsg(msg) state.console[#state.console + 1] = msg end
  function r.GetUserInputs(title, n, captions, defaults)
    if scenario.user_inputs_cancel then return false, "" end
    return true, scenario.user_inputs or defaults
  end
  function r.Master_GetTempo() return scenario.tempo or 120 end

  function r.CountTracks(proj) return #state.tracks end
  function r.GetTrack(proj, i) return state.tracks[i + 1] end
  function r.CountSelectedTracks(proj)
    local n = 0
    for _, t in ipairs(state.tracks) do n = n + (t.selected and 1 or 0) end
    return n
  end
  local TRACK_KEYS = { B_MUTE = "mute", I_SOLO = "solo", I_FOLDERDEPTH = "depth" }
  function r.GetMediaTrackInfo_Value(track, key)
    return TRACK_KEYS[key] and track[TRACK_KEYS[key]] or 0
  end
  function r.SetMediaTrackInfo_Value(track, key, value)
    if TRACK_KEYS[key] then track[TRACK_KEYS[key]] = value end
    return true
  end
  function r.GetSelectedTrack(proj, i)
    local n = 0
    for _, t in ipairs(state.tracks) do
      if t.selected then
        if n == i then return t end
        n = n + 1
      end
    end
    return nil
  end
  function r.GetSetMediaTrackInfo_String(track, key, value, set)
    if key ~= "P_NAME" then return false, "" end
    if set then track.name = value end
    return true, track.name
  end
  function r.InsertTrackAtIndex(index, defaults)
    table.insert(state.tracks, index + 1, { name = "", selected = false, mute = 0, solo = 0, depth = 0, items = {},
      inserted = true })
  end
  function r.SetOnlyTrackSelected(track)
    for _, t in ipairs(state.tracks) do t.selected = (t == track) end
  end
  function r.AddMediaItemToTrack(track)
    local item = { track = track, info = { D_POSITION = 0, D_LENGTH = 0 } }
    track.items[#track.items + 1] = item
    return item
  end
  function r.AddTakeToMediaItem(item)
    item.take = { item = item, info = { D_STARTOFFS = 0, D_PLAYRATE = 1 }, name = "" }
    return item.take
  end
  function r.PCM_Source_CreateFromFile(path) return { file = path, length = wav_duration(path) } end
  function r.SetMediaItemTake_Source(take, source) take.source = source; return true end
  function r.GetMediaSourceLength(source) return source.length, false end
  function r.GetMediaSourceFileName(source, buf) return source.file end
  function r.SetMediaItemInfo_Value(item, key, value) item.info[key] = value; return true end
  function r.GetMediaItemInfo_Value(item, key) return item.info[key] or 0 end
  function r.GetMediaItemTakeInfo_Value(take, key) return take.info[key] or 0 end
  function r.GetSetMediaItemTakeInfo_String(take, key, value, set)
    if set then take.name = value end
    return true, take.name or ""
  end
  -- MIDI: an item's take counts PPQ (960 per quarter note) from the item's start at the tempo.
  function r.CreateNewMIDIItemInProj(track, start, finish, qn)
    local item = { track = track, info = { D_POSITION = start, D_LENGTH = finish - start } }
    item.take = { item = item, info = { D_STARTOFFS = 0, D_PLAYRATE = 1 }, name = "", midi = true, notes = {},
      sorted = false }
    track.items[#track.items + 1] = item
    return item
  end
  function r.MIDI_GetPPQPosFromProjTime(take, t)
    return (t - take.item.info.D_POSITION) * (scenario.tempo or 120) / 60 * 960
  end
  function r.MIDI_InsertNote(take, selected, muted, on, off, chan, pitch, vel, nosort)
    take.notes[#take.notes + 1] = { on = on, off = off, chan = chan, pitch = pitch, vel = vel, muted = muted }
    take.sorted = false
    return true
  end
  function r.MIDI_Sort(take)
    table.sort(take.notes, function(a, b) return a.on < b.on end)
    take.sorted = true
  end
  function r.CountSelectedMediaItems(proj) return #state.selected_items end
  function r.GetSelectedMediaItem(proj, i) return state.selected_items[i + 1] end
  function r.GetActiveTake(item) return item.take end
  function r.TakeIsMIDI(take) return take.midi end
  function r.GetMediaItemTake_Source(take) return take.source end

  function r.Undo_BeginBlock() state.undo[#state.undo + 1] = "begin" end
  function r.Undo_EndBlock(name, flags) state.undo[#state.undo + 1] = "end:" .. name end
  function r.PreventUIRefresh(n) end
  function r.UpdateArrange() end

  function r.GetSetProjectInfo(proj, key, value, set)
    if set then state.render.numbers[key] = value end
    return state.render.numbers[key] or 0
  end
  function r.GetSetProjectInfo_String(proj, key, value, set)
    if set then state.render.strings[key] = value end
    return true, state.render.strings[key] or ""
  end
  -- Render: note the settings in force (and which tracks are heard), then write the file(s) the
  -- settings name: one mix, or with 128 (selected tracks via master) one file per selected track,
  -- numbered when there are several, as REAPER does.
  function r.Main_OnCommand(command, flag)
    if command ~= 42230 then return end
    local snap = { numbers = {}, strings = {}, mutes = {}, solos = {}, audible = {} }
    for k, v in pairs(state.render.numbers) do snap.numbers[k] = v end
    for k, v in pairs(state.render.strings) do snap.strings[k] = v end
    local any_solo = false
    for _, t in ipairs(state.tracks) do any_solo = any_solo or t.solo > 0 end
    for _, t in ipairs(state.tracks) do
      snap.mutes[t.name] = t.mute
      snap.solos[t.name] = t.solo
      if t.mute == 0 and (not any_solo or t.solo > 0) then snap.audible[#snap.audible + 1] = t.name end
    end
    local base = state.render.strings.RENDER_FILE .. "/" .. state.render.strings.RENDER_PATTERN
    snap.output = base .. ".wav"
    snap.files = {}
    state.renders[#state.renders + 1] = snap
    if scenario.render_fails then return end
    local source = scenario.render_source
    if state.render.numbers.RENDER_SETTINGS == 32 then source = state.selected_items[1].take.source.file end
    if state.render.numbers.RENDER_SETTINGS == 128 then
      local selected = {}
      for _, t in ipairs(state.tracks) do if t.selected then selected[#selected + 1] = t end end
      for i, t in ipairs(selected) do
        local out = #selected == 1 and base .. ".wav" or string.format("%s-%03d.wav", base, i)
        copy_file(source, out)
        snap.files[#snap.files + 1] = out
      end
      return
    end
    copy_file(source, snap.output)
    snap.files[1] = snap.output
  end
  -- ExecProcess(cmd, -1 or -2) returns at once; here it runs `cmd` in the background (or in the
  -- foreground when the scenario asks, so a fake client finishes before the first poll). On
  -- Windows the command line goes through the emulation of CreateProcess and cmd.exe.
  function r.ExecProcess(cmd, timeout)
    state.exec[#state.exec + 1] = cmd
    state.exec_timeouts[#state.exec_timeouts + 1] = timeout
    local run = cmd
    if (scenario.os or ""):match("^Win") then
      local line_file = os.tmpname()
      local f = assert(io.open(line_file, "wb"))
      f:write(cmd)
      f:close()
      run = string.format("'%s' '%s' --exec '%s'", scenario.python, scenario.cmd_emulator, line_file)
    end
    if scenario.exec_foreground then
      os.execute(run)
    else
      os.execute(run .. " &")
    end
    return ""
  end
  -- Record the name of every call, in order.
  local recorded = {}
  for name, fn in pairs(r) do
    recorded[name] = function(...)
      state.log[#state.log + 1] = name
      return fn(...)
    end
  end
  setmetatable(recorded, { __index = function(_, name) error("fake reaper has no function " .. name, 2) end })
  _G.reaper = recorded

  local g = { x = 0, y = 0, w = 360, h = 70 }
  function g.init() state.gfx_open = true end
  function g.quit() state.gfx_open = false end
  function g.getchar() return state.gfx_open and 0 or -1 end
  function g.set() end
  function g.rect() end
  function g.update() end
  function g.drawstr(text) state.gfx_text[#state.gfx_text + 1] = text end
  g.mouse_x, g.mouse_y = 0, 0
  function g.showmenu(items)
    state.menus[#state.menus + 1] = items
    return scenario.menu_choice or 0
  end
  _G.gfx = g
  return state
end

-- Run queued defer callbacks until none is left (or the time limit), advancing the clock.
function Fake.run_defer(step, real_sleep, max_rounds)
  local state = Fake.state
  local rounds = 0
  while #state.queue > 0 and rounds < max_rounds do
    local queue = state.queue
    state.queue = {}
    for _, fn in ipairs(queue) do fn() end
    state.clock = state.clock + step
    if real_sleep > 0 and #state.queue > 0 then os.execute("sleep " .. real_sleep) end
    rounds = rounds + 1
  end
  state.defer_rounds = rounds
  state.defer_left = #state.queue
  if state.atexit then state.atexit() end
end

-- ------------------------------------------------------------ JSON out (for the Python side)

local function encode(v)
  local t = type(v)
  if t == "nil" then return "null" end
  if t == "boolean" or t == "number" then return tostring(v) end
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
    end) .. '"'
  end
  if #v > 0 or next(v) == nil then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = encode(x) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = encode(tostring(k)) .. ":" .. encode(x) end
  table.sort(parts)
  return "{" .. table.concat(parts, ",") .. "}"
end
Fake.encode = encode

function Fake.report()
  local s = Fake.state
  local tracks = {}
  for i, t in ipairs(s.tracks) do
    local items = {}
    for j, it in ipairs(t.items) do
      items[j] = { position = it.info.D_POSITION, length = it.info.D_LENGTH,
        take_name = it.take and it.take.name or "", file = it.take and it.take.source and it.take.source.file or "",
        midi = it.take and it.take.midi or false, notes = it.take and it.take.notes or {},
        sorted = it.take and it.take.sorted or false }
    end
    tracks[i] = { name = t.name, mute = t.mute, solo = t.solo, depth = t.depth, selected = t.selected,
      inserted = t.inserted or false, items = items }
  end
  return encode({
    tracks = tracks, messages = s.messages, console = s.console, exec = s.exec, exec_timeouts = s.exec_timeouts,
    menus = s.menus, renders = s.renders,
    render = s.render, ext = s.ext, proj_ext = s.proj_ext, undo = s.undo, log = s.log,
    gfx_text = s.gfx_text, defer_rounds = s.defer_rounds, defer_left = s.defer_left, error = s.error,
  })
end

return Fake
