-- recount.lua: set one owner's per-state counts from the state indexes and the owner's jobs,
-- for jobs that a version without per-owner counts made (their moves since may have driven
-- the counts below zero). Exact at this instant, and every move after it keeps them. Not a
-- transition: no version, no event.
-- KEYS: common, owner_jobs
-- ARGV: owner
-- Returns the owner's number of jobs.
local K_OWNER_JOBS, owner = KEYS[COMMON + 1], ARGV[1]
local total = 0
for state, index in pairs(STATE_INDEX) do
  local n = redis.call('ZINTERCARD', 2, index, K_OWNER_JOBS)
  local field = owner .. '\t' .. state
  if n > 0 then
    redis.call('HSET', K_OWNER_COUNTS, field, n)
  else
    redis.call('HDEL', K_OWNER_COUNTS, field)
  end
  total = total + n
end
return total
