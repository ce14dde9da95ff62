//! Break-glass: windows opened, used and refused.

use std::sync::LazyLock;

use serde_json::Value;

use super::{Ctx, Decision, Reason, Verdict, managed_fields_rewrite};
use crate::diff::{FieldPath, Report, disallowed_changes_of};
use crate::exception::{self, Window};
use crate::owner::OwnerRef;
use crate::review::Operation;

/// The window a break-glass member may act under now: the object's own (not on CREATE: a new
/// object cannot bring its own window) or its namespace's, each only while it counts at rest.
fn open_window(c: &Ctx<'_, '_>) -> Option<Window> {
    let object_window = match c.req.operation {
        Operation::Create => None,
        _ => Window::from_annotations(&c.old_ann).map(|w| Window {
            opened: c
                .window_record()
                .and_then(|record| serde_json::from_str::<Value>(record).ok())
                .as_ref()
                .and_then(exception::window_opened),
            ..w
        }),
    };
    object_window
        .filter(|w| w.counts_at_rest(c.now, c.config))
        .or_else(|| {
            c.ns_info
                .break_glass
                .clone()
                .filter(|w| w.counts_at_rest(c.now, c.config))
        })
}

/// A change by a break-glass member inside an open window: recorded and allowed, except what no
/// window covers.
pub(super) fn under_window(c: &Ctx<'_, '_>, owner: Option<&OwnerRef>) -> Option<Decision> {
    if !c.member {
        return None;
    }
    let w = open_window(c)?;
    let protected = if c.req.operation == Operation::Delete {
        Vec::new()
    } else {
        exception::protected_changes(c.old, c.new, c.config)
    };
    if !protected.is_empty() {
        let message = format!(
            "break-glass on {} refused: this change touches {} ({}); the window lets you fix what runs, not take the object out of Git's hands",
            c.what(),
            protected.join(", "),
            exception::PROTECTED
        );
        return Some(c.deny(Reason::BreakGlassRefused, message, owner));
    }
    if let Some(d) = managed_fields_rewrite(c, owner) {
        return Some(d);
    }
    let ticket = w
        .ticket
        .as_deref()
        .map(|t| format!(" [{t}]"))
        .unwrap_or_default();
    let op = match c.req.operation {
        Operation::Create => "created",
        Operation::Delete => "deleted",
        _ => "changed",
    };
    let managed_by = owner
        .map(|o| format!("it is managed by {o}"))
        .unwrap_or_else(|| format!("{} comes from Git", c.kind));
    let text = format!(
        "break-glass: {} {op} by {} under the window opened by {} until {} ({}{ticket}); {managed_by}: bring the change back into Git",
        c.what(),
        c.req.user.username,
        w.by,
        w.until,
        w.reason
    );
    Some(recorded(text, owner.cloned()))
}

/// A guarded object created with a break-glass window of its own: a window is opened on what
/// exists (or on its namespace), never brought along.
pub(super) fn new_object_window(c: &Ctx<'_, '_>, owner: Option<&OwnerRef>) -> Decision {
    let ns = if c.namespace.is_empty() {
        String::new()
    } else {
        format!(" or on namespace/{}", c.namespace)
    };
    c.deny(
        Reason::BreakGlassRefused,
        format!(
            "break-glass on {} refused: a new object cannot bring its own break-glass window; open one on an object that exists{ns} (kubectl gitops break-glass)",
            c.what()
        ),
        owner,
    )
}

