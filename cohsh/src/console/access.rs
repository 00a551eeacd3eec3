//! Who may use the console: an operator logs in with the Queen's ticket,
//! which stays server-side in that operator's [`View`]; the browser holds
//! only a random session id in an HttpOnly, SameSite=Strict cookie and a
//! per-session CSRF token it must send with every action. Sessions are
//! bounded ([`MAX_SESSIONS`], oldest dropped) and idle out after
//! [`SESSION_IDLE`].
//!
//! It must never compare a secret in variable time or put one in a message.

use super::hive::View;
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "cohesix_console";
/// The header an action carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Operators logged in at once: a console has a handful; each holds a
/// connection to the hive, so the cap bounds those too.
pub const MAX_SESSIONS: usize = 16;
/// A session unused this long is dropped (its hive connection closed).
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

/// One logged-in operator.
#[derive(Debug)]
pub struct Operator {
    /// The token every action must carry.
    pub csrf: String,
    /// Their view of the hive (holding their ticket).
    pub view: Arc<View>,
    used: Mutex<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// 32 random bytes, hex: a session id or a CSRF token.
pub fn token() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Whether two tokens are equal, in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The session id in a request's cookies.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
        .map(str::to_owned)
}

/// The `Set-Cookie` value for session `id`.
pub fn set_cookie(id: &str) -> String {
    format!("{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that ends the session in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The logged-in operators.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Arc<Operator>>>,
}

impl Sessions {
    /// Logs `view`'s operator in; returns the session id.
    pub fn add(&self, view: Arc<View>) -> Result<(String, Arc<Operator>), getrandom::Error> {
        let id = token()?;
        let op = Arc::new(Operator {
            csrf: token()?,
            view,
            used: Mutex::new(Instant::now()),
        });
        let mut map = lock(&self.by_id);
        map.retain(|_, o| lock(&o.used).elapsed() < SESSION_IDLE);
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, o)| *lock(&o.used))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(id.clone(), op.clone());
        Ok((id, op))
    }

    /// The operator of the request's session cookie, if it is live.
    pub fn get(&self, headers: &HeaderMap) -> Option<Arc<Operator>> {
        let id = session_id(headers)?;
        let mut map = lock(&self.by_id);
        let key = map.keys().find(|k| same(k, &id))?.clone();
        let op = map.get(&key)?.clone();
        let mut used = lock(&op.used);
        if used.elapsed() >= SESSION_IDLE {
            drop(used);
            map.remove(&key);
            return None;
        }
        *used = Instant::now();
        drop(used);
        Some(op)
    }

    /// Ends the request's session.
    pub fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = session_id(headers) {
            lock(&self.by_id).retain(|k, _| !same(k, &id));
        }
    }

    /// The most recently used operator's view (for `/metrics` without a
    /// scrape ticket).
    pub fn latest_view(&self) -> Option<Arc<View>> {
        lock(&self.by_id)
            .values()
            .max_by_key(|o| *lock(&o.used))
            .map(|o| o.view.clone())
    }

    /// Logs everyone out (their hive connections close).
    pub fn clear(&self) {
        lock(&self.by_id).clear();
    }
}

/// Whether `headers` carry `op`'s CSRF token.
pub fn csrf_ok(op: &Operator, headers: &HeaderMap) -> bool {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| same(t, &op.csrf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; cohesix_console=abc; b=2"),
        );
        assert_eq!(session_id(&h).as_deref(), Some("abc"));
        let mut other = HeaderMap::new();
        other.append(COOKIE, HeaderValue::from_static("cohesix_consolex=abc"));
        assert_eq!(session_id(&other), None);
        assert_eq!(session_id(&HeaderMap::new()), None);
    }

    #[test]
    fn tokens_are_random_hex_and_compare_whole() {
        let (a, b) = (token().expect("rng"), token().expect("rng"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b));
        assert!(!same(&a, &a[..63]));
        assert!(!same("", &a));
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let c = set_cookie("id1");
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"));
        assert!(clear_cookie().contains("Max-Age=0"));
    }
}
