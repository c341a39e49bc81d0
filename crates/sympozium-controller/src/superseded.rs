//! Versions of objects this process has itself replaced with a write.
//!
//! A reconcile reads its object from the watch cache, and the reconcile that follows a
//! controller's own write (its finalizer patch, its status write) often starts before the
//! watch has delivered that write. The copy it gets is then one the controller already
//! replaced: acting on it repeats the work just done, and the status write conditional on
//! that version comes back 409 (in a burst of new instances, about half of them). Each write
//! records the version it replaced; a reconcile handed a recorded version skips, knowing the
//! watch event of its own write is on the way and triggers the next reconcile.
//!
//! Versions are compared only for equality (resourceVersions are opaque): the version a
//! write was made on, and every version the process had replaced before it, are older than
//! the one the write produced.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Replaced versions kept per object: a reconcile makes at most a few writes, and the
/// watch catches up within one or two.
const KEPT_PER_OBJECT: usize = 8;
/// Objects not written for this long are dropped (their watch has long caught up).
const KEPT_FOR: Duration = Duration::from_secs(600);

/// Per object uid, the resourceVersions this process's writes replaced.
#[derive(Default)]
pub struct Superseded(Mutex<HashMap<String, (Vec<String>, Instant)>>);

impl Superseded {
    /// Records a write to the object `uid` made on version `before` that produced `after`:
    /// `before` is now stale.
    pub fn record(&self, uid: &str, before: Option<&str>, after: Option<&str>) {
        let Some(before) = before.filter(|b| Some(*b) != after && !b.is_empty()) else { return };
        if uid.is_empty() {
            return;
        }
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() % 256 == 255 {
            map.retain(|_, (_, at)| at.elapsed() < KEPT_FOR);
        }
        let (versions, at) = map.entry(uid.to_string()).or_insert_with(|| (Vec::new(), Instant::now()));
        if !versions.iter().any(|v| v == before) {
            if versions.len() == KEPT_PER_OBJECT {
                versions.remove(0);
            }
            versions.push(before.to_string());
        }
        *at = Instant::now();
    }

    /// Whether `version` of the object `uid` is one this process has replaced: the copy is
    /// stale and a newer one is on its way through the watch.
    pub fn is_stale(&self, uid: &str, version: Option<&str>) -> bool {
        let Some(version) = version else { return false };
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(uid).is_some_and(|(versions, _)| versions.iter().any(|v| v == version))
    }

    /// Forgets the object `uid` (it is going away).
    pub fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_replaced_by_a_write_is_stale_and_the_written_one_is_not() {
        let s = Superseded::default();
        s.record("u1", Some("10"), Some("11"));
        s.record("u1", Some("11"), Some("12"));
        assert!(s.is_stale("u1", Some("10")));
        assert!(s.is_stale("u1", Some("11")));
        assert!(!s.is_stale("u1", Some("12")), "the latest write is what the watch delivers next");
        assert!(!s.is_stale("u1", Some("13")), "someone else's later write is current");
        assert!(!s.is_stale("u2", Some("10")), "versions belong to one object");
        assert!(!s.is_stale("u1", None));
    }

    #[test]
    fn writes_that_changed_nothing_or_name_no_version_record_nothing() {
        let s = Superseded::default();
        s.record("u1", Some("7"), Some("7"));
        s.record("u1", None, Some("8"));
        s.record("", Some("7"), Some("8"));
        assert!(!s.is_stale("u1", Some("7")));
        assert!(!s.is_stale("", Some("7")));
    }

    #[test]
    fn only_the_latest_versions_are_kept_and_forget_drops_the_object() {
        let s = Superseded::default();
        for v in 0..20 {
            s.record("u1", Some(&v.to_string()), Some(&(v + 1).to_string()));
        }
        assert!(s.is_stale("u1", Some("19")));
        assert!(s.is_stale("u1", Some("12")));
        assert!(!s.is_stale("u1", Some("11")), "older versions are dropped");
        s.forget("u1");
        assert!(!s.is_stale("u1", Some("19")));
    }
}
