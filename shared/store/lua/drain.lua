-- drain.lua: a worker takes no new jobs; the ones it runs go on to their end.
-- KEYS: common, worker
-- ARGV: now, worker_id
-- Returns the worker's status after the call, or 'not_found'.
local K_WORKER = KEYS[COMMON + 1]
local now, worker_id = ARGV[1], ARGV[2]
local status = redis.call('HGET', K_WORKER, 'status')
if not status then return 'not_found' end
if status == 'alive' then
  redis.call('HSET', K_WORKER, 'status', 'draining')
  publish('worker', worker_id, cjson.encode({status = 'draining', at = tonumber(now)}))
  status = 'draining'
end
return status
