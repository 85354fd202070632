-- @noindex
-- @description DARC: Set rhythm prompt from selected item
-- @version 0.2.0
-- @author darc-bridge
-- @about
--   Uses the selected audio item (beatbox, tapping, a loop) as the rhythm prompt of this project.
--   An item that plays all of its file at normal speed is used as is; a trimmed, offset or
--   re-pitched item is rendered first, so the prompt is what you hear.

local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
local darc = dofile(dir .. "darc_common.lua")

local RENDER_SELECTED_ITEMS = 32
local BOUNDS_SELECTED_ITEMS = 4

local function main()
  if reaper.CountSelectedMediaItems(0) ~= 1 then
    return darc.error("Select exactly one audio item to use as the rhythm prompt.")
  end
  local item = reaper.GetSelectedMediaItem(0, 0)
  local take = reaper.GetActiveTake(item)
  if not take or reaper.TakeIsMIDI(take) then
    return darc.error("The selected item is not audio: select an audio item (a recording of the rhythm).")
  end
  local source = reaper.GetMediaItemTake_Source(take)
  local file = reaper.GetMediaSourceFileName(source, "")
  if not file or file == "" or not darc.file_exists(file) then
    return darc.error("The selected item's audio file cannot be found:\n" .. tostring(file))
  end
  local offset = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS")
  local rate = reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE")
  local length = reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
  local source_length = reaper.GetMediaSourceLength(source)
  local prompt = file
  if math.abs(offset) > 1e-6 or math.abs(rate - 1) > 1e-6 or math.abs(length - source_length) > 1e-3 then
    local err
    prompt, err = darc.render(darc.job_dir(), "prompt-" .. darc.new_job_id(), RENDER_SELECTED_ITEMS,
      BOUNDS_SELECTED_ITEMS, {})
    if not prompt then
      return darc.error(err)
    end
  end
  reaper.SetProjExtState(0, darc.SECTION, "prompt", prompt)
  reaper.ShowConsoleMsg("DARC: rhythm prompt set to " .. prompt .. "\n")
end

main()
