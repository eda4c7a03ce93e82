-- clocks.lua: enter ASSIGNED and RUNNING jobs missing from the reaper's clocks (jobs from a
-- version that kept none): K_ASSIGNED_AT by assigned_at, K_RUN_DEADLINES by started_at plus
-- timeout_s for a job that has one. Not a transition: no version bump, no event. Entries
-- already there are kept (transition() made them).
-- KEYS: common, then one job key per job id
-- ARGV: the job ids (as read from the ASSIGNED and RUNNING indexes)
-- Returns the number of entries added.
local added = 0
for i = 1, #ARGV do
  local job_id = ARGV[i]
  local h = redis.call('HMGET', KEYS[COMMON + i], 'state', 'assigned_at', 'started_at',
    'timeout_s')
  if h[1] == 'ASSIGNED' and h[2] then
    added = added + redis.call('ZADD', K_ASSIGNED_AT, 'NX', h[2], job_id)
  elseif h[1] == 'RUNNING' and h[3] and h[4] and h[4] ~= '' then
    added = added + redis.call('ZADD', K_RUN_DEADLINES, 'NX',
      tonumber(h[3]) + tonumber(h[4]), job_id)
  end
end
return added
