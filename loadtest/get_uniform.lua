-- GET /users/{id} with ids drawn uniformly from the seeded users, each request with a real Bearer token.
-- wrk -s get_uniform.lua URL -- ids=FILE creds=FILE [count=1] [seed=N]
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
require("wrklib").reads("get_uniform", "uniform", "Bearer")
