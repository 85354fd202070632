-- @description DARC: Generate drums for time selection
-- @version 0.2.0
-- @author darc-bridge
-- @about
--   Renders the selected tracks (or the master mix without tracks named "Drums") over the time
--   selection, sends it with the rhythm prompt to the darc-bridge daemon through
--   `darc-bridge client generate`, and inserts the drum stem on a new track at the selection
--   start, with a MIDI track of the played rhythm (GM kick 36, snare 38, hat 42) and, when
--   "split stems" is on in DARC: Settings, one track per drum piece in a folder.
--
--   REAPER never waits: the client runs in the background and its status file is polled.
--   Needs the daemon running (`darc-bridge serve`); see docs/daw.md.
-- @provides
--   [nomain] darc_common.lua
--   [main] darc_set_rhythm_prompt.lua
--   [main] darc_record_prompt.lua
--   [main] darc_cancel.lua
--   [main] darc_settings.lua
-- @changelog
--   Stems and renders in the project folder; one stereo mix of several selected tracks;
--   a MIDI track of the played rhythm; per-piece stems as a folder; kit menu in Settings;
--   no console window on Windows; a client that dies is noticed at once.

local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
local darc = dofile(dir .. "darc_common.lua")

local RENDER_MASTER = 0
local BOUNDS_TIME_SELECTION = 2

-- Tracks named "Drums..." are left out of a master render: the stem must not hear old drums.
local function drum_tracks()
  local found = {}
  for i = 0, reaper.CountTracks(0) - 1 do
    local track = reaper.GetTrack(0, i)
    if darc.track_name(track):lower():match("^%s*drums") then
      found[#found + 1] = track
    end
  end
  return found
end

local function selected_tracks()
  local found = {}
  for i = 0, reaper.CountSelectedTracks(0) - 1 do
    found[#found + 1] = reaper.GetSelectedTrack(0, i)
  end
  return found
end

local function main()
  local settings, err = darc.settings()
  if not settings then
    return darc.error(err)
  end
  local active = reaper.GetExtState(darc.SECTION, "active_job")
  if active ~= "" then
    return darc.error("A generation is already running (job " .. active .. "). Wait, or run 'DARC: Cancel generation'.")
  end
  local start, finish = reaper.GetSet_LoopTimeRange(false, false, 0, 0, false)
  if not start or finish - start < 0.5 then
    return darc.error("Make a time selection (at least half a second) over the part to accompany.")
  end
  local _, prompt = reaper.GetProjExtState(0, darc.SECTION, "prompt")
  if prompt ~= "" and not darc.file_exists(prompt) then
    return darc.error("The rhythm prompt file is missing:\n" .. prompt
      .. "\nSet it again with 'DARC: Set rhythm prompt from selected item'.")
  end

  local job_id = darc.new_job_id()
  local job_dir, where_note = darc.job_dir()
  if where_note then
    reaper.ShowConsoleMsg("DARC: " .. where_note .. "\n")
  end
  -- One stereo mix, whatever is selected: the master, with only the selected tracks soloed (in
  -- place), or with the drum tracks muted when none is selected. ("Selected tracks" rendering
  -- would write one file per track.)
  local mix
  local chosen = selected_tracks()
  if #chosen > 0 then
    mix, err = darc.render(job_dir, "mix-" .. job_id, RENDER_MASTER, BOUNDS_TIME_SELECTION, {}, chosen)
  else
    mix, err = darc.render(job_dir, "mix-" .. job_id, RENDER_MASTER, BOUNDS_TIME_SELECTION, drum_tracks())
  end
  if not mix then
    return darc.error(err)
  end

  local status_file = job_dir .. "/job-" .. job_id .. ".json"
  local args = { "generate", "--mix", mix }
  if prompt ~= "" then
    args[#args + 1] = "--prompt"
    args[#args + 1] = prompt
  end
  for _, a in ipairs({ "--temperature", darc.format_number(settings.temperature),
    "--rhythm-strength", darc.format_number(settings.rhythm_strength), "--out-dir", job_dir,
    "--job-id", job_id, "--wait", "--status-file", status_file, "--quiet" }) do
    args[#args + 1] = a
  end
  if settings.midi ~= "1" then
    args[#args + 1] = "--no-midi"
  end
  -- Options left at their defaults are not sent (the daemon's own kit, the mixed stem only).
  if settings.stems == "split" then
    args[#args + 1] = "--stems"
    args[#args + 1] = "split"
  end
  if settings.kit ~= "" then
    args[#args + 1] = "--kit"
    args[#args + 1] = settings.kit
  end
  local handle
  handle, err = darc.launch(darc.client_argv(settings, args), job_id)
  if not handle then
    os.remove(mix)
    return darc.error(err)
  end
  reaper.SetExtState(darc.SECTION, "active_job", job_id, false)

  local take_name = string.format("DARC T%s R%s", darc.format_number(settings.temperature),
    darc.format_number(settings.rhythm_strength))
  darc.poll(status_file, handle, {
    on_progress = function(status)
      local pct = math.floor((tonumber(status.fraction) or 0) * 100 + 0.5)
      darc.show_progress("DARC: generating drums", string.format("%s %d%%", status.stage or status.state, pct),
        tonumber(status.fraction) or 0)
    end,
    on_done = function(status)
      if not status.stem_path or status.stem_path == "" or not darc.file_exists(status.stem_path) then
        return darc.error("The daemon reported a stem that cannot be read:\n" .. tostring(status.stem_path))
      end
      local result = { stem = status.stem_path }
      if type(status.stems) == "table" and next(status.stems) then
        result.pieces = status.stems
      end
      local note
      if settings.midi == "1" and status.midi_path and status.midi_path ~= "" then
        result.notes, note = darc.read_midi(status.midi_path)
      end
      darc.insert_results(result, start, "Drums", take_name, "DARC: insert drum stem")
      if note then
        reaper.ShowConsoleMsg("DARC: no MIDI track: " .. note .. "\n")
      end
    end,
    on_error = function(message)
      darc.error("Drum generation failed:\n" .. message)
    end,
  }, { cleanup = { mix } })
end

main()
