//! Policy exceptions through annotations.
//!
//! Decided in Git (`allow-fields`, `allow: manual`): honoured only when already on the live object,
//! because only the agent can have put them there. Break-glass windows: opened by members of a
//! configured group, time-boxed, reasoned, attributed, and guarded again when they expire.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::config::Config;
use crate::diff::FieldPath;

pub const PREFIX: &str = "gitops-guard.dev/";
pub const ALLOW_FIELDS: &str = "gitops-guard.dev/allow-fields";
pub const ALLOW: &str = "gitops-guard.dev/allow";
pub const BREAK_GLASS_UNTIL: &str = "gitops-guard.dev/break-glass-until";
pub const BREAK_GLASS_REASON: &str = "gitops-guard.dev/break-glass-reason";
pub const BREAK_GLASS_TICKET: &str = "gitops-guard.dev/break-glass-ticket";
pub const BREAK_GLASS_BY: &str = "gitops-guard.dev/break-glass-by";
pub const BREAK_GLASS_KEYS: [&str; 4] = [
    BREAK_GLASS_UNTIL,
    BREAK_GLASS_REASON,
    BREAK_GLASS_TICKET,
    BREAK_GLASS_BY,
];

/// `gitops-guard.dev/allow-fields: spec.replicas, spec.template.metadata.annotations`.
pub fn allow_fields(annotations: &BTreeMap<String, String>) -> Result<Vec<FieldPath>, Error> {
    match annotations.get(ALLOW_FIELDS) {
        None => Ok(Vec::new()),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(FieldPath::parse)
            .collect(),
    }
}

/// `gitops-guard.dev/allow: manual`.
pub fn allows_manual(annotations: &BTreeMap<String, String>) -> bool {
    annotations.get(ALLOW).is_some_and(|v| v.trim() == "manual")
}

/// A break-glass window as written in annotations (on an object or a namespace).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Window {
    pub until: String,
    pub reason: String,
    pub ticket: Option<String>,
    pub by: String,
    /// When the window was opened: the API server's time on the `managedFields` entry that last
    /// wrote `break-glass-until` (nobody but the agent may rewrite that record).
    #[serde(default)]
    pub opened: Option<String>,
}

impl Window {
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Option<Window> {
        let get = |k: &str| annotations.get(k).map(|v| v.trim().to_string());
        Some(Window {
            until: get(BREAK_GLASS_UNTIL)?,
            reason: get(BREAK_GLASS_REASON).unwrap_or_default(),
            ticket: get(BREAK_GLASS_TICKET).filter(|t| !t.is_empty()),
            by: get(BREAK_GLASS_BY).unwrap_or_default(),
            opened: None,
        })
    }

    /// Whether a window already on an object (or namespace) counts at `now`: it is open, it was
    /// opened for no longer than `breakGlass.maxDuration`, and it names who opened it. A window
    /// whose opening the guard cannot date (written while the guard was away, or forged into a new
    /// object) does not count.
    pub fn counts_at_rest(&self, now: jiff::Timestamp, config: &Config) -> bool {
        self.counts_at_rest_within(now, config.break_glass.max_duration)
    }

    /// [`Window::counts_at_rest`] with the longest window given (`breakGlass.maxDuration`).
    pub fn counts_at_rest_within(&self, now: jiff::Timestamp, max: jiff::SignedDuration) -> bool {
        let Some(opened) = self
            .opened
            .as_deref()
            .and_then(|o| o.parse::<jiff::Timestamp>().ok())
        else {
            return false;
        };
        let latest = opened.checked_add(max).unwrap_or(jiff::Timestamp::MAX);
        self.is_open(now) && !self.by.is_empty() && self.until().is_ok_and(|u| u <= latest)
    }

    pub fn until(&self) -> Result<jiff::Timestamp, String> {
        self.until.parse::<jiff::Timestamp>().map_err(|_| {
            format!(
                "{BREAK_GLASS_UNTIL} {:?} is not an RFC 3339 time like 2026-11-21T16:00:00Z",
                self.until
            )
        })
    }

