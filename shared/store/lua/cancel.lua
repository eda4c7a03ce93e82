-- cancel.lua: a user cancels a job. QUEUED (waiting for a retry too) ends CANCELLED here
-- and now; ASSIGNED or
-- RUNNING is flagged (a change GET shows: a new version and a job_cancel_requested event,
-- once), and its agent (told in its next output or heartbeat answer) stops the container and
-- reports the attempt ended with reason cancelled.
-- KEYS: common, job, job_events
-- ARGV: now, job_id, actor (the name of the person who asks)
-- Returns {status, state, version}; status is cancelled, requested, conflict or not_found.
local K_JOB, K_JOB_EVENTS = KEYS[COMMON + 1], KEYS[COMMON + 2]
local now, job_id, actor = ARGV[1], ARGV[2], ARGV[3]

local state = redis.call('HGET', K_JOB, 'state')
if not state then return {'not_found', '', 0} end
if state == 'QUEUED' then
  local version = transition(K_JOB, K_JOB_EVENTS, job_id, 'QUEUED', 'CANCELLED', now,
    {'reason', 'cancelled', 'finished_at', now}, {'pending_reason', 'retry_at'}, nil, actor)
  return {'cancelled', 'CANCELLED', version}
end
if state == 'ASSIGNED' or state == 'RUNNING' then
  if redis.call('HGET', K_JOB, 'cancel_requested') == '1' then  -- asked already
    return {'requested', state, tonumber(redis.call('HGET', K_JOB, 'version'))}
  end
  redis.call('HSET', K_JOB, 'cancel_requested', '1')
  return {'requested', state, job_changed(K_JOB, job_id, 'job_cancel_requested', now,
    {state = state, actor = nullable(actor)})}
end
return {'conflict', state, 0}
