-- @noindex
-- @description DARC: Cancel generation
-- @version 0.2.0
-- @author darc-bridge
-- @about
--   Asks the daemon to cancel the running DARC job; the generate script then reports it cancelled.

local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
local darc = dofile(dir .. "darc_common.lua")

local function main()
  local job_id = reaper.GetExtState(darc.SECTION, "active_job")
  if job_id == "" then
    return darc.error("No DARC generation is running.")
  end
  local settings, err = darc.settings()
  if not settings then
    return darc.error(err)
  end
  -- Fire and forget, minimised on Windows: the generate script's poll reports the cancellation.
  local handle
  handle, err = darc.launch(darc.client_argv(settings, { "cancel", job_id }), job_id .. "-cancel", { detached = true })
  if not handle then
    return darc.error(err)
  end
end

main()
