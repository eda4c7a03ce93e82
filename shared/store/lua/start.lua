-- start.lua: ASSIGNED -> RUNNING, by the worker the job is assigned to.
-- KEYS: common, job, job_events
-- ARGV: now, job_id, worker_id, attempt
-- Returns {status, state, version}; status is ok, duplicate, stale, forbidden (an attempt
-- never this worker's) or not_found; state is '' where refusal() tells none.
local K_JOB, K_JOB_EVENTS = KEYS[COMMON + 1], KEYS[COMMON + 2]
local now, job_id, worker_id, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local state = redis.call('HGET', K_JOB, 'state')
if not state then return {'not_found', '', 0} end
if not is_current(K_JOB, worker_id, attempt) then
  local why, told = refusal(K_JOB, K_JOB_EVENTS, worker_id, attempt, state)
  return {why, told, 0}
end
if state == 'RUNNING' then
  return {'duplicate', state, tonumber(redis.call('HGET', K_JOB, 'version'))}
end
if state ~= 'ASSIGNED' then return {'stale', state, 0} end
local version = transition(K_JOB, K_JOB_EVENTS, job_id, 'ASSIGNED', 'RUNNING', now,
  {'started_at', now}, {})
return {'ok', 'RUNNING', version}
