-- Fence a key before its write goes upstream: whatever the key held becomes a "writing" record, never
-- served, that refuses fills and lists this write with its deadline (now + lifetime). A gateway that dies
-- before the write settles leaves it to expire by itself; the key's version floor stays.
-- KEYS: entry (the one key it touches: one hash slot)
-- ARGV: writer, lifetime ms, new token, linger ms (how long the record outlives its last deadline), epoch
local now = clock_ms()
local epoch = tonumber(ARGV[5])
local _, floor, _, _, writers = read_record(redis.call('GET', KEYS[1]), now, ARGV[1])
writers[#writers + 1] = {ARGV[1], now + tonumber(ARGV[2])}
set_writing(KEYS[1], epoch, floor, ARGV[3], writers, now, tonumber(ARGV[4]))
return 'fenced'
