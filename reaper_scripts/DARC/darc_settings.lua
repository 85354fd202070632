-- @noindex
-- @description DARC: Settings
-- @version 0.2.0
-- @author darc-bridge
-- @about
--   Daemon host and port, temperature, rhythm strength, the darc-bridge program, the network
--   token, the MIDI track and split stems switches, then the kit (a menu of the kits the daemon
--   finds: `darc-bridge client kits --json`). Kept with SetExtState (they survive restarts).

local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
local darc = dofile(dir .. "darc_common.lua")

local CAPTIONS = "Daemon host,Daemon port,Temperature (0-5),Rhythm strength (0-4),darc-bridge program,"
  .. "Token (network only),MIDI track (y/n),Split stems (y/n),extrawidth=240"
local DEFAULT_KIT_ITEM = "(daemon default)"
local KITS_TIMEOUT = 15 -- s for `client kits` to answer before the menu is given up

-- The kit menu, once `client kits --json` has answered (polled from defer: REAPER never waits).
local function choose_kit(settings)
  local job_id = darc.new_job_id()
  local out = darc.temp_path("darc-" .. job_id .. ".json")
  local handle, err = darc.launch(darc.client_argv(settings, { "kits", "--json" }), job_id, { stdout_file = out })
  if not handle then
    return darc.error(err)
  end
  local started = reaper.time_precise()
  local function step()
    local rc = darc.read_file(handle.rc_file)
    if not (rc and rc:match("%d+")) then
      if reaper.time_precise() - started > KITS_TIMEOUT then
        darc.cleanup(handle, { out })
        return darc.error("darc-bridge client kits did not answer within " .. KITS_TIMEOUT .. " s: the kit is unchanged.")
      end
      return reaper.defer(step)
    end
    local kits = darc.json_decode(darc.read_file(out) or "")
    local log = (darc.read_file(handle.log_file) or ""):gsub("%s+$", "")
    darc.cleanup(handle, { out })
    if rc:match("%d+") ~= "0" or type(kits) ~= "table" then
      return darc.error("The kit list could not be read (darc-bridge client kits, code " .. rc:match("%d+") .. "):\n"
        .. log:sub(-400) .. "\nThe kit is unchanged.")
    end
    local names, items = {}, { (settings.kit == "" and "!" or "") .. DEFAULT_KIT_ITEM }
    for _, kit in ipairs(kits) do
      local name = type(kit) == "table" and tostring(kit.name or "") or ""
      if name ~= "" and not name:find("|", 1, true) then
        names[#names + 1] = name
        -- a leading menu control character (! # < >) would be read as a flag: pad it
        items[#items + 1] = (name == settings.kit and "!" or "") .. (name:match("^[!#<>]") and " " or "")
          .. name .. (kit.format and " (" .. tostring(kit.format) .. ")" or "")
      end
    end
    gfx.init("DARC: kit", 0, 0)
    gfx.x, gfx.y = gfx.mouse_x, gfx.mouse_y
    local choice = gfx.showmenu(table.concat(items, "|"))
    gfx.quit()
    if choice == 1 then
      settings.kit = ""
    elseif choice > 1 then
      settings.kit = names[choice - 1]
    else
      return -- menu closed: the kit is unchanged
    end
    darc.save_settings(settings)
  end
  reaper.defer(step)
end

local function main()
  local raw = darc.raw_settings()
  raw.midi = raw.midi == "1" and "y" or "n"
  raw.stems = raw.stems == "split" and "y" or "n"
  local defaults = {}
  for i, key in ipairs(darc.SETTING_KEYS) do
    defaults[i] = raw[key]
  end
  local ok, csv = reaper.GetUserInputs("DARC settings", #darc.SETTING_KEYS, CAPTIONS, table.concat(defaults, ","))
  if not ok then
    return
  end
  local values, i = { kit = raw.kit }, 0
  for value in (csv .. ","):gmatch("([^,]*),") do
    i = i + 1
    values[darc.SETTING_KEYS[i] or ("extra" .. i)] = value
  end
  local settings, err = darc.validate_settings(values)
  if not settings then
    return darc.error(err .. "\nNothing was saved.")
  end
  darc.save_settings(settings)
  choose_kit(settings)
end

main()
