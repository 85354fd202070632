-- @noindex
-- darc_common.lua: shared by the DARC ReaScripts (settings, quoting, launching the client in the
-- background, reading its status file, rendering with the user's settings restored, inserting).
--
-- REAPER's Lua has no sockets, so the scripts run `darc-bridge client ... --wait --status-file F`
-- in the background (reaper.ExecProcess(cmd, -1) returns at once) and poll F from reaper.defer:
-- REAPER never waits on the daemon.

local M = {}

M.SECTION = "DARC"
M.VERSION = "0.1.0"

-- ------------------------------------------------------------------ settings

M.DEFAULTS = {
  host = "127.0.0.1",
  port = "9001",
  temperature = "1.0",
  rhythm_strength = "1.0",
  client = "darc-bridge",
  token = "",
}
M.SETTING_KEYS = { "host", "port", "temperature", "rhythm_strength", "client", "token" }

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
  return s
end

function M.raw_settings()
  local raw = {}
  for _, key in ipairs(M.SETTING_KEYS) do
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
  for _, key in ipairs(M.SETTING_KEYS) do
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

-- Start argv in the background. On POSIX a tiny launcher script (in the temp folder, whose path
-- has no spaces) holds the quoted command, records the exit code and keeps stderr for errors.
-- Returns a job handle {rc_file, log_file}.
function M.launch(argv, job_id)
  local handle = {}
  if M.is_windows() then
    reaper.ExecProcess(M.command_line(argv, true), -1)
    return handle
  end
  local base = M.temp_dir() .. "/darc-" .. job_id
  handle.rc_file = base .. ".rc"
  handle.log_file = base .. ".log"
  local script = base .. ".sh"
  local f = assert(io.open(script, "w"))
  f:write("#!/bin/sh\n", M.command_line(argv, false), " >/dev/null 2>", M.quote_posix(handle.log_file), "\n")
  f:write("echo $? > ", M.quote_posix(handle.rc_file .. ".part"), " && mv ", M.quote_posix(handle.rc_file .. ".part"),
    " ", M.quote_posix(handle.rc_file), "\n")
  f:close()
  reaper.ExecProcess('/bin/sh "' .. script .. '"', -1)
  return handle
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
function M.poll(status_file, handle, handlers, opts)
  opts = opts or {}
  local started = reaper.time_precise()
  -- However the script ends (finished, or terminated by the user), free the "running" mark.
  reaper.atexit(function()
    M.close_progress()
    reaper.SetExtState(M.SECTION, "active_job", "", false)
  end)
  local start_timeout = opts.start_timeout or 30
  local function step()
    local status = M.read_status(status_file)
    if status and FINAL[status.state] then
      M.close_progress()
      reaper.SetExtState(M.SECTION, "active_job", "", false)
      if status.state == "done" then
        handlers.on_done(status)
      elseif status.state == "cancelled" then
        handlers.on_error("Generation was cancelled.", status)
      else
        handlers.on_error(string.format("%s: %s", status.error_code or "error", status.error_message or ""), status)
      end
      return
    end
    if handle.rc_file and not status then
      local rc = M.read_file(handle.rc_file)
      if rc and rc:match("%d+") then
        local log = (M.read_file(handle.log_file) or ""):gsub("%s+$", "")
        M.close_progress()
        reaper.SetExtState(M.SECTION, "active_job", "", false)
        handlers.on_error("darc-bridge client exited (code " .. rc:match("%d+") .. ") without a result.\n"
          .. log:sub(-600) .. "\nCheck the darc-bridge program in 'DARC: Settings'.", nil)
        return
      end
    end
    if not status and reaper.time_precise() - started > start_timeout then
      M.close_progress()
      reaper.SetExtState(M.SECTION, "active_job", "", false)
      handlers.on_error("darc-bridge client did not start within " .. start_timeout .. " s.\n"
        .. "Check the darc-bridge program in 'DARC: Settings' and that the daemon runs (darc-bridge serve).", nil)
      return
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

-- <project folder>/DARC: renders, status files and stems live with the project.
function M.job_dir()
  local dir = reaper.GetProjectPath("") .. "/DARC"
  reaper.RecursiveCreateDirectory(dir, 0)
  return dir
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
-- muting `mute_tracks` meanwhile; the user's render settings and mutes are restored even on error.
function M.render(dir, name, source, bounds, mute_tracks)
  local saved = M.save_render_settings()
  local mutes = {}
  for i, track in ipairs(mute_tracks or {}) do
    mutes[i] = reaper.GetMediaTrackInfo_Value(track, "B_MUTE")
  end
  local ok, err = pcall(function()
    for _, track in ipairs(mute_tracks or {}) do
      reaper.SetMediaTrackInfo_Value(track, "B_MUTE", 1)
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
  for i, track in ipairs(mute_tracks or {}) do
    reaper.SetMediaTrackInfo_Value(track, "B_MUTE", mutes[i])
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

-- A new track named `track_name` at the end, holding `path` from `position` s, in one undo block.
function M.insert_audio(path, position, track_name, take_name, undo_name)
  reaper.PreventUIRefresh(1)
  reaper.Undo_BeginBlock()
  local index = reaper.CountTracks(0)
  reaper.InsertTrackAtIndex(index, true)
  local track = reaper.GetTrack(0, index)
  reaper.GetSetMediaTrackInfo_String(track, "P_NAME", track_name, true)
  local item = reaper.AddMediaItemToTrack(track)
  local take = reaper.AddTakeToMediaItem(item)
  local source = reaper.PCM_Source_CreateFromFile(path)
  reaper.SetMediaItemTake_Source(take, source)
  local length = reaper.GetMediaSourceLength(source)
  reaper.SetMediaItemInfo_Value(item, "D_POSITION", position)
  reaper.SetMediaItemInfo_Value(item, "D_LENGTH", length)
  reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", take_name, true)
  reaper.SetOnlyTrackSelected(track)
  reaper.Undo_EndBlock(undo_name, -1)
  reaper.PreventUIRefresh(-1)
  reaper.UpdateArrange()
  return track, item
end

function M.format_number(x)
  return string.format("%.2f", x)
end

return M