/// A request that opens, extends, changes or closes a break-glass window.
pub(super) fn break_glass_change(c: &Ctx<'_, '_>, owner: Option<&OwnerRef>) -> Decision {
    let what = c.what();
    let refuse = |why: String| {
        c.deny(
            Reason::BreakGlassRefused,
            format!("break-glass on {what} refused: {why}"),
            owner,
        )
    };
    let config = c.config;
    if config.break_glass.groups.is_empty() {
        return refuse("break-glass is off (no breakGlass.groups in the guard's config)".into());
    }
    if !c.member {
        return refuse(format!(
            "only members of {} may open, extend or close a break-glass window",
            config.break_glass.groups.join(", ")
        ));
    }
    let username = &c.req.user.username;
    // The window is changed on its own: anything else in the same request would pass as
    // break-glass bookkeeping, past the rules a change under a window still meets.
    if c.req.operation == Operation::Update {
        let (old_fields, new_fields) = c.field_sets();
        let mut allowed = c.server_paths();
        allowed.extend(WINDOW_PATHS.iter());
        let other = disallowed_changes_of(old_fields, new_fields, &allowed, Report::All(8));
        if !other.is_empty() {
            return refuse(format!(
                "a request that opens, extends or closes a window changes nothing else, and this one also changes {}: open the window first (kubectl gitops break-glass), then make the change under it",
                other.join(", ")
            ));
        }
        if let Some(d) = managed_fields_rewrite(c, owner) {
            return d;
        }
    }
    let old_window = Window::from_annotations(&c.old_ann);
    match Window::from_annotations(&c.new_ann) {
        // Closed early, its record kept (`kubectl gitops break-glass --close`): only the end
        // moves, to now (a little clock skew allowed) and before the old end, never before the
        // window was opened; reason, opener and ticket stay, so that `exceptions` still lists
        // it and what was changed under it.
        Some(w) if closing(old_window.as_ref(), &w, c.now) => {
            let Some(old) = old_window else {
                return refuse("there is no window to close".into());
            };
            if (&w.reason, &w.by, &w.ticket) != (&old.reason, &old.by, &old.ticket) {
                return refuse(
                    "closing a window keeps its reason, opener and ticket: only its end moves"
                        .into(),
                );
            }
            let opened = c
                .old_record()
                .ok()
                .flatten()
                .and_then(|record| serde_json::from_str::<Value>(record).ok())
                .as_ref()
                .and_then(exception::window_opened)
                .and_then(|o| o.parse::<jiff::Timestamp>().ok());
            if let (Some(opened), Ok(until)) = (opened, w.until())
                && until < opened
            {
                return refuse(format!(
                    "a window cannot end ({}) before it was opened ({opened})",
                    w.until
                ));
            }
            let text = format!(
                "break-glass window on {what} closed by {username} (ended {})",
                w.until
            );
            recorded(text, owner.cloned())
        }
        Some(w) => {
            if let Err(why) = w.check_opening(username, c.now, config) {
                return refuse(why);
            }
            let ticket = w
                .ticket
                .as_deref()
                .map(|t| format!(" [{t}]"))
                .unwrap_or_default();
            let text = format!(
                "break-glass window on {what} opened by {username} until {}: {}{ticket}",
                w.until, w.reason
            );
            recorded(text, owner.cloned())
        }
        None => {
            let text = format!("break-glass window on {what} closed by {username}");
            recorded(text, owner.cloned())
        }
    }
}

/// How far ahead of the guard's clock a closing window's end may lie (the plugin dates it from
/// the API server's clock and its own).
const CLOSE_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_secs(30);

/// Whether `new` closes `old` early: its end moves earlier than the old end, to about now.
fn closing(old: Option<&Window>, new: &Window, now: jiff::Timestamp) -> bool {
    let (Some(old), Ok(until)) = (old, new.until()) else {
        return false;
    };
    let latest = now.checked_add(CLOSE_SKEW).unwrap_or(now);
    old.until().is_ok_and(|old_until| until < old_until) && until <= latest
}

/// The annotations of a window, as field paths.
static WINDOW_PATHS: LazyLock<Vec<FieldPath>> = LazyLock::new(|| {
    exception::BREAK_GLASS_KEYS
        .iter()
        .map(|k| {
            let mut p = FieldPath::keys(&["metadata", "annotations"]);
            p.0.push(crate::diff::PatSeg::Key((*k).to_string()));
            p
        })
        .collect()
});

/// A break-glass action: allowed, with the text as a warning, an audit annotation and an Event.
fn recorded(text: String, owner: Option<OwnerRef>) -> Decision {
    Decision {
        verdict: Verdict::Warn,
        reason: Reason::BreakGlass,
        message: None,
        warnings: vec![text.clone()],
        audit_annotations: vec![("break-glass".into(), text.clone())],
        owner,
        event: Some(text),
    }
}
