"""The DAW side: build the Max for Live device from its text source (the REAPER scripts are Lua)."""
