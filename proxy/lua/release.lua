-- A fill that will not store gives its lease back: the key is emptied if it still holds that very lease.
-- KEYS: entry
-- ARGV: the lease's token
local raw = redis.call('GET', KEYS[1])
if not raw or #raw < PREFIX_SIZE then return 0 end
local _, kind, _, _, token = struct.unpack(PREFIX, raw)
if kind ~= LEASE or token ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
