-- lib.lua: prepended to every script by shared/store/scripts.py, after the preamble it
-- generates from shared/states.py and Keys.common(): COMMON and the K_* names of the common
-- keys (events, queue, wake, queue deadlines, retries, finished, assignment times,
-- run deadlines, per-owner counts, finished totals, metrics), STATE_INDEX (one index per
-- state), TERMINAL, RETRYABLE, TRANSITIONS, the *_CLEARS field lists, LATENCY_BUCKETS and
-- the name and lifetime of a job's ended stream (shared/store/keys.py). Each script's own keys start at KEYS[COMMON + 1].
local EVENTS_MAXLEN = 100000

local function nullable(value)
  if value == false or value == nil or value == '' then return cjson.null end
  return value
end

-- The owner's per-state counters: every script that puts a job in a state or takes it out
-- (transition, submit, delete) counts through here. (Every owner's count of a state is its
-- index's ZCARD.)
local function count_now(field, delta)
  -- A field at 0 goes, so the hash names only owners that have jobs.
  if redis.call('HINCRBY', K_OWNER_COUNTS, field, delta) == 0 then
    redis.call('HDEL', K_OWNER_COUNTS, field)
  end
end

-- A script that moves many jobs at once (assign.lua) gathers the writes its transitions
-- share (the state indexes, the queue, the clocks, the per-owner counts, the histograms)
-- and makes them at its end, one command per key: defer_shared_writes() first, then
-- flush_shared_writes(). Only for a script that moves each job once and whose transitions
-- cannot fail once it has begun writing: Redis keeps what a script wrote before an error,
-- and the deferred writes would be missing.
local deferred = nil

local function defer_shared_writes()
  deferred = {zrem = {}, zadd = {}, counts = {}, buckets = {}, sums = {}}
end

local function append(lists, key, ...)
  local list = lists[key]
  if not list then list = {} lists[key] = list end
  for _, value in ipairs({...}) do list[#list + 1] = value end
end

local function zrem(key, member)
  if deferred then append(deferred.zrem, key, member) else redis.call('ZREM', key, member) end
end

local function zadd(key, score, member)
  if deferred then
    append(deferred.zadd, key, score, member)
  else
    redis.call('ZADD', key, score, member)
  end
end

local function count(owner, state, delta)
  local field = owner .. '\t' .. state
  if deferred then
    deferred.counts[field] = (deferred.counts[field] or 0) + delta
  else
    count_now(field, delta)
  end
end

-- Commands take their arguments through Lua's stack, which holds a few thousand at most
-- (an even slice: ZADD's score and member stay together).
local function call_in_slices(command, key, values)
  for first = 1, #values, 1000 do
    redis.call(command, key, unpack(values, first, math.min(first + 999, #values)))
  end
end

-- One observation of a latency histogram (shared/store/metrics.py reads them): the count
-- of the first bucket it fits (LATENCY_BUCKETS, generated; past the last: +Inf) and the sum.
local function observe(series, seconds)
  if seconds < 0 then seconds = 0 end
  local bucket = #LATENCY_BUCKETS + 1
  for i, bound in ipairs(LATENCY_BUCKETS) do
    if seconds <= bound then bucket = i break end
  end
  local field = series .. '\t' .. bucket
  if deferred then
    deferred.buckets[field] = (deferred.buckets[field] or 0) + 1
    deferred.sums[series] = (deferred.sums[series] or 0) + seconds
    return
  end
  redis.call('HINCRBY', K_METRICS, field, 1)
  redis.call('HINCRBYFLOAT', K_METRICS, series .. '\tsum', seconds)
end

-- The writes defer_shared_writes() gathered, removals before additions.
local function flush_shared_writes()
  local gathered = deferred
  if not gathered then return end
  deferred = nil
  for key, members in pairs(gathered.zrem) do call_in_slices('ZREM', key, members) end
  for key, pairs_ in pairs(gathered.zadd) do call_in_slices('ZADD', key, pairs_) end
  for field, delta in pairs(gathered.counts) do
    if delta ~= 0 then count_now(field, delta) end
  end
  for field, n in pairs(gathered.buckets) do redis.call('HINCRBY', K_METRICS, field, n) end
  for series, sum in pairs(gathered.sums) do
    redis.call('HINCRBYFLOAT', K_METRICS, series .. '\tsum', sum)
  end
end

-- Once per script at most: the scheduler sees nothing of it before the script ends anyway.
local scheduler_woken = false
local function wake_scheduler()
  if scheduler_woken then return end
  scheduler_woken = true
  redis.call('LPUSH', K_WAKE, '1')
  redis.call('LTRIM', K_WAKE, 0, 0)
end

-- The feed's kinds and the fields of each are listed in shared/feed.py; a test runs every
-- publish against that list. A job's events carry its owner beside the data, so that a user's
-- feed keeps only theirs without reading the job (gone, after a deletion).
local function publish(kind, id, payload, owner)
  if owner then
    redis.call('XADD', K_EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'kind', kind, 'id', id,
      'owner', owner, 'data', payload)
  else
    redis.call('XADD', K_EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'kind', kind, 'id', id,
      'data', payload)
  end
end

local function publish_job(job_key, kind, job_id, payload)
  publish(kind, job_id, payload, redis.call('HGET', job_key, 'owner'))
end

-- A change GET shows that is not a transition (a cancel asked for, a new pending reason):
-- the job's version goes up and the feed hears `fields` with at and that version.
local function job_changed(job_key, job_id, kind, now, fields)
  local version = redis.call('HINCRBY', job_key, 'version', 1)
  redis.call('HSET', job_key, 'updated_at', now)
  fields.at, fields.version = tonumber(now), version
  publish_job(job_key, kind, job_id, cjson.encode(fields))
  return version
end

-- job_pending: why a QUEUED job waits, read after the caller changed it.
local function pending_changed(job_key, job_id, now)
  local h = redis.call('HMGET', job_key, 'pending_reason', 'retry_at', 'queued_at')
  return job_changed(job_key, job_id, 'job_pending', now, {pending_reason = nullable(h[1]),
    retry_at = h[2] and tonumber(h[2]) or cjson.null, queued_at = tonumber(h[3])})
end

-- Queue score: higher priority first, then arrival order. Priority is bounded to
-- [-1000, 1000] at submit so the score stays exact in a double.
local function queue_score(priority, seq)
  return (1000 - tonumber(priority)) * 4398046511104 + tonumber(seq)
end

-- Enter the queue: in priority-then-arrival order, and with a deadline when the job has a
-- queue timeout (it is measured from each time the job is queued).
local function enqueue(job_key, job_id, now)
  local h = redis.call('HMGET', job_key, 'priority', 'seq', 'queue_timeout_s')
  redis.call('ZADD', K_QUEUE, queue_score(h[1], h[2]), job_id)
  if h[3] and h[3] ~= '' then
    redis.call('ZADD', K_DEADLINES, tonumber(now) + tonumber(h[3]), job_id)
  end
end

-- The fields a transition reads, in their order; transition_fields(...) adds the caller's
-- (from index 14 on): a script that must look at a job before it moves it reads it once.
local TRANSITION_FIELDS = {'state', 'seq', 'owner', 'version', 'attempt', 'worker_id',
  'reason', 'assigned_at', 'started_at', 'timeout_s', 'queued_at', 'retry_at',
  'queue_timeout_s'}
local function transition_fields(...)
  local fields = {unpack(TRANSITION_FIELDS)}
  for _, field in ipairs({...}) do fields[#fields + 1] = field end
  return fields
end

-- `fields`: TRANSITION_FIELDS, or a list from transition_fields made once per script.
local function read_job(job_key, fields)
  return redis.call('HMGET', job_key, unpack(fields or TRANSITION_FIELDS))
end

-- Move a job from `from` to `to`: indexes (the queue, its deadlines, the retry backoffs,
-- the clocks of ASSIGNED and RUNNING and the finished set included), counters, version,
-- history and the global feed, all in the caller's atomic script. `set` is a flat list of
-- fields to write, `clear` a list of fields to delete. With `retry_at`, a job going to
-- QUEUED waits in K_RETRIES until then instead of entering the queue (promote.lua moves it
-- on). A job not in `from`, or a move TRANSITIONS does not allow, fails the script before
-- anything of the move is written: Redis does not undo what a script wrote before an error,
-- so callers make their other writes after it. `actor` names the person who asked for the
-- move (a cancel, a retry); nil for the system's and the workers' moves.
local function transition(job_key, events_key, job_id, from, to, now, set, clear, retry_at,
    actor, read)
  -- One read of everything the move needs (or the caller's, `read`, from read_job); what it
  -- then writes is applied to `after`, the job as it will be, for the clocks, the metrics
  -- and the event.
  local h = read or read_job(job_key)
  if h[1] ~= from or not (TRANSITIONS[from] or {})[to] then
    error({err = 'illegal transition: job ' .. job_id .. ' is ' .. tostring(h[1])
      .. ', asked to go ' .. tostring(from) .. ' -> ' .. tostring(to)})
  end
  local seq, owner = h[2], h[3]
  local after = {attempt = h[5], worker_id = h[6], reason = h[7], assigned_at = h[8],
    started_at = h[9], timeout_s = h[10], queued_at = h[11]}
  set, clear = set or {}, clear or {}
  for _, field in ipairs(clear) do after[field] = false end
  for i = 1, #set, 2 do after[set[i]] = set[i + 1] end
  if from == 'QUEUED' then
    -- A queued job waits in the queue, or (with retry_at) in K_RETRIES; with a queue
    -- timeout it has a deadline too.
    if h[12] then zrem(K_RETRIES, job_id) else zrem(K_QUEUE, job_id) end
    if h[13] and h[13] ~= '' then zrem(K_DEADLINES, job_id) end
  elseif to == 'QUEUED' and retry_at then
    zadd(K_RETRIES, retry_at, job_id)
  elseif to == 'QUEUED' then
    enqueue(job_key, job_id, now)
  end
  if TERMINAL[from] then zrem(K_FINISHED, job_id) end
  if TERMINAL[to] then
    zadd(K_FINISHED, now, job_id)
    redis.call('HINCRBY', K_FINISHED_TOTALS, to, 1)
    -- Wakes the job's followers (shared/store/streams.py) now, not at their next read.
    local ended = job_key .. JOB_ENDED_SUFFIX
    redis.call('XADD', ended, '*', 'state', to)
    redis.call('PEXPIRE', ended, JOB_ENDED_TTL_MS)
  end
  zrem(STATE_INDEX[from], job_id)
  zadd(STATE_INDEX[to], seq, job_id)
  count(owner, from, -1)
  count(owner, to, 1)
  if #clear > 0 then redis.call('HDEL', job_key, unpack(clear)) end
  local version = tonumber(h[4]) + 1
  redis.call('HSET', job_key, 'state', to, 'updated_at', now, 'version', version, unpack(set))
  -- The reaper's clocks: when an assignment began, when a run with a timeout must end.
  if from == 'ASSIGNED' then zrem(K_ASSIGNED_AT, job_id) end
  if from == 'RUNNING' then zrem(K_RUN_DEADLINES, job_id) end
  if to == 'ASSIGNED' then zadd(K_ASSIGNED_AT, after.assigned_at or now, job_id) end
  if to == 'RUNNING' and after.timeout_s and after.timeout_s ~= '' then
    zadd(K_RUN_DEADLINES,
      tonumber(after.started_at or now) + tonumber(after.timeout_s), job_id)
  end
  -- Placement (queued to assigned), dispatch (assigned to started), a run by its outcome.
  if to == 'ASSIGNED' and after.queued_at then
    observe('placement', tonumber(now) - tonumber(after.queued_at))
  end
  if to == 'RUNNING' and after.assigned_at then
    observe('dispatch', tonumber(now) - tonumber(after.assigned_at))
  end
  if from == 'RUNNING' and TERMINAL[to] and after.started_at then
    observe('run_' .. to, tonumber(now) - tonumber(after.started_at))
  end
  local event = cjson.encode({
    at = tonumber(now), from = from, to = to, reason = nullable(after.reason),
    attempt = tonumber(after.attempt), worker_id = nullable(after.worker_id),
    version = version, actor = nullable(actor),
  })
  redis.call('RPUSH', events_key, event)
  publish('job', job_id, event, owner)
  return version
end

-- Give back what a job reserved on its worker. Guarded by SREM so it happens once.
-- `reserved`: the job's cpu_m, memory_mb and gpus, when the caller has read them already.
local function release(job_key, worker_key, worker_jobs_key, job_id, reserved)
  if redis.call('SREM', worker_jobs_key, job_id) == 0 then return end
  local r = reserved or redis.call('HMGET', job_key, 'cpu_m', 'memory_mb', 'gpus')
  -- One read and one write of the worker's four reservations, not four HINCRBYs.
  local w = redis.call('HMGET', worker_key, 'res_cpu_m', 'res_memory_mb', 'res_gpus',
    'res_slots')
  if w[4] then  -- a worker record already gone has nothing to give back
    redis.call('HSET', worker_key, 'res_cpu_m', tonumber(w[1]) - tonumber(r[1]),
      'res_memory_mb', tonumber(w[2]) - tonumber(r[2]), 'res_gpus', tonumber(w[3]) - tonumber(r[3]),
      'res_slots', tonumber(w[4]) - 1)
  end
  wake_scheduler()
end

-- Fencing: a worker may only speak about the current attempt of a job assigned to it.
local function is_current(job_key, worker_id, attempt)
  local h = redis.call('HMGET', job_key, 'worker_id', 'attempt')
  return h[1] == worker_id and h[2] == attempt
end

-- For a worker naming an attempt that is not its current one: is the job its own now, or
-- was that attempt (an earlier one, or one it lost)? Then 'stale' (409), with the job's
-- `state` unless another worker holds the job now; else 'forbidden' (403) and '': nothing
-- of a job that another worker holds, or that it never held, may reach it. Read from the
-- job's history, whose ASSIGNED events name each attempt's worker; only refused calls pay
-- for the read.
local function refusal(job_key, events_key, worker_id, attempt, state)
  local holder = redis.call('HGET', job_key, 'worker_id')
  if holder == worker_id then return 'stale', state end
  for _, raw in ipairs(redis.call('LRANGE', events_key, 0, -1)) do
    local event = cjson.decode(raw)
    if event.to == 'ASSIGNED' and event.worker_id == worker_id
        and tostring(event.attempt) == attempt then
      if holder and holder ~= '' then return 'stale', '' end
      return 'stale', state
    end
  end
  return 'forbidden', ''
end


-- After a failure of the job itself (exit_code, oom, timeout, error): the arguments for
-- transition() that send it back to QUEUED to wait out its backoff, or nil when it has no
-- automatic retry left or the user asked to cancel it. The delay before retry n is
-- base * 2^(n-1) seconds, at most max_delay.
local function retry_after(job_key, now, reason, base, max_delay)
  local h = redis.call('HMGET', job_key, 'retries', 'max_retries', 'cancel_requested')
  local spent, allowed = tonumber(h[1] or 0), tonumber(h[2] or 0)
  if spent >= allowed or h[3] == '1' then return nil end
  local retry_at = tonumber(now) + math.min(tonumber(base) * 2 ^ spent, tonumber(max_delay))
  return {
    set = {'reason', reason, 'retries', spent + 1, 'retry_at', retry_at, 'queued_at', now},
    clear = REQUEUE_CLEARS,
    retry_at = retry_at,
  }
end

-- A worker's call about an attempt reads these of the job once: its state, whose attempt
-- it is, its version, whether the agent ended it, and what it reserved (for release()).
local ATTEMPT_FIELDS = {'state', 'worker_id', 'attempt', 'version', 'ended_by_agent', 'cpu_m',
  'memory_mb', 'gpus'}

-- The answer of a worker's call about an attempt that is refused: {status, state, version},
-- status being not_found, stale or forbidden (an attempt never this worker's), and state ''
-- where refusal() tells none. nil when the attempt is the worker's current one of a job
-- that exists: the caller goes on with the job's state. `h`: ATTEMPT_FIELDS as read.
local function attempt_refused(job_key, events_key, worker_id, attempt, h)
  if not h[1] then return {'not_found', '', 0} end
  if h[2] ~= worker_id or h[3] ~= attempt then
    local why, told = refusal(job_key, events_key, worker_id, attempt, h[1])
    return {why, told, 0}
  end
  return nil
end

-- start: ASSIGNED -> RUNNING, by the worker the job is assigned to (start.lua, updates.lua).
local function start_attempt(job_key, events_key, job_id, worker_id, attempt, now)
  local h = redis.call('HMGET', job_key, unpack(ATTEMPT_FIELDS))
  local refused = attempt_refused(job_key, events_key, worker_id, attempt, h)
  if refused then return refused end
  local state = h[1]
  if state == 'RUNNING' then return {'duplicate', state, tonumber(h[4])} end
  if state ~= 'ASSIGNED' then return {'stale', state, 0} end
  local version = transition(job_key, events_key, job_id, 'ASSIGNED', 'RUNNING', now,
    {'started_at', now}, {})
  return {'ok', 'RUNNING', version}
end

-- result: the attempt ended on its worker (result.lua, updates.lua): ASSIGNED|RUNNING ->
-- COMPLETED|FAILED|CANCELLED, or back to QUEUED to wait out a backoff when the job failed
-- by itself and has an automatic retry left; the worker's reservation is released in the
-- same step. `r` holds exit_code, reason and err ('' for none), metrics (JSON), backoff_s
-- and backoff_max_s.
local function end_attempt(job_key, events_key, worker_key, worker_jobs_key, job_id,
    worker_id, attempt, now, r)
  local h = redis.call('HMGET', job_key, unpack(ATTEMPT_FIELDS))
  local refused = attempt_refused(job_key, events_key, worker_id, attempt, h)
  if refused then return refused end
  local state = h[1]
  if state ~= 'ASSIGNED' and state ~= 'RUNNING' then
    -- A repeat of this very report changes nothing (the job may be waiting to retry by now);
    -- an attempt the control plane ended (lost worker, deadline) was never this agent's to
    -- end: it hears 409.
    if h[5] == '1' then return {'duplicate', state, tonumber(h[4])} end
    return {'stale', state, 0}
  end
  local exit_code, reason = r.exit_code, r.reason
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
  local set = {'metrics', r.metrics, 'ended_by_agent', '1'}
  if reason ~= '' then set[#set + 1] = 'reason'; set[#set + 1] = reason end
  if exit_code ~= '' then set[#set + 1] = 'exit_code'; set[#set + 1] = exit_code end
  if r.err ~= '' then set[#set + 1] = 'error'; set[#set + 1] = r.err end
  -- A run that reports an exit while still ASSIGNED (its start call was lost) did run:
  -- record the start it skipped, so the history keeps to the state table.
  if state == 'ASSIGNED' and (target == 'COMPLETED' or reason == 'exit_code'
      or reason == 'oom' or reason == 'timeout') then
    transition(job_key, events_key, job_id, 'ASSIGNED', 'RUNNING', now, {'started_at', now}, {})
    state = 'RUNNING'
  end
  local retry = target == 'FAILED' and RETRYABLE[reason]
    and retry_after(job_key, now, reason, r.backoff_s, r.backoff_max_s)
  local version
  if retry then
    for _, v in ipairs(retry.set) do set[#set + 1] = v end
    target = 'QUEUED'
    version = transition(job_key, events_key, job_id, state, target, now, set, retry.clear,
      retry.retry_at)
  else
    set[#set + 1] = 'finished_at'
    set[#set + 1] = now
    version = transition(job_key, events_key, job_id, state, target, now, set, {})
  end
  -- Only once the move is made (transition() may refuse it).
  release(job_key, worker_key, worker_jobs_key, job_id, {h[6], h[7], h[8]})
  return {'ok', target, version}
end
