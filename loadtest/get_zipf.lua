-- GET /users/{id} with a Zipf-like skew (s = 1) over the seeded ids, each request with a real Bearer token.
-- wrk -s get_zipf.lua URL -- ids=FILE creds=FILE [count=1] [seed=N]
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
require("wrklib").reads("get_zipf", "zipf", "Bearer")
