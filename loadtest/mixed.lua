-- About 95 % GET /users/{id} (uniform ids) and 5 % writes: PUT or PATCH of the caller's own user with that
-- user's own token (a user may change only itself). The bodies re-send the user's current profile, so the
-- data stays as seeded while every write still bumps the version. No If-Match: concurrent writes all pass.
-- wrk -s mixed.lua URL -- ids=FILE creds=FILE [writes=0.05] [count=1] [seed=N]
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local lib = require("wrklib")
local ids, creds, n, ratio = {}, {}, 0, 0.05
reads, writes = 0, 0

function init(list)
  local args = lib.args(list)
  ids, creds = lib.ids(args.ids), lib.creds(args.creds)
  for i, c in ipairs(creds) do
    if not c.put then error("mixed: credential " .. i .. " has no PUT/PATCH bodies") end
  end
  ratio = tonumber(args.writes or "0.05")
  lib.seed(args)
  lib.maybe_count(args)
end

function request()
  n = n + 1
  if math.random() < ratio then
    writes = writes + 1
    local c = creds[math.random(#creds)]
    local headers = {Authorization = c.auth, ["Content-Type"] = "application/json"}
    if writes % 2 == 0 then
      return wrk.format("PUT", "/users/" .. c.id, headers, c.put)
    end
    return wrk.format("PATCH", "/users/" .. c.id, headers, c.patch)
  end
  reads = reads + 1
  return wrk.format("GET", "/users/" .. ids[math.random(#ids)], {Authorization = creds[n % #creds + 1].auth})
end

lib.install("mixed")
