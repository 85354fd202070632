-- @noindex
-- @description DARC: Record rhythm prompt
-- @version 0.2.0
-- @author darc-bridge
-- @about
--   Records a rhythm prompt (beatbox, tapping) through the darc-bridge daemon's audio input, with
--   a count-in at the project tempo, and makes it this project's rhythm prompt.

local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
local darc = dofile(dir .. "darc_common.lua")

local function main()
  local settings, err = darc.settings()
  if not settings then
    return darc.error(err)
  end
  local ok, csv = reaper.GetUserInputs("DARC: Record rhythm prompt", 2, "Seconds to record,Count-in beats", "8,4")
  if not ok then
    return
  end
  local seconds, count_in = csv:match("^%s*([^,]*)%s*,%s*([^,]*)%s*$")
  seconds, count_in = tonumber(seconds), tonumber(count_in)
  if not seconds or seconds < 0.5 or seconds > 120 then
    return darc.error("Seconds to record must be a number from 0.5 to 120.")
  end
  if not count_in or count_in < 0 or count_in > 16 or count_in ~= math.floor(count_in) then
    return darc.error("Count-in beats must be a whole number from 0 to 16.")
  end
  local job_id = darc.new_job_id()
  local job_dir = darc.job_dir()
  local status_file = job_dir .. "/record-" .. job_id .. ".json"
  local argv = darc.client_argv(settings, { "record", "--seconds", darc.format_number(seconds),
    "--count-in", tostring(math.floor(count_in)), "--bpm", darc.format_number(reaper.Master_GetTempo()),
    "--out-dir", job_dir, "--job-id", job_id, "--wait", "--status-file", status_file })
  local handle
  handle, err = darc.launch(argv, job_id)
  if not handle then
    return darc.error(err)
  end
  reaper.SetExtState(darc.SECTION, "active_job", job_id, false)
  darc.poll(status_file, handle, {
    on_progress = function(status)
      darc.show_progress("DARC: recording the rhythm prompt", "Recording... " .. (status.stage or ""),
        tonumber(status.fraction) or 0)
    end,
    on_done = function(status)
      local path = status.prompt_path or status.stem_path or ""
      if path == "" or not darc.file_exists(path) then
        return darc.error("The daemon reported a recording that cannot be read:\n" .. path)
      end
      reaper.SetProjExtState(0, darc.SECTION, "prompt", path)
      reaper.ShowConsoleMsg("DARC: rhythm prompt recorded to " .. path .. "\n")
    end,
    on_error = function(message)
      darc.error("Recording the rhythm prompt failed:\n" .. message)
    end,
  }, { start_timeout = 30 + seconds + count_in * 2 })
end

main()
