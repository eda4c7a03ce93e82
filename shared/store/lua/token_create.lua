-- token_create.lua: give a person a token under a name no other token of a person holds.
-- KEYS: token_names, tokens (not the common keys: no job or worker changes)
-- ARGV: name, token_hash, token_record_json
-- Returns ok, or taken (the name is in use) with nothing written.
local K_NAMES, K_TOKENS = KEYS[1], KEYS[2]
local name, digest = ARGV[1], ARGV[2]
if redis.call('HEXISTS', K_NAMES, name) == 1 then return 'taken' end
-- 256 random bits never repeat; were one to, the older token must not change hands.
if redis.call('HEXISTS', K_TOKENS, digest) == 1 then
  return redis.error_reply('token hash collision')
end
redis.call('HSET', K_NAMES, name, digest)
redis.call('HSET', K_TOKENS, digest, ARGV[3])
return 'ok'
