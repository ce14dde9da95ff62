//! What the guard reads from an object's metadata: the managedFields rewrite check, the
//! exception annotations (`allow-fields` paths, `allow: manual`, a break-glass window) and the
//! protected labels and annotations. Input: `old NUL new` (two objects as JSON).
//!
//! Beyond "no panic": an unchanged object is never a rewrite and changes nothing protected; an
//! allowed path prints as text that parses back to it (keys without `]`, which the printed form
//! cannot quote).
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use gitops_guard_core::diff::{FieldPath, PatSeg};
use gitops_guard_core::exception::{self, Window};
use gitops_guard_core::managed_fields::{record_of, rewrite};
use gitops_guard_core::{Config, Object};
use libfuzzer_sys::fuzz_target;

static CONFIG: LazyLock<Config> = LazyLock::new(Config::default);

fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_795_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn annotations(o: &Object<'_>) -> BTreeMap<String, String> {
    o.annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn check_exceptions(o: &Object<'_>) {
    let annotations = annotations(o);
    let _ = exception::allows_manual(&annotations);
    if let Some(window) = Window::from_annotations(&annotations) {
        let _ = window.is_open(now());
        let _ = window.counts_at_rest(now(), &CONFIG);
        let _ = window.check_opening("ana", now(), &CONFIG);
    }
    if let Ok(paths) = exception::allow_fields(&annotations) {
        for path in paths {
            let printable = path
                .0
                .iter()
                .all(|s| !matches!(s, PatSeg::Key(k) if k.contains(']')));
            if printable {
                let text = path.to_string();
                let back = FieldPath::parse(&text)
                    .unwrap_or_else(|e| panic!("{path:?} prints as {text:?}, which is {e}"));
                assert_eq!(back, path, "{text}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let old = parts.next().unwrap_or_default();
    let new = parts.next().unwrap_or(old);
    let (Ok(old), Ok(new)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return;
    };
    let (Ok(old), Ok(new)) = (Object::from_json(old), Object::from_json(new)) else {
        return;
    };
    for o in [&old, &new] {
        check_exceptions(o);
        assert_eq!(rewrite(o, record_of(o), o, now()), None);
        assert!(exception::protected_changes(Some(o), Some(o), &CONFIG).is_empty());
    }
    let _ = rewrite(&old, record_of(&old), &new, now());
    let _ = rewrite(&old, None, &new, now());
    let _ = exception::protected_changes(Some(&old), Some(&new), &CONFIG);
    let _ = exception::protected_changes(None, Some(&new), &CONFIG);
});
