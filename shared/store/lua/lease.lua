-- lease.lua: take or keep the scheduler lease. Only its holder may commit placements.
-- KEYS: lease
-- ARGV: token, ttl_ms
-- Returns 1 when the caller holds the lease for at least half of ttl_ms from now, else 0.
-- A lease with more than half its time left is not renewed: a write is an fsync under
-- appendfsync always, and the scheduler asks on every pass.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  if redis.call('PTTL', KEYS[1]) <= tonumber(ARGV[2]) / 2 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
