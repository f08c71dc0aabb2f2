-- GET /users/{id}, uniform ids, with Authorization: Basic: the proxy trades each login for a token once
-- and reuses it, so this measures the exchange cache on top of the read path.
-- wrk -s get_basic.lua URL -- ids=FILE creds=FILE [count=1] [seed=N]
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
require("wrklib").reads("get_basic", "uniform", "Basic")
