-- Shared by the cachegate wrk scripts: "key=value" arguments, the id and credential files, and the
-- one JSON line that done() prints for the runner.
local M = {}

function M.args(list)
  local out = {}
  for _, item in ipairs(list or {}) do
    local k, v = item:match("^([%w_]+)=(.*)$")
    if not k then error("bad script argument '" .. item .. "' (expected key=value)") end
    out[k] = v
  end
  return out
end

local function lines(path, what)
  local f, err = io.open(path or "", "r")
  if not f then error("cannot open " .. what .. " file: " .. tostring(err)) end
  local out = {}
  for line in f:lines() do
    if line ~= "" then out[#out + 1] = line end
  end
  f:close()
  if #out == 0 then error(what .. " file " .. path .. " is empty") end
  return out
end

-- One user id per line.
function M.ids(path)
  local out = {}
  for i, line in ipairs(lines(path, "ids")) do out[i] = tonumber(line) end
  return out
end

-- One credential per line: "<user id>\t<Authorization value>[\t<PUT body>\t<PATCH body>]"; the bodies
-- (JSON, made by the runner from the user's current profile) are needed by the mixed script only.
function M.creds(path)
  local out = {}
  for i, line in ipairs(lines(path, "credentials")) do
    local id, auth, rest = line:match("^(%d+)\t([^\t]+)(.*)$")
    if not id then error("bad credentials line " .. i) end
    local put, patch = rest:match("^\t([^\t]+)\t([^\t]+)$")
    out[i] = {id = tonumber(id), auth = auth, put = put, patch = patch}
  end
  return out
end

-- Reproducible per thread, different between threads.
function M.seed(args)
  local tid = wrk.thread:get("tid") or 0
  math.randomseed(tonumber(args.seed or "1") * 1000 + tid)
end

-- Counting statuses in Lua makes wrk parse every response into Lua tables, which costs client CPU;
-- the runner turns it on only with count=1 and otherwise relies on wrk's summary.errors.status (> 399).
function M.maybe_count(args)
  if args.count ~= "1" then return end
  counting, non2xx, statuses = 1, 0, {}
  response = function(status, headers, body)
    if status < 200 or status > 299 then
      non2xx = non2xx + 1
      statuses[status] = (statuses[status] or 0) + 1
    end
  end
end

local threads = {}

local function encode(v)
  if type(v) == "table" then
    local parts = {}
    for k, item in pairs(v) do parts[#parts + 1] = string.format("%q:%s", k, encode(item)) end
    table.sort(parts)
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(v) == "number" then
    if v == math.floor(v) and math.abs(v) < 2^53 then return string.format("%d", v) end
    return string.format("%.3f", v)
  elseif v == nil then
    return "null"
  end
  return string.format("%q", tostring(v))
end

-- Installs setup() and done(); `name` identifies the script in the summary line.
function M.install(name)
  function setup(thread)
    thread:set("tid", #threads + 1)
    threads[#threads + 1] = thread
  end

  function done(summary, latency, requests)
    local non2xx, reads, writes, counted, statuses = 0, 0, 0, false, {}
    for _, t in ipairs(threads) do
      if t:get("counting") then
        counted = true
        non2xx = non2xx + (t:get("non2xx") or 0)
        for code, n in pairs(t:get("statuses") or {}) do statuses[code] = (statuses[code] or 0) + n end
      end
      reads = reads + (t:get("reads") or 0)
      writes = writes + (t:get("writes") or 0)
    end
    local e = summary.errors
    local lat = {mean = latency.mean, stdev = latency.stdev, max = latency.max}
    for _, p in ipairs({50, 75, 90, 99, 99.9}) do lat["p" .. p] = latency:percentile(p) end
    io.write(encode({
      cachegate_wrk = name, requests = summary.requests, duration_us = summary.duration, bytes = summary.bytes,
      latency_us = lat, reads_sent = reads, writes_sent = writes,
      errors = {connect = e.connect, read = e.read, write = e.write, timeout = e.timeout, status = e.status},
      non2xx = counted and non2xx or "not counted", non2xx_by_status = statuses,
    }), "\n")
  end
end

-- Draws an index into a list of `size` ids.
local pickers = {
  uniform = function(size, n) return math.random(size) end,
  -- Inverse of the continuous 1/x law on [1, N+1): floor((N+1)^u) is a rank in 1..N, so the id of
  -- rank k is asked about 1/k as often as the first (Zipf, s = 1), O(1) per draw.
  zipf = function(size, n)
    local r = math.floor((size + 1) ^ math.random())
    if r > size then return size end
    return r
  end,
  sequential = function(size, n) return (n - 1) % size + 1 end,
}

-- A read-only script: GET /users/{id}, ids drawn by `pick`, credentials taken in turn; `scheme` ("Bearer"
-- or "Basic") is checked against the credentials file so a run can not silently measure the wrong thing.
function M.reads(name, pick, scheme)
  local ids, creds, n, picker = {}, {}, 0, pickers[pick]
  reads = 0

  function init(list)
    local args = M.args(list)
    ids, creds = M.ids(args.ids), M.creds(args.creds)
    for i, c in ipairs(creds) do
      if c.auth:sub(1, #scheme + 1) ~= scheme .. " " then
        error(name .. ": credential " .. i .. " is not " .. scheme)
      end
    end
    M.seed(args)
    M.maybe_count(args)
  end

  function request()
    reads = reads + 1
    n = n + 1
    return wrk.format("GET", "/users/" .. ids[picker(#ids, n)], {Authorization = creds[n % #creds + 1].auth})
  end

  M.install(name)
end

return M
