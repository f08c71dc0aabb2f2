-- What one key holds, for explain: its record, its time left and Redis's clock (fence deadlines are in
-- it), read on the key's own node (a cluster pipeline cannot send TIME).
-- KEYS: entry
-- Returns {record or false, pttl ms, now ms}
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), clock_ms()}
