-- Run one DARC ReaScript against the fake reaper: lua5.4 run_script.lua SCENARIO.lua SCRIPT.lua OUT.json
-- The scenario file returns a table (see fake_reaper.lua); the report of what the script did is
-- written to OUT.json.
local here = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
local Fake = dofile(here .. "fake_reaper.lua")
local scenario = dofile(arg[1])
Fake.install(scenario)
local ok, err = pcall(dofile, arg[2])
if not ok then
  Fake.state.error = tostring(err)
end
if ok then
  Fake.run_defer(scenario.defer_step or 0.1, scenario.real_sleep or 0, scenario.max_rounds or 1000)
end
local out = assert(io.open(arg[3], "w"))
out:write(Fake.report())
out:close()
