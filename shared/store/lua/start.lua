-- start.lua: ASSIGNED -> RUNNING, by the worker the job is assigned to (lib.lua's
-- start_attempt).
-- KEYS: common, job, job_events
-- ARGV: now, job_id, worker_id, attempt
-- Returns {status, state, version}; status is ok, duplicate, stale, forbidden (an attempt
-- never this worker's) or not_found; state is '' where refusal() tells none.
return start_attempt(KEYS[COMMON + 1], KEYS[COMMON + 2], ARGV[2], ARGV[3], ARGV[4], ARGV[1])
