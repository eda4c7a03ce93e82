-- lost.lua: declare a worker lost. Each job it held is requeued (reason lost) or, past
-- max_requeues, FAILED (reason lost), or CANCELLED when the user had asked to cancel it;
-- its reservation is released in the same step.
-- KEYS: common, worker, worker_jobs, worker_inbox, lost_workers, then job and job_events per
--       job id
-- ARGV: now, worker_id, max_requeues, then the job ids the caller read from worker_jobs
-- Returns {'retry'} when worker_jobs changed since the caller read it, {'not_found'}, or
-- {'ok', job_id, new_state, ...}.
local K_WORKER, K_WORKER_JOBS, K_INBOX, K_LOST =
  KEYS[COMMON + 1], KEYS[COMMON + 2], KEYS[COMMON + 3], KEYS[COMMON + 4]
local now, worker_id, max_requeues = ARGV[1], ARGV[2], tonumber(ARGV[3])

if redis.call('EXISTS', K_WORKER) == 0 then return {'not_found'} end
if redis.call('SCARD', K_WORKER_JOBS) ~= #ARGV - 3 then return {'retry'} end
for i = 4, #ARGV do
  if redis.call('SISMEMBER', K_WORKER_JOBS, ARGV[i]) == 0 then return {'retry'} end
end

local result = {'ok'}
for i = 4, #ARGV do
  local job_id = ARGV[i]
  local k_job, k_events = KEYS[COMMON + 5 + 2 * (i - 4)], KEYS[COMMON + 6 + 2 * (i - 4)]
  local h = redis.call('HMGET', k_job, 'state', 'requeues', 'cancel_requested')
  local requeues = tonumber(h[2] or 0)
  local target
  if h[3] == '1' then  -- the user cancelled it: it must not run again
    target = 'CANCELLED'
    transition(k_job, k_events, job_id, h[1], 'CANCELLED', now,
      {'reason', 'cancelled', 'finished_at', now}, {})
  elseif requeues < max_requeues then
    target = 'QUEUED'
    transition(k_job, k_events, job_id, h[1], 'QUEUED', now,
      {'reason', 'lost', 'requeues', requeues + 1, 'queued_at', now}, REQUEUE_CLEARS)
  else
    target = 'FAILED'
    transition(k_job, k_events, job_id, h[1], 'FAILED', now,
      {'reason', 'lost', 'finished_at', now}, {})
  end
  release(k_job, K_WORKER, K_WORKER_JOBS, job_id)  -- once the move is made
  result[#result + 1] = job_id
  result[#result + 1] = target
end
redis.call('HSET', K_WORKER, 'status', 'lost')
redis.call('DEL', K_INBOX)
-- Its record, token hash and keys go JOBYARD_WORKER_RETENTION_S from now (forget.lua); the
-- first declaration sets the clock, so a second one cannot put it off.
redis.call('ZADD', K_LOST, 'NX', now, worker_id)
publish('worker', worker_id, cjson.encode({status = 'lost', at = tonumber(now)}))
return result
