-- Walks the ids in order, one GET each, then starts over: the runner stops wrk once every id went upstream.
-- wrk -s warm.lua URL -- ids=FILE creds=FILE
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
require("wrklib").reads("warm", "sequential", "Bearer")
