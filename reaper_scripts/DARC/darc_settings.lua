-- @noindex
-- @description DARC: Settings
-- @version 0.1.0
-- @author darc-bridge
-- @about
--   Daemon host and port, temperature, rhythm strength, the darc-bridge program and the network
--   token, kept with SetExtState (they survive restarts of REAPER).

local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
local darc = dofile(dir .. "darc_common.lua")

local CAPTIONS = "Daemon host,Daemon port,Temperature (0-5),Rhythm strength (0-4),darc-bridge program,"
  .. "Token (network only),extrawidth=240"

local function main()
  local raw = darc.raw_settings()
  local defaults = {}
  for i, key in ipairs(darc.SETTING_KEYS) do
    defaults[i] = raw[key]
  end
  local ok, csv = reaper.GetUserInputs("DARC settings", #darc.SETTING_KEYS, CAPTIONS, table.concat(defaults, ","))
  if not ok then
    return
  end
  local values, i = {}, 0
  for value in (csv .. ","):gmatch("([^,]*),") do
    i = i + 1
    values[darc.SETTING_KEYS[i] or ("extra" .. i)] = value
  end
  local settings, err = darc.validate_settings(values)
  if not settings then
    return darc.error(err .. "\nNothing was saved.")
  end
  darc.save_settings(settings)
end

main()
