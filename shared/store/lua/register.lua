-- register.lua: a worker joins with its capacity and gets its own token, unless max_workers
-- worker records exist already (alive, draining, or lost and not yet past retention): the
-- cap bounds what registrations can store, however many are sent.
-- KEYS: common, worker, workers, tokens
-- ARGV: now, worker_id, token_hash, token_record_json, hostname, cpu_m, memory_mb, gpus,
--       slots, labels_json, executor, allows_network ('1' or '0'), max_workers
-- Returns 'ok', or 'full' (nothing written).
local K_WORKER, K_WORKERS, K_TOKENS = KEYS[COMMON + 1], KEYS[COMMON + 2], KEYS[COMMON + 3]
local now, worker_id = ARGV[1], ARGV[2]
if redis.call('EXISTS', K_WORKER) == 1 then return redis.error_reply('worker id collision') end
-- Every record is in K_WORKERS: a deregistration removes both, retention both.
if redis.call('ZCARD', K_WORKERS) >= tonumber(ARGV[13]) then return 'full' end
redis.call('HSET', K_WORKER,
  'id', worker_id, 'hostname', ARGV[5], 'cpu_m', ARGV[6], 'memory_mb', ARGV[7],
  'gpus', ARGV[8], 'slots', ARGV[9], 'labels', ARGV[10], 'executor', ARGV[11],
  'allows_network', ARGV[12],
  'token_hash', ARGV[3], 'status', 'alive', 'registered_at', now, 'last_seen', now,
  'res_cpu_m', 0, 'res_memory_mb', 0, 'res_gpus', 0, 'res_slots', 0, 'metrics', '{}')
redis.call('ZADD', K_WORKERS, now, worker_id)
redis.call('HSET', K_TOKENS, ARGV[3], ARGV[4])
publish('worker', worker_id, cjson.encode({status = 'alive', at = tonumber(now)}))
wake_scheduler()
return 'ok'
