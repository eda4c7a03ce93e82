-- result.lua: an attempt ended on its worker: ASSIGNED|RUNNING -> COMPLETED|FAILED|CANCELLED,
-- or back to QUEUED to wait out a backoff when the job failed by itself and has an automatic
-- retry left; the worker's reservation is released in the same step.
-- KEYS: common, job, job_events, worker, worker_jobs
-- ARGV: now, job_id, worker_id, attempt, exit_code ('' if none), reason ('' if none),
--       error, metrics_json, backoff_s, backoff_max_s
-- Returns {status, state, version}; status is ok, duplicate, stale, forbidden (an attempt
-- never this worker's) or not_found; state is '' where refusal() tells none.
local K_JOB, K_JOB_EVENTS, K_WORKER, K_WORKER_JOBS =
  KEYS[COMMON + 1], KEYS[COMMON + 2], KEYS[COMMON + 3], KEYS[COMMON + 4]
local now, job_id, worker_id, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local exit_code, reason, err, metrics = ARGV[5], ARGV[6], ARGV[7], ARGV[8]

local state = redis.call('HGET', K_JOB, 'state')
if not state then return {'not_found', '', 0} end
if not is_current(K_JOB, worker_id, attempt) then
  local why, told = refusal(K_JOB, K_JOB_EVENTS, worker_id, attempt, state)
  return {why, told, 0}
end
if state ~= 'ASSIGNED' and state ~= 'RUNNING' then
  -- A repeat of this very report changes nothing (the job may be waiting to retry by now);
  -- an attempt the control plane ended (lost worker, deadline) was never this agent's to
  -- end: it hears 409.
  if redis.call('HGET', K_JOB, 'ended_by_agent') == '1' then
    return {'duplicate', state, tonumber(redis.call('HGET', K_JOB, 'version'))}
  end
  return {'stale', state, 0}
end

local target
if reason == 'cancelled' then
  target = 'CANCELLED'
elseif reason ~= '' then
  target = 'FAILED'
elseif exit_code == '0' then
  target = 'COMPLETED'
else
  target, reason = 'FAILED', 'exit_code'
end

local set = {'metrics', metrics, 'ended_by_agent', '1'}
if reason ~= '' then set[#set + 1] = 'reason'; set[#set + 1] = reason end
if exit_code ~= '' then set[#set + 1] = 'exit_code'; set[#set + 1] = exit_code end
if err ~= '' then set[#set + 1] = 'error'; set[#set + 1] = err end
-- A run that reports an exit while still ASSIGNED (its start call was lost) did run: record
-- the start it skipped, so the history keeps to the state table.
if state == 'ASSIGNED' and (target == 'COMPLETED' or reason == 'exit_code' or reason == 'oom'
    or reason == 'timeout') then
  transition(K_JOB, K_JOB_EVENTS, job_id, 'ASSIGNED', 'RUNNING', now, {'started_at', now}, {})
  state = 'RUNNING'
end
local retry = target == 'FAILED' and RETRYABLE[reason]
  and retry_after(K_JOB, now, reason, ARGV[9], ARGV[10])
local version
if retry then
  for _, v in ipairs(retry.set) do set[#set + 1] = v end
  target = 'QUEUED'
  version = transition(K_JOB, K_JOB_EVENTS, job_id, state, target, now, set, retry.clear,
    retry.retry_at)
else
  set[#set + 1] = 'finished_at'
  set[#set + 1] = now
  version = transition(K_JOB, K_JOB_EVENTS, job_id, state, target, now, set, {})
end
-- Only once the move is made (transition() may refuse it).
release(K_JOB, K_WORKER, K_WORKER_JOBS, job_id)
return {'ok', target, version}
