-- @noindex
-- darc_common.lua: shared by the DARC ReaScripts (settings, quoting, launching the client in the
-- background, reading its status file, rendering with the user's settings restored, reading MIDI
-- files, inserting).
--
-- REAPER's Lua has no sockets, so the scripts run `darc-bridge client ... --wait --status-file F`
-- in the background (through a launcher script that ExecProcess starts without waiting, and that
-- records the client's exit code) and poll F from reaper.defer: REAPER never waits on the daemon.

local M = {}

M.SECTION = "DARC"
M.VERSION = "0.2.0"

-- ------------------------------------------------------------------ settings

M.DEFAULTS = {
  host = "127.0.0.1",
  port = "9001",
  temperature = "1.0",
  rhythm_strength = "1.0",
  client = "darc-bridge",
  token = "",
  midi = "1", -- a MIDI track of the played rhythm beside the stem (on by default)
  stems = "mix", -- "split": the per-piece stems as a folder of tracks
  kit = "", -- "" = the daemon's own kit; else a name listed by `darc-bridge client kits`
}
-- Keys of the settings dialog, in its order (the kit is chosen from a menu, not typed).
M.SETTING_KEYS = { "host", "port", "temperature", "rhythm_strength", "client", "token", "midi", "stems" }
M.STORED_KEYS = { "host", "port", "temperature", "rhythm_strength", "client", "token", "midi", "stems", "kit" }

local YES = { ["1"] = true, y = true, yes = true, on = true, ["true"] = true }
local NO = { ["0"] = true, n = true, no = true, off = true, ["false"] = true, [""] = true }

-- Check raw strings; returns a settings table, or nil and a message naming the bad value.
function M.validate_settings(raw)
  local s = {}
  s.host = (raw.host or ""):match("^%s*(.-)%s*$")
  if s.host == "" or s.host:find("[%s,]") then
    return nil, "Daemon host must be a host name or address, got '" .. tostring(raw.host) .. "'"
  end
  local port = tonumber(raw.port)
  if not port or port ~= math.floor(port) or port < 1 or port > 65535 then
    return nil, "Daemon port must be a whole number from 1 to 65535, got '" .. tostring(raw.port) .. "'"
  end
  s.port = math.floor(port)
  local t = tonumber(raw.temperature)
  if not t or t < 0 or t > 5 then
    return nil, "Temperature must be a number from 0 to 5, got '" .. tostring(raw.temperature) .. "'"
  end
  s.temperature = t
  local r = tonumber(raw.rhythm_strength)
  if not r or r < 0 or r > 4 then
    return nil, "Rhythm strength must be a number from 0 to 4, got '" .. tostring(raw.rhythm_strength) .. "'"
  end
  s.rhythm_strength = r
  s.client = (raw.client or ""):match("^%s*(.-)%s*$")
  if s.client == "" then
    return nil, "The darc-bridge program must be given (a name on PATH or a full path)"
  end
  s.token = (raw.token or ""):match("^%s*(.-)%s*$")
  local midi = tostring(raw.midi or M.DEFAULTS.midi):match("^%s*(.-)%s*$"):lower()
  if not (YES[midi] or NO[midi]) then
    return nil, "MIDI track must be y or n, got '" .. tostring(raw.midi) .. "'"
  end
  s.midi = YES[midi] and "1" or "0"
  local stems = tostring(raw.stems or M.DEFAULTS.stems):match("^%s*(.-)%s*$"):lower()
  if stems == "split" or YES[stems] then
    s.stems = "split"
  elseif stems == "mix" or NO[stems] then
    s.stems = "mix"
  else
    return nil, "Split stems must be y or n, got '" .. tostring(raw.stems) .. "'"
  end
  s.kit = (raw.kit or ""):match("^%s*(.-)%s*$")
  return s
end

function M.raw_settings()
  local raw = {}
  for _, key in ipairs(M.STORED_KEYS) do
    local v = reaper.GetExtState(M.SECTION, key)
    raw[key] = (v ~= nil and v ~= "") and v or M.DEFAULTS[key]
  end
  return raw
end

function M.settings()
  local s, err = M.validate_settings(M.raw_settings())
  if not s then
    return nil, err .. " (run 'DARC: Settings')"
  end
  return s
end

function M.save_settings(s)
  for _, key in ipairs(M.STORED_KEYS) do
    reaper.SetExtState(M.SECTION, key, tostring(s[key]), true)
  end
end

-- ------------------------------------------------------------------ quoting and launching

function M.is_windows()
  return (reaper.GetOS() or ""):match("^Win") ~= nil
end

-- POSIX shell: single quotes keep every byte (spaces, $, ", UTF-8) as is.
function M.quote_posix(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Windows (CommandLineToArgvW rules): quote, double backslashes that precede a quote, escape quotes.
function M.quote_windows(s)
  s = tostring(s)
  local out, backslashes = {}, 0
  for i = 1, #s do
    local c = s:sub(i, i)
    if c == "\\" then
      backslashes = backslashes + 1
    else
      if c == '"' then
        out[#out + 1] = string.rep("\\", backslashes * 2 + 1) .. '"'
      else
        out[#out + 1] = string.rep("\\", backslashes) .. c
      end
      backslashes = 0
    end
  end
  out[#out + 1] = string.rep("\\", backslashes * 2)
  return '"' .. table.concat(out) .. '"'
end

function M.command_line(argv, windows)
  local quote = windows and M.quote_windows or M.quote_posix
  local parts = {}
  for i, a in ipairs(argv) do
    parts[i] = quote(a)
  end
  return table.concat(parts, " ")
end

-- argv for `darc-bridge client [--host --port --token] <args...>`
function M.client_argv(s, args)
  local argv = { s.client, "client", "--host", s.host, "--port", tostring(s.port) }
  if s.token and s.token ~= "" then
    argv[#argv + 1] = "--token"
    argv[#argv + 1] = s.token
  end
  for _, a in ipairs(args) do
    argv[#argv + 1] = tostring(a)
  end
  return argv
end

function M.temp_dir()
  local dir = os.getenv("TMPDIR") or os.getenv("TEMP") or os.getenv("TMP") or "/tmp"
  return (dir:gsub("[/\\]+$", ""))
end

-- A file name in the temporary folder, joined with the separator the folder's path uses.
function M.temp_path(name)
  local dir = M.temp_dir()
  return dir .. (dir:find("\\", 1, true) and "\\" or "/") .. name
end

-- A line of a Windows batch file that runs argv: the program in plain quotes, the arguments
-- quoted by the CommandLineToArgvW rules, then every cmd.exe metacharacter of the arguments
-- caret-escaped (so cmd sees no quoted region and passes the line on unchanged), `%` doubled
-- (batch files expand %...% even inside quotes). Returns nil and a message for what cmd cannot
-- pass at all (line breaks).
function M.batch_command(argv)
  for _, a in ipairs(argv) do
    if tostring(a):find("[\r\n]") then
      return nil, "an argument holds a line break, which Windows cannot pass: " .. tostring(a)
    end
  end
  local rest = {}
  for i = 2, #argv do
    rest[#rest + 1] = argv[i]
  end
  local args = M.command_line(rest, true):gsub('[%(%)!%^"<>&|]', "^%0")
  local program = M.quote_windows(argv[1])
  return ((program .. (#rest > 0 and " " .. args or "")):gsub("%%", "%%%%"))
end

-- A path inside double quotes in a batch file: only `%` needs doubling.
local function batch_path(path)
  return '"' .. path:gsub("%%", "%%%%") .. '"'
end

-- Start argv in the background, without a console window in the way.
-- A launcher script in the temporary folder runs the command, keeps its error output (log_file)
-- and writes its exit code (rc_file) when it ends, so a client that dies, or never starts, is
-- noticed at once. The launcher deletes itself; M.cleanup(handle) removes the rest. Windows: a
-- .cmd run minimised (ExecProcess -2; -1 would keep a console window open for the whole job).
-- opts.detached: fire and forget (no exit code or log kept; used by Cancel);
-- opts.stdout_file: keep the command's output there (else it is discarded).
-- Returns a job handle {rc_file, log_file, files}, or nil and a message.
function M.launch(argv, job_id, opts)
  opts = opts or {}
  local handle = { files = {} }
  local base = M.temp_path("darc-" .. job_id)
  if not opts.detached then
    handle.rc_file = base .. ".rc"
    handle.log_file = base .. ".log"
    handle.files = { handle.rc_file, handle.log_file, handle.rc_file .. ".part" }
  end
  if M.is_windows() then
    local line, err = M.batch_command(argv)
    if not line then
      return nil, err
    end
    local script = base .. ".cmd"
    local f = assert(io.open(script, "wb"))
    f:write("@echo off\r\n")
    if opts.detached then
      f:write(line, " >nul 2>&1\r\n")
    else
      local stdout = opts.stdout_file and batch_path(opts.stdout_file) or "nul"
      f:write(line, " >", stdout, " 2>", batch_path(handle.log_file), "\r\n")
      f:write(">", batch_path(handle.rc_file .. ".part"), " echo %ERRORLEVEL%\r\n")
      f:write("move /y ", batch_path(handle.rc_file .. ".part"), " ", batch_path(handle.rc_file), " >nul\r\n")
    end
    f:write('(goto) 2>nul & del "%~f0"\r\n') -- a batch file deleting itself as it ends
    f:close()
    reaper.ExecProcess('cmd.exe /d /s /c ""' .. script .. '""', -2)
    return handle
  end
  local script = base .. ".sh"
  local f = assert(io.open(script, "w"))
  f:write("#!/bin/sh\nrm -f \"$0\"\n") -- sh keeps reading the script it has open
  if opts.detached then
    f:write(M.command_line(argv, false), " >/dev/null 2>&1\n")
  else
    local stdout = opts.stdout_file and M.quote_posix(opts.stdout_file) or "/dev/null"
    f:write(M.command_line(argv, false), " >", stdout, " 2>", M.quote_posix(handle.log_file), "\n")
    f:write("echo $? > ", M.quote_posix(handle.rc_file .. ".part"), " && mv ", M.quote_posix(handle.rc_file .. ".part"),
      " ", M.quote_posix(handle.rc_file), "\n")
  end
  f:close()
  reaper.ExecProcess('/bin/sh "' .. script .. '"', -1)
  return handle
end

-- Remove the files a job left: the launcher's exit code and log, and `extra` (status file...).
function M.cleanup(handle, extra)
  for _, path in ipairs(handle and handle.files or {}) do
    os.remove(path)
  end
  for _, path in ipairs(extra or {}) do
    os.remove(path)
  end
end

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local text = f:read("a")
  f:close()
  return text
end

-- ------------------------------------------------------------------ JSON (status files)

local function decode_error(text, pos, what)
  error(string.format("bad JSON at %d: %s", pos, what), 0)
end

local function skip(text, pos)
  return text:find("[^ \t\r\n]", pos) or #text + 1
end

local decode_value

local function decode_string(text, pos)
  local out = {}
  local i = pos + 1
  while true do
    local c = text:sub(i, i)
    if c == "" then
      decode_error(text, i, "unterminated string")
    elseif c == '"' then
      return table.concat(out), i + 1
    elseif c == "\\" then
      local e = text:sub(i + 1, i + 1)
      local simple = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
      if simple[e] then
        out[#out + 1] = simple[e]
        i = i + 2
      elseif e == "u" then
        local code = tonumber(text:sub(i + 2, i + 5), 16)
        if not code then
          decode_error(text, i, "bad \\u escape")
        end
        i = i + 6
        if code >= 0xD800 and code <= 0xDBFF and text:sub(i, i + 1) == "\\u" then
          local low = tonumber(text:sub(i + 2, i + 5), 16)
          if low and low >= 0xDC00 and low <= 0xDFFF then
            code = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00)
            i = i + 6
          end
        end
        out[#out + 1] = utf8.char(code)
      else
        decode_error(text, i, "bad escape")
      end
    else
      local j = text:find('["\\]', i) or #text + 1
      out[#out + 1] = text:sub(i, j - 1)
      i = j
    end
  end
end

function decode_value(text, pos)
  pos = skip(text, pos)
  local c = text:sub(pos, pos)
  if c == "{" then
    local obj = {}
    pos = skip(text, pos + 1)
    if text:sub(pos, pos) == "}" then
      return obj, pos + 1
    end
    while true do
      if text:sub(pos, pos) ~= '"' then
        decode_error(text, pos, "expected a key")
      end
      local key
      key, pos = decode_string(text, pos)
      pos = skip(text, pos)
      if text:sub(pos, pos) ~= ":" then
        decode_error(text, pos, "expected ':'")
      end
      obj[key], pos = decode_value(text, pos + 1)
      pos = skip(text, pos)
      local sep = text:sub(pos, pos)
      if sep == "}" then
        return obj, pos + 1
      elseif sep ~= "," then
        decode_error(text, pos, "expected ',' or '}'")
      end
      pos = skip(text, pos + 1)
    end
  elseif c == "[" then
    local arr = {}
    pos = skip(text, pos + 1)
    if text:sub(pos, pos) == "]" then
      return arr, pos + 1
    end
    while true do
      arr[#arr + 1], pos = decode_value(text, pos)
      pos = skip(text, pos)
      local sep = text:sub(pos, pos)
      if sep == "]" then
        return arr, pos + 1
      elseif sep ~= "," then
        decode_error(text, pos, "expected ',' or ']'")
      end
      pos = pos + 1
    end
  elseif c == '"' then
    return decode_string(text, pos)
  elseif text:sub(pos, pos + 3) == "true" then
    return true, pos + 4
  elseif text:sub(pos, pos + 4) == "false" then
    return false, pos + 5
  elseif text:sub(pos, pos + 3) == "null" then
    return nil, pos + 4
  end
  local num = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
  if num and num ~= "" and tonumber(num) then
    return tonumber(num), pos + #num
  end
  decode_error(text, pos, "unexpected character '" .. c .. "'")
end

function M.json_decode(text)
  local ok, value = pcall(decode_value, text, 1)
  if not ok then
    return nil, value
  end
  return value
end

-- The client's status file, or nil while it is missing or being replaced.
function M.read_status(path)
  local text = M.read_file(path)
  if not text or text == "" then
    return nil
  end
  local status = M.json_decode(text)
  if type(status) ~= "table" then
    return nil
  end
  return status
end

-- ------------------------------------------------------------------ messages and progress

function M.error(message)
  reaper.ShowMessageBox(message, "DARC", 0)
end

function M.show_progress(title, text, fraction)
  if not M.progress_open then
    gfx.init(title, 360, 70)
    M.progress_open = true
  end
  if gfx.getchar() < 0 then
    return -- the user closed the window: the job goes on, it just is not shown
  end
  gfx.set(0.12, 0.12, 0.12)
  gfx.rect(0, 0, gfx.w, gfx.h, 1)
  gfx.set(0.35, 0.75, 0.45)
  gfx.rect(10, 40, math.floor((gfx.w - 20) * math.max(0, math.min(1, fraction or 0))), 16, 1)
  gfx.set(1, 1, 1)
  gfx.x, gfx.y = 10, 12
  gfx.drawstr(text)
  gfx.update()
end

function M.close_progress()
  if M.progress_open then
    gfx.quit()
    M.progress_open = false
  end
end

local FINAL = { done = true, error = true, cancelled = true }

-- Poll a status file from reaper.defer until the job is final; never blocks REAPER.
-- handlers: on_progress(status), on_done(status), on_error(message, status).
-- The client's exit code is checked on every step, whether or not it has written a status yet:
-- a client that dies mid-job (or never starts) ends the poll at once, with its error output.
-- opts: start_timeout (s without any sign of the client), cleanup (files to remove at the end).
function M.poll(status_file, handle, handlers, opts)
  opts = opts or {}
  local started = reaper.time_precise()
  local finished = false
  local function finish()
    finished = true
    M.close_progress()
    reaper.SetExtState(M.SECTION, "active_job", "", false)
    M.cleanup(handle, opts.cleanup)
    os.remove(status_file)
  end
  -- However the script ends (finished, or terminated by the user), free the "running" mark.
  reaper.atexit(function()
    M.close_progress()
    reaper.SetExtState(M.SECTION, "active_job", "", false)
  end)
  local start_timeout = opts.start_timeout or 30
  local function final(status)
    finish()
    if status.state == "done" then
      handlers.on_done(status)
    elseif status.state == "cancelled" then
      handlers.on_error("Generation was cancelled.", status)
    else
      handlers.on_error(string.format("%s: %s", status.error_code or "error", status.error_message or ""), status)
    end
  end
  local function step()
    if finished then
      return
    end
    local status = M.read_status(status_file)
    if status and FINAL[status.state] then
      return final(status)
    end
    local rc = handle.rc_file and M.read_file(handle.rc_file)
    if rc and rc:match("%d+") then
      status = M.read_status(status_file) -- it may have finished between the two reads
      if status and FINAL[status.state] then
        return final(status)
      end
      local log = (M.read_file(handle.log_file) or ""):gsub("%s+$", "")
      finish()
      return handlers.on_error("darc-bridge client exited (code " .. rc:match("%d+") .. ") without a result"
        .. (status and " (the job was " .. tostring(status.state) .. ")" or "") .. ".\n"
        .. log:sub(-600) .. "\nCheck the darc-bridge program in 'DARC: Settings' and that the daemon runs "
        .. "(darc-bridge serve).", status)
    end
    if not status and reaper.time_precise() - started > start_timeout then
      finish()
      return handlers.on_error("darc-bridge client did not start within " .. start_timeout .. " s.\n"
        .. "Check the darc-bridge program in 'DARC: Settings' and that the daemon runs (darc-bridge serve).", nil)
    end
    if handlers.on_progress then
      handlers.on_progress(status or { state = "starting", stage = "starting", fraction = 0 })
    end
    reaper.defer(step)
  end
  reaper.defer(step)
end

-- ------------------------------------------------------------------ project files

function M.new_job_id()
  math.randomseed(math.floor(reaper.time_precise() * 1000) + os.time())
  local hex = "0123456789abcdef"
  local parts = {}
  for i = 1, 32 do
    local k = math.random(1, 16)
    parts[#parts + 1] = hex:sub(k, k)
    if i == 8 or i == 12 or i == 16 or i == 20 then
      parts[#parts + 1] = "-"
    end
  end
  return table.concat(parts)
end

-- The folder of the project's .rpp file (GetProjectPath is the *recording* path, which may be
-- elsewhere), or nil for a project that was never saved.
function M.project_folder()
  local _, file = reaper.EnumProjects(-1)
  if not file or file == "" then
    return nil
  end
  return file:match("^(.*)[/\\][^/\\]*$")
end

-- <project folder>/DARC: renders and stems live with the project. A project never saved has no
-- folder yet: then REAPER's recording path (its default media folder) is used, and the second
-- value says so.
function M.job_dir()
  local base, note = M.project_folder(), nil
  if not base then
    base = reaper.GetProjectPath("")
    note = "This project is not saved yet, so DARC files go to REAPER's media folder:\n" .. base
      .. "/DARC\nSave the project to keep them with it."
  end
  local dir = base .. "/DARC"
  reaper.RecursiveCreateDirectory(dir, 0)
  return dir, note
end

function M.file_exists(path)
  local f = io.open(path, "rb")
  if f then
    f:close()
    return true
  end
  return false
end

-- ------------------------------------------------------------------ rendering

M.RENDER_NUMBERS = { "RENDER_SETTINGS", "RENDER_BOUNDSFLAG", "RENDER_SRATE", "RENDER_CHANNELS",
  "RENDER_TAILFLAG", "RENDER_ADDTOPROJ" }
M.RENDER_STRINGS = { "RENDER_FILE", "RENDER_PATTERN", "RENDER_FORMAT" }
M.RENDER_COMMAND = 42230 -- File: Render project, using the most recent render settings, auto-close

function M.save_render_settings()
  local saved = { numbers = {}, strings = {} }
  for _, key in ipairs(M.RENDER_NUMBERS) do
    saved.numbers[key] = reaper.GetSetProjectInfo(0, key, 0, false)
  end
  for _, key in ipairs(M.RENDER_STRINGS) do
    local _, value = reaper.GetSetProjectInfo_String(0, key, "", false)
    saved.strings[key] = value
  end
  return saved
end

function M.restore_render_settings(saved)
  for key, value in pairs(saved.numbers) do
    reaper.GetSetProjectInfo(0, key, value, true)
  end
  for key, value in pairs(saved.strings) do
    reaper.GetSetProjectInfo_String(0, key, value, true)
  end
end

-- Render to <dir>/<name>.wav with `source` (RENDER_SETTINGS) over `bounds` (RENDER_BOUNDSFLAG),
-- muting `mute_tracks` and soloing (in place) `solo_tracks` meanwhile; the user's render
-- settings, mutes and solos are restored even on error.
function M.render(dir, name, source, bounds, mute_tracks, solo_tracks)
  local saved = M.save_render_settings()
  local all = {}
  for i = 0, reaper.CountTracks(0) - 1 do
    all[#all + 1] = reaper.GetTrack(0, i)
  end
  local mutes, solos = {}, {}
  for i, track in ipairs(all) do
    mutes[i] = reaper.GetMediaTrackInfo_Value(track, "B_MUTE")
    solos[i] = reaper.GetMediaTrackInfo_Value(track, "I_SOLO")
  end
  local ok, err = pcall(function()
    for _, track in ipairs(mute_tracks or {}) do
      reaper.SetMediaTrackInfo_Value(track, "B_MUTE", 1)
    end
    if solo_tracks then
      local wanted = {}
      for _, track in ipairs(solo_tracks) do
        wanted[track] = true
      end
      for _, track in ipairs(all) do
        reaper.SetMediaTrackInfo_Value(track, "I_SOLO", wanted[track] and 2 or 0)
      end
    end
    reaper.GetSetProjectInfo(0, "RENDER_SETTINGS", source, true)
    reaper.GetSetProjectInfo(0, "RENDER_BOUNDSFLAG", bounds, true)
    reaper.GetSetProjectInfo(0, "RENDER_SRATE", 44100, true)
    reaper.GetSetProjectInfo(0, "RENDER_CHANNELS", 2, true)
    reaper.GetSetProjectInfo(0, "RENDER_TAILFLAG", 0, true)
    reaper.GetSetProjectInfo(0, "RENDER_ADDTOPROJ", 0, true)
    reaper.GetSetProjectInfo_String(0, "RENDER_FILE", dir, true)
    reaper.GetSetProjectInfo_String(0, "RENDER_PATTERN", name, true)
    reaper.GetSetProjectInfo_String(0, "RENDER_FORMAT", "evaw", true)
    reaper.Main_OnCommand(M.RENDER_COMMAND, 0)
  end)
  for i, track in ipairs(all) do
    reaper.SetMediaTrackInfo_Value(track, "B_MUTE", mutes[i])
    reaper.SetMediaTrackInfo_Value(track, "I_SOLO", solos[i])
  end
  M.restore_render_settings(saved)
  if not ok then
    return nil, "Rendering failed: " .. tostring(err)
  end
  local path = dir .. "/" .. name .. ".wav"
  if not M.file_exists(path) then
    return nil, "Rendering produced no file (" .. path .. "): was it cancelled?"
  end
  return path
end

function M.track_name(track)
  local _, name = reaper.GetSetMediaTrackInfo_String(track, "P_NAME", "", false)
  return name or ""
end

-- ------------------------------------------------------------------ inserting

-- ------------------------------------------------------------------ MIDI files

-- Notes of a Standard MIDI File as { {pitch, sec, dur, velocity}, ... } (seconds through the
-- file's tempo map), or nil and a message.
function M.read_midi(path)
  local data = M.read_file(path)
  if not data or data:sub(1, 4) ~= "MThd" then
    return nil, "not a MIDI file: " .. tostring(path)
  end
  local division = string.unpack(">I2", data, 13)
  if division >= 0x8000 then
    return nil, "SMPTE-timed MIDI files are not supported: " .. path
  end
  local function vlq(p)
    local v = 0
    repeat
      local b = data:byte(p)
      p = p + 1
      v = v * 128 + (b % 128)
    until b < 128
    return v, p
  end
  local events = {}
  local pos = 9 + string.unpack(">I4", data, 5)
  while pos + 7 <= #data do
    local tag, size = data:sub(pos, pos + 3), string.unpack(">I4", data, pos + 4)
    local p, stop = pos + 8, pos + 8 + size
    if tag == "MTrk" then
      local tick, running = 0, 0
      while p < stop do
        local delta
        delta, p = vlq(p)
        tick = tick + delta
        local status = data:byte(p)
        if status < 0x80 then
          status = running
        else
          p = p + 1
        end
        if status == 0xFF then
          local kind = data:byte(p)
          local len
          len, p = vlq(p + 1)
          if kind == 0x51 then
            events[#events + 1] = { tick = tick, order = 0, tempo = string.unpack(">I3", data, p) }
          end
          p = p + len
        elseif status == 0xF0 or status == 0xF7 then
          local len
          len, p = vlq(p)
          p = p + len
        else
          running = status
          local hi = status & 0xF0
          local d1 = data:byte(p)
          local d2 = (hi == 0xC0 or hi == 0xD0) and 0 or data:byte(p + 1)
          p = p + ((hi == 0xC0 or hi == 0xD0) and 1 or 2)
          if hi == 0x90 and d2 > 0 then
            events[#events + 1] = { tick = tick, order = 2, on = true, pitch = d1, velocity = d2 }
          elseif hi == 0x80 or hi == 0x90 then
            events[#events + 1] = { tick = tick, order = 1, on = false, pitch = d1 }
          end
        end
      end
    end
    pos = stop
  end
  for i, e in ipairs(events) do
    e.index = i
  end
  table.sort(events, function(x, y)
    if x.tick ~= y.tick then return x.tick < y.tick end
    if x.order ~= y.order then return x.order < y.order end
    return x.index < y.index
  end)
  local us_per_beat, last, sec = 500000, 0, 0
  local notes, open = {}, {}
  for _, e in ipairs(events) do
    sec = sec + (e.tick - last) / division * us_per_beat / 1e6
    last = e.tick
    if e.tempo then
      us_per_beat = e.tempo
    elseif e.on then
      local n = { pitch = e.pitch, sec = sec, dur = 0, velocity = e.velocity }
      notes[#notes + 1] = n
      open[e.pitch] = open[e.pitch] or {}
      table.insert(open[e.pitch], n)
    elseif open[e.pitch] and #open[e.pitch] > 0 then
      local n = table.remove(open[e.pitch], 1)
      n.dur = sec - n.sec
    end
  end
  return notes
end

-- ------------------------------------------------------------------ inserting

M.PIECES = { "kick", "snare", "hats", "toms", "cymbals" } -- docs/protocol.md, in this order
M.DRUM_CHANNEL = 9 -- MIDI channel 10, counted from 0
M.MIN_NOTE_S = 0.05 -- shortest note written into the MIDI item

local function new_track(name)
  local index = reaper.CountTracks(0)
  reaper.InsertTrackAtIndex(index, true)
  local track = reaper.GetTrack(0, index)
  reaper.GetSetMediaTrackInfo_String(track, "P_NAME", name, true)
  return track
end

local function add_audio_item(track, path, position, take_name)
  local item = reaper.AddMediaItemToTrack(track)
  local take = reaper.AddTakeToMediaItem(item)
  local source = reaper.PCM_Source_CreateFromFile(path)
  reaper.SetMediaItemTake_Source(take, source)
  local length = reaper.GetMediaSourceLength(source)
  reaper.SetMediaItemInfo_Value(item, "D_POSITION", position)
  reaper.SetMediaItemInfo_Value(item, "D_LENGTH", length)
  reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", take_name, true)
  return item, length
end

-- A MIDI item from `position` s for `length` s holding `notes` (seconds from the item's start),
-- placed through REAPER's own time-to-PPQ map, so the notes land in beats at the project tempo.
local function add_midi_item(track, notes, position, length, take_name)
  local item = reaper.CreateNewMIDIItemInProj(track, position, position + length, false)
  local take = reaper.GetActiveTake(item)
  for _, n in ipairs(notes) do
    if n.sec >= 0 and n.sec < length then
      local on = reaper.MIDI_GetPPQPosFromProjTime(take, position + n.sec)
      local off = reaper.MIDI_GetPPQPosFromProjTime(take, position + math.min(length, n.sec + math.max(n.dur, M.MIN_NOTE_S)))
      reaper.MIDI_InsertNote(take, false, false, on, off, M.DRUM_CHANNEL, n.pitch, n.velocity, true)
    end
  end
  reaper.MIDI_Sort(take)
  reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", take_name, true)
  return item
end

-- Everything a job made, in one undo block, on new tracks at the end, from `position` s:
-- result = {stem = path, pieces = {kick = path, ...} or nil, notes = {...} or nil}.
-- With pieces, they go on the children of a folder track `track_name` (the folder sums them to
-- the mix) instead of the mixed stem; the notes go on a track `track_name .. " MIDI"`.
function M.insert_results(result, position, track_name, take_name, undo_name)
  reaper.PreventUIRefresh(1)
  reaper.Undo_BeginBlock()
  local first, length
  local pieces = {}
  for _, piece in ipairs(M.PIECES) do
    if result.pieces and result.pieces[piece] then
      pieces[#pieces + 1] = piece
    end
  end
  if #pieces > 0 then
    first = new_track(track_name)
    reaper.SetMediaTrackInfo_Value(first, "I_FOLDERDEPTH", 1)
    local child
    for _, piece in ipairs(pieces) do
      child = new_track(track_name .. ": " .. piece:sub(1, 1):upper() .. piece:sub(2))
      local _, l = add_audio_item(child, result.pieces[piece], position, take_name .. " " .. piece)
      length = math.max(length or 0, l)
    end
    reaper.SetMediaTrackInfo_Value(child, "I_FOLDERDEPTH", -1)
  else
    first = new_track(track_name)
    local _
    _, length = add_audio_item(first, result.stem, position, take_name)
  end
  if result.notes then
    add_midi_item(new_track(track_name .. " MIDI"), result.notes, position, length, take_name)
  end
  reaper.SetOnlyTrackSelected(first)
  reaper.Undo_EndBlock(undo_name, -1)
  reaper.PreventUIRefresh(-1)
  reaper.UpdateArrange()
  return first
end

function M.format_number(x)
  return string.format("%.2f", x)
end

return M
