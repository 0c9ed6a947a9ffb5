//! Sticky routing, for providers' prompt caches: requests of one session (`session_id` or
//! `x-session-id`, else `prompt_cache_key`, else `user`) go to the endpoint that last served the
//! session's model, for as long as the session keeps coming back within the idle TTL and the
//! endpoint is not in outage (route decides that). Per dataplane, in memory: moka's concurrent
//! cache (chosen for its bounded size and idle expiry without a sweeper task of our own).

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::stages::request::ChatRequest;

/// What a request's session is known by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionRef<'a> {
    pub workspace_id: &'a str,
    pub token: &'a str,
}

/// What `request` (by a key of `workspace_id`) is known by for sticky routing: `session_id`
/// (or `x-session-id`), else `prompt_cache_key`, else `user`.
pub fn session_of<'a>(
    workspace_id: &'a str,
    request: &'a ChatRequest<'_>,
) -> Option<SessionRef<'a>> {
    let token = request
        .session_id
        .as_deref()
        .or(request.prompt_cache_key.as_deref())
        .or(request.user.as_deref())?;
    Some(SessionRef {
        workspace_id,
        token,
    })
}

pub struct Sticky {
    cache: Cache<u64, Arc<str>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Sticky {
    pub fn new(capacity: u64, idle: Duration) -> Sticky {
        Sticky {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(idle)
                .build(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn key(&self, session: SessionRef<'_>, model_id: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        session.hash(&mut h);
        model_id.hash(&mut h);
        h.finish()
    }

    /// The endpoint (health id) that last served this session's `model_id`.
    pub fn get(&self, session: SessionRef<'_>, model_id: &str) -> Option<Arc<str>> {
        self.cache.get(&self.key(session, model_id))
    }

    pub fn remember(&self, session: SessionRef<'_>, model_id: &str, endpoint: &Arc<str>) {
        let key = self.key(session, model_id);
        if self.cache.get(&key).as_deref() != Some(&**endpoint) {
            self.cache.insert(key, endpoint.clone());
        }
    }
}

impl Default for Sticky {
    fn default() -> Self {
        Sticky::new(1_000_000, Duration::from_secs(5 * 60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_remember_their_endpoint_per_model_and_workspace() {
        let sticky = Sticky::default();
        let s = SessionRef {
            workspace_id: "w",
            token: "s1",
        };
        let e: Arc<str> = Arc::from("b|m");
        assert_eq!(sticky.get(s, "m"), None);
        sticky.remember(s, "m", &e);
        assert_eq!(sticky.get(s, "m").as_deref(), Some("b|m"));
        assert_eq!(sticky.get(s, "other"), None);
        let elsewhere = SessionRef {
            workspace_id: "w2",
            token: "s1",
        };
        assert_eq!(sticky.get(elsewhere, "m"), None);
    }
}
