-- token_revoke.lua: revoke a person's token by its name; the name is free again.
-- KEYS: token_names, tokens, token_last_used (not the common keys: no job or worker changes)
-- ARGV: name
-- Returns the revoked token's hash (for the caller's token cache), or not_found.
local K_NAMES, K_TOKENS, K_LAST_USED = KEYS[1], KEYS[2], KEYS[3]
local name = ARGV[1]
local digest = redis.call('HGET', K_NAMES, name)
if not digest then return 'not_found' end
redis.call('HDEL', K_TOKENS, digest)
redis.call('HDEL', K_NAMES, name)
redis.call('HDEL', K_LAST_USED, name)
return digest