    /// Whether the window is open at `now` (its end parses and lies ahead, and it has a reason).
    pub fn is_open(&self, now: jiff::Timestamp) -> bool {
        !self.reason.is_empty() && self.until().is_ok_and(|u| u > now)
    }

    /// Checks a window that `username` is opening or extending now.
    pub fn check_opening(
        &self,
        username: &str,
        now: jiff::Timestamp,
        config: &Config,
    ) -> Result<(), String> {
        if self.reason.is_empty() {
            return Err(format!(
                "a break-glass window needs a reason: set {BREAK_GLASS_REASON}"
            ));
        }
        let until = self.until()?;
        if until <= now {
            return Err(format!(
                "{BREAK_GLASS_UNTIL} {} is not in the future",
                self.until
            ));
        }
        let max = config.break_glass.max_duration;
        let latest = now.checked_add(max).unwrap_or(jiff::Timestamp::MAX);
        if until > latest {
            return Err(format!(
                "a break-glass window may last at most {max:#}: {BREAK_GLASS_UNTIL} must be no later than {}",
                latest.round(jiff::Unit::Second).unwrap_or(latest)
            ));
        }
        if self.by != username {
            return Err(format!(
                "{BREAK_GLASS_BY} must name the person opening the window: set it to {username:?}"
            ));
        }
        Ok(())
    }
}

/// When a break-glass window was opened, from an object's `metadata.managedFields`: the time of
/// the newest entry whose fields include the `break-glass-until` annotation.
pub fn window_opened(managed_fields: &serde_json::Value) -> Option<String> {
    let key = format!("f:{BREAK_GLASS_UNTIL}");
    managed_fields
        .as_array()?
        .iter()
        .filter(|e| {
            e.pointer("/fieldsV1/f:metadata/f:annotations")
                .and_then(|a| a.get(&key))
                .is_some()
        })
        .filter_map(|e| e.get("time")?.as_str()?.parse::<jiff::Timestamp>().ok())
        .max()
        .map(|t| t.to_string())
}

