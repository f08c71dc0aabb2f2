-- One entry a tag invalidation found in the tag's index: dropped as proxy/lua/record.lua's drop_entry says
-- (an entry becomes a marker that keeps its floor; any other record keeps what it is under a new token).
-- KEYS: entry
-- ARGV: new token, marker ttl ms
return drop_entry(KEYS[1], ARGV[1], ARGV[2])
