-- retry.lua: a user retries a FAILED or CANCELLED job: back to QUEUED in its old place in
-- the queue, with its automatic retries (max_retries) available again; the next assignment
-- starts a new attempt. Lost-worker requeues are not forgiven.
-- KEYS: common, job, job_events
-- ARGV: now, job_id, actor (the name of the person who asks)
-- Returns {status, state, version}; status is queued, conflict or not_found.
local K_JOB, K_JOB_EVENTS = KEYS[COMMON + 1], KEYS[COMMON + 2]
local now, job_id, actor = ARGV[1], ARGV[2], ARGV[3]

local state = redis.call('HGET', K_JOB, 'state')
if not state then return {'not_found', '', 0} end
if not USER_RETRYABLE[state] then return {'conflict', state, 0} end
local version = transition(K_JOB, K_JOB_EVENTS, job_id, state, 'QUEUED', now,
  {'queued_at', now, 'retries', 0}, USER_RETRY_CLEARS, nil, actor)
wake_scheduler()
return {'queued', 'QUEUED', version}
