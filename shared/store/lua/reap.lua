-- reap.lua: move one job that its clock says is overdue, releasing its worker's reservation.
--   stale:   ASSIGNED and never started -> QUEUED (reason stale), or FAILED past max_requeues
--   timeout: RUNNING past its deadline and its agent silent about it -> FAILED (reason timeout),
--            or QUEUED to wait out a backoff while it has automatic retries left
-- KEYS: common, job, job_events, worker, worker_jobs
-- ARGV: now, job_id, kind (stale|timeout), attempt, max_requeues, backoff_s, backoff_max_s
-- Returns the job's new state, or '' when it had moved on (another attempt, another state).
local K_JOB, K_JOB_EVENTS, K_WORKER, K_WORKER_JOBS =
  KEYS[COMMON + 1], KEYS[COMMON + 2], KEYS[COMMON + 3], KEYS[COMMON + 4]
local now, job_id, kind, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local h = redis.call('HMGET', K_JOB, 'state', 'attempt', 'requeues', 'cancel_requested')
local expected = kind == 'stale' and 'ASSIGNED' or 'RUNNING'
if h[1] ~= expected or h[2] ~= attempt then return '' end

local requeues = tonumber(h[3] or 0)
local retry = kind == 'timeout' and retry_after(K_JOB, now, 'timeout', ARGV[6], ARGV[7])
local target
if h[4] == '1' then  -- the user cancelled it meanwhile: that is how it ends
  target = 'CANCELLED'
  transition(K_JOB, K_JOB_EVENTS, job_id, expected, 'CANCELLED', now,
    {'reason', 'cancelled', 'finished_at', now}, {})
elseif kind == 'stale' and requeues < tonumber(ARGV[5]) then
  target = 'QUEUED'
  transition(K_JOB, K_JOB_EVENTS, job_id, 'ASSIGNED', 'QUEUED', now,
    {'reason', 'stale', 'requeues', requeues + 1, 'queued_at', now}, REQUEUE_CLEARS)
elseif retry then
  target = 'QUEUED'
  transition(K_JOB, K_JOB_EVENTS, job_id, 'RUNNING', 'QUEUED', now, retry.set, retry.clear,
    retry.retry_at)
else
  target = 'FAILED'
  transition(K_JOB, K_JOB_EVENTS, job_id, expected, 'FAILED', now,
    {'reason', kind, 'finished_at', now}, {})
end
-- Only once the move is made (transition() may refuse it).
release(K_JOB, K_WORKER, K_WORKER_JOBS, job_id)
return target
