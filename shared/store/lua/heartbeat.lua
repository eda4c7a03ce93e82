-- heartbeat.lua: a worker says it is alive and how its host is doing.
-- KEYS: common, worker, workers
-- ARGV: now, worker_id, metrics_json
-- Returns the worker's status (alive, draining, lost) or 'not_found'.
local K_WORKER, K_WORKERS = KEYS[COMMON + 1], KEYS[COMMON + 2]
local now, worker_id = ARGV[1], ARGV[2]
local status = redis.call('HGET', K_WORKER, 'status')
if not status then return 'not_found' end
if status == 'lost' then return 'lost' end
redis.call('HSET', K_WORKER, 'last_seen', now, 'metrics', ARGV[3])
redis.call('ZADD', K_WORKERS, now, worker_id)
return status