/// The changes between `old` and `new` that no exception and no break-glass window covers: the
/// agents' ownership and control labels and annotations, the guard's own annotations (other than a
/// window's, which have rules of their own), finalizers and owner references. Named as field paths.
pub fn protected_changes(
    old: Option<&crate::object::Object<'_>>,
    new: Option<&crate::object::Object<'_>>,
    config: &Config,
) -> Vec<String> {
    use crate::object::Object;
    let guard_key = |k: &str| k.starts_with(PREFIX) && !BREAK_GLASS_KEYS.contains(&k);
    let mut out = Vec::new();
    type MapOf = for<'o, 'a> fn(&'o Object<'a>) -> &'o crate::object::StrMap<'a>;
    let maps: [(&str, MapOf); 2] = [
        ("labels", |o| &o.labels),
        ("annotations", |o| &o.annotations),
    ];
    for (map, of) in maps {
        let mut all: Vec<&str> = old.map(|o| of(o).keys().collect()).unwrap_or_default();
        all.extend(
            new.map(|o| of(o).keys().collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        all.sort_unstable();
        all.dedup();
        for key in all {
            let protected =
                crate::owner::is_agent_key(key, config) || (map == "annotations" && guard_key(key));
            if protected && old.and_then(|o| of(o).get(key)) != new.and_then(|o| of(o).get(key)) {
                out.push(format!("metadata.{map}['{key}']"));
            }
        }
    }
    for field in ["finalizers", "ownerReferences"] {
        let text = |o: Option<&Object<'_>>| -> Option<String> {
            let meta = crate::object::Fields::parse(o?.fields.get("metadata")?)?;
            meta.get(field)
                .map(|r| r.get().to_string())
                .filter(|t| t != "null" && t != "[]")
        };
        if text(old) != text(new) {
            out.push(format!("metadata.{field}"));
        }
    }
    out
}

/// The sentence that says why a protected change was refused.
pub const PROTECTED: &str = "ownership and agent labels and annotations, the guard's own annotations, finalizers, ownerReferences and managedFields are never covered by allow-fields or break-glass";

/// Whether `groups` include a configured break-glass group.
pub fn is_break_glass_member(groups: &[String], config: &Config) -> bool {
    groups.iter().any(|g| config.break_glass.groups.contains(g))
}

/// The guard's own annotations that differ between old and new.
pub fn changed_guard_annotations<'k>(
    old: &'k BTreeMap<String, String>,
    new: &'k BTreeMap<String, String>,
) -> Vec<&'k str> {
    let mut keys: Vec<&str> = old
        .keys()
        .chain(new.keys())
        .map(String::as_str)
        .filter(|k| k.starts_with(PREFIX))
        .filter(|k| old.get(*k) != new.get(*k))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn now() -> jiff::Timestamp {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn allow_fields_parsing() {
        let a = ann(&[(
            ALLOW_FIELDS,
            "spec.replicas, spec.template.metadata.annotations,",
        )]);
        let got: Vec<String> = allow_fields(&a)
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(got, ["spec.replicas", "spec.template.metadata.annotations"]);
        assert!(allow_fields(&ann(&[(ALLOW_FIELDS, "spec..x")])).is_err());
        assert!(allow_fields(&ann(&[])).unwrap().is_empty());
    }

    #[test]
    fn manual_opt_out() {
        assert!(allows_manual(&ann(&[(ALLOW, "manual")])));
        assert!(!allows_manual(&ann(&[(ALLOW, "yes")])));
        assert!(!allows_manual(&ann(&[])));
    }

    #[test]
    fn window_opening_table() {
        let mut cfg = Config::default();
        cfg.break_glass.groups = vec!["sre".into()];
        cfg.break_glass.max_duration = jiff::SignedDuration::from_hours(4);
        let w = |until: &str, reason: &str, by: &str| Window {
            until: until.into(),
            reason: reason.into(),
            ticket: None,
            by: by.into(),
            opened: None,
        };
        let cases = [
            (w("2026-11-21T13:00:00Z", "db failover", "ana"), Ok(())),
            (w("2026-11-21T13:00:00Z", "", "ana"), Err("needs a reason")),
            (w("2026-11-21T17:00:01Z", "x", "ana"), Err("at most 4h")),
            (
                w("2026-11-21T11:00:00Z", "x", "ana"),
                Err("not in the future"),
            ),
            (w("tomorrow", "x", "ana"), Err("RFC 3339")),
            (
                w("2026-11-21T13:00:00Z", "x", "bob"),
                Err("set it to \"ana\""),
            ),
            (
                w("2026-11-21T13:00:00+01:00", "x", "ana"),
                Err("not in the future"),
            ),
        ];
        for (window, want) in cases {
            let got = window.check_opening("ana", now(), &cfg);
            match want {
                Ok(()) => assert_eq!(got, Ok(()), "{window:?}"),
                Err(needle) => {
                    let e = got.unwrap_err();
                    assert!(e.contains(needle), "{window:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn window_open_and_membership() {
        let mut cfg = Config::default();
        assert!(
            !is_break_glass_member(&["sre".into()], &cfg),
            "off by default"
        );
        cfg.break_glass.groups = vec!["sre".into()];
        assert!(is_break_glass_member(&["dev".into(), "sre".into()], &cfg));
        let open = Window::from_annotations(&ann(&[
            (BREAK_GLASS_UNTIL, "2026-11-21T13:00:00Z"),
            (BREAK_GLASS_REASON, "outage"),
        ]))
        .unwrap();
        assert!(open.is_open(now()));
        assert!(!open.is_open("2026-11-21T13:00:00Z".parse().unwrap()));
        assert!(Window::from_annotations(&ann(&[(BREAK_GLASS_REASON, "x")])).is_none());
    }

    #[test]
    fn guard_annotation_changes() {
        let old = ann(&[(ALLOW_FIELDS, "spec.replicas"), ("other", "1")]);
        let new = ann(&[(ALLOW_FIELDS, "spec"), ("other", "2"), (ALLOW, "manual")]);
        assert_eq!(changed_guard_annotations(&old, &new), [ALLOW, ALLOW_FIELDS]);
        assert!(changed_guard_annotations(&old, &old).is_empty());
    }
}
