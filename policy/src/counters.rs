//! Spend counter names: dataplanes reserve and settle on these Redis keys and the control plane's
//! reconciliation corrects them from the usage ledger, so the naming is part of the contract
//! between the planes and lives only here.
//!
//! Every key of one organization carries the hash tag `{org:<id>}`, so one request's counters
//! share a Redis Cluster slot and one script can touch them all.

use crate::limits::LimitScope;

/// The hash tag that keeps one organization's keys in one Redis Cluster slot.
pub fn org_tag(organization_id: &str) -> String {
    format!("{{org:{organization_id}}}")
}

/// A counter's key: `{org:<org>}:sp:<scope>:<id>:<window id>`.
pub fn counter_key(organization_id: &str, scope: LimitScope, id: &str, window_id: &str) -> String {
    format!(
        "{}:sp:{}:{id}:{window_id}",
        org_tag(organization_id),
        scope.label()
    )
}

/// Where a counter's live reservations are kept: its key with `:r` appended.
pub fn holds_key(counter_key: &str) -> String {
    format!("{counter_key}:r")
}

/// Where a counter's leases (budget in dataplanes' escrow) are kept: its key with `:l` appended.
pub fn leases_key(counter_key: &str) -> String {
    format!("{counter_key}:l")
}

/// Lua helpers every script over spend counters starts with: exact arithmetic on amounts kept as
/// decimal strings of picodollars. Lua numbers are doubles, exact only to 2^53 picodollars (about
/// 9,007 USD), and `HINCRBY` stops at `i64::MAX` (about 9.2 million USD), while a lifetime
/// counter or a limit may reach [`crate::Money::MAX`].
///
/// The common case stays as cheap as plain integers: sums of amounts of at most 15 digits are
/// compared as numbers (exact below 2^53), and fields are changed with `HINCRBY` (in C, exact in
/// `i64`). Beyond either, amounts are split at 10^12 so that each half stays exact: correct up to
/// about 10^27 picodollars.
pub const EXACT_LUA: &str = r"
local EXACT_BASE = 1e12
local function exact_split(s)
  s = s or '0'
  local n = #s
  if n <= 12 then return 0, tonumber(s) end
  return tonumber(string.sub(s, 1, n - 12)), tonumber(string.sub(s, n - 11))
end
local function exact_join(hi, lo)
  if hi == 0 then return string.format('%.0f', lo) end
  return string.format('%.0f', hi) .. string.format('%012.0f', lo)
end
local function exact_add(a, b)
  local ah, al = exact_split(a)
  local bh, bl = exact_split(b)
  local hi, lo = ah + bh, al + bl
  if lo >= EXACT_BASE then hi, lo = hi + 1, lo - EXACT_BASE end
  return exact_join(hi, lo)
end
-- a - b, or '0' when b > a.
local function exact_sub(a, b)
  local ah, al = exact_split(a)
  local bh, bl = exact_split(b)
  local hi, lo = ah - bh, al - bl
  if lo < 0 then hi, lo = hi - 1, lo + EXACT_BASE end
  if hi < 0 then return '0' end
  return exact_join(hi, lo)
end
local function exact_gt(a, b)
  local ah, al = exact_split(a)
  local bh, bl = exact_split(b)
  if ah ~= bh then return ah > bh end
  return al > bl
end
-- Whether a + b + c > limit. Three amounts of at most 15 digits sum to less than 3e15, exact as
-- doubles and below any limit of 17 digits or more.
local function exact_sum_exceeds(a, b, c, limit)
  if #a <= 15 and #b <= 15 and #c <= 15 then
    if #limit <= 15 then
      return tonumber(a) + tonumber(b) + tonumber(c) > tonumber(limit)
    end
    if #limit >= 17 then return false end
  end
  return exact_gt(exact_add(exact_add(a, b), c), limit)
end
-- Adds `amount` to a hash field: HINCRBY while the field and the sum fit in i64, decimal
-- arithmetic otherwise (a failed HINCRBY changes nothing).
local function exact_incr(key, field, amount)
  if amount == '0' then return end
  if #amount <= 18 then
    local r = redis.pcall('HINCRBY', key, field, amount)
    if type(r) == 'number' then return end
  end
  redis.call('HSET', key, field, exact_add(redis.call('HGET', key, field) or '0', amount))
end
-- Takes `amount` from a hash field, never below zero.
local function exact_decr(key, field, amount)
  if amount == '0' then return end
  if #amount <= 18 then
    local r = redis.pcall('HINCRBY', key, field, '-' .. amount)
    if type(r) == 'number' then
      if r < 0 then redis.call('HSET', key, field, '0') end
      return
    end
  end
  redis.call('HSET', key, field, exact_sub(redis.call('HGET', key, field) or '0', amount))
end
";

/// The marker that makes a generation's settle idempotent.
pub fn settled_key(organization_id: &str, generation_id: &str) -> String {
    format!("{}:settled:{generation_id}", org_tag(organization_id))
}

/// The mark the control plane sets once an organization's counters hold at least what the usage
/// ledger says (`Snapshot::spend_counters_marked`). It lives beside the counters (same slot in a
/// Cluster) and goes with them when Redis loses its data, so its absence means: not rebuilt yet.
pub fn rebuilt_key(organization_id: &str) -> String {
    format!("{}:sp:rebuilt", org_tag(organization_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_organization_tag_scope_and_window() {
        assert_eq!(
            counter_key("o1", LimitScope::Key, "abc", "m20261101"),
            "{org:o1}:sp:key:abc:m20261101"
        );
        assert_eq!(
            counter_key("o1", LimitScope::Credits, "o1", "l"),
            "{org:o1}:sp:credits:o1:l"
        );
        assert_eq!(
            holds_key("{org:o1}:sp:key:abc:l"),
            "{org:o1}:sp:key:abc:l:r"
        );
        assert_eq!(
            leases_key("{org:o1}:sp:key:abc:l"),
            "{org:o1}:sp:key:abc:l:l"
        );
        assert_eq!(settled_key("o1", "gen-1"), "{org:o1}:settled:gen-1");
    }
}
