-- expire.lua: QUEUED jobs whose queue timeout has passed end FAILED (reason unschedulable).
-- KEYS: common, then job and job_events per job id
-- ARGV: now, then the job ids the caller found past their deadline
-- Returns the ids that were failed (a job placed meanwhile is left alone).
local now = ARGV[1]
local failed = {}
for i = 2, #ARGV do
  local job_id = ARGV[i]
  local k_job, k_events = KEYS[COMMON + 2 * (i - 2) + 1], KEYS[COMMON + 2 * (i - 2) + 2]
  local deadline = redis.call('ZSCORE', K_DEADLINES, job_id)
  if redis.call('HGET', k_job, 'state') == 'QUEUED' and deadline
     and tonumber(deadline) <= tonumber(now) then
    transition(k_job, k_events, job_id, 'QUEUED', 'FAILED', now,
      {'reason', 'unschedulable', 'finished_at', now}, {})
    failed[#failed + 1] = job_id
  end
end
return failed
