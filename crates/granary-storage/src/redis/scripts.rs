//! The Lua scripts that make each Redis change atomic.
//!
//! Redis runs a script without interleaving any other command, so "check the
//! version, then write" inside one script is a compare-and-set. Scripts are sent
//! once and then called by SHA (`EVALSHA`, handled by `redis::Script`).
//!
//! Layout: an identity's state is a hash with field `v` (version) and, while it
//! has live state, field `d` (the bytes); a clear deletes `d` and bumps `v`, leaving
//! a tombstone so versions never repeat. A reminder is a hash (`p` partition,
//! `j` JSON) plus a member of the sorted set of its partition, scored by due time.
//! The reminder scripts touch the sorted set of a reminder's previous partition,
//! whose name they build from a prefix, so they need a single Redis server (not
//! Redis Cluster).

use redis::Script;

/// Compare-and-set write. KEYS[1] state; ARGV[1] expected version ('' = none),
/// ARGV[2] bytes. Returns {1, new version} or {0, current live version or 0}.
const WRITE: &str = r"
local v = redis.call('HGET', KEYS[1], 'v')
local cur = 0
if v then
  cur = tonumber(v)
  if not cur then return redis.error_reply('CORRUPT version field of ' .. KEYS[1] .. ' is not a number') end
end
if redis.call('HEXISTS', KEYS[1], 'd') == 1 then
  if ARGV[1] == '' or tonumber(ARGV[1]) ~= cur then return {0, cur} end
elseif ARGV[1] ~= '' then
  return {0, 0}
end
redis.call('HSET', KEYS[1], 'v', cur + 1, 'd', ARGV[2])
return {1, cur + 1}
";

/// Compare-and-set clear. KEYS[1] state; ARGV[1] expected version ('' = none).
/// Returns {1, 0} or {0, current live version or 0}.
const CLEAR: &str = r"
local v = redis.call('HGET', KEYS[1], 'v')
local cur = 0
if v then
  cur = tonumber(v)
  if not cur then return redis.error_reply('CORRUPT version field of ' .. KEYS[1] .. ' is not a number') end
end
if redis.call('HEXISTS', KEYS[1], 'd') == 0 then
  if ARGV[1] == '' then return {1, 0} end
  return {0, 0}
end
if ARGV[1] == '' or tonumber(ARGV[1]) ~= cur then return {0, cur} end
redis.call('HDEL', KEYS[1], 'd')
redis.call('HSET', KEYS[1], 'v', cur + 1)
return {1, 0}
";

/// Insert or replace a reminder. KEYS[1] reminder, KEYS[2] its partition's set;
/// ARGV[1] partition, ARGV[2] due ms, ARGV[3] JSON, ARGV[4] set-name prefix.
const UPSERT_REMINDER: &str = r"
local old = redis.call('HGET', KEYS[1], 'p')
if old and old ~= ARGV[1] then redis.call('ZREM', ARGV[4] .. old, KEYS[1]) end
redis.call('HSET', KEYS[1], 'p', ARGV[1], 'j', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], KEYS[1])
return 1
";

/// Delete a reminder. KEYS[1] reminder; ARGV[1] set-name prefix. Returns 1 if it existed.
const DELETE_REMINDER: &str = r"
local old = redis.call('HGET', KEYS[1], 'p')
if not old then return 0 end
redis.call('ZREM', ARGV[1] .. old, KEYS[1])
redis.call('DEL', KEYS[1])
return 1
";

/// Due reminders. KEYS[1] partition set; ARGV[1] now ms, ARGV[2] limit.
/// Returns the JSON of each, earliest first.
const DUE_REMINDERS: &str = r"
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for i, m in ipairs(members) do
  local j = redis.call('HGET', m, 'j')
  if j then out[#out + 1] = j end
end
return out
";

/// The loaded scripts.
#[derive(Debug)]
pub(super) struct Scripts {
    pub(super) write: Script,
    pub(super) clear: Script,
    pub(super) upsert_reminder: Script,
    pub(super) delete_reminder: Script,
    pub(super) due_reminders: Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            write: Script::new(WRITE),
            clear: Script::new(CLEAR),
            upsert_reminder: Script::new(UPSERT_REMINDER),
            delete_reminder: Script::new(DELETE_REMINDER),
            due_reminders: Script::new(DUE_REMINDERS),
        }
    }
}
