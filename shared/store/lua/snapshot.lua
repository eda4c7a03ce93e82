-- snapshot.lua: read the same fields of many hashes in one reply (the scheduler's view of
-- the queue window and of the workers). One reply parses in C, where a pipeline of HMGETs
-- costs tens of microseconds of Python each. Reads only.
-- KEYS: the hashes. ARGV: the field names.
-- Returns the values flat, hash after hash, #ARGV per hash (nil where a field is missing).
local out, n = {}, 0
for i = 1, #KEYS do
  local values = redis.call('HMGET', KEYS[i], unpack(ARGV))
  for f = 1, #ARGV do
    n = n + 1
    out[n] = values[f]
  end
end
return out
