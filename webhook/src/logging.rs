//! Structured logs with `tracing`: text or JSON lines on stderr, filtered by `RUST_LOG`
//! (default `info`), and the summary of denial storms ([`DenialLog`]).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use tracing::info;
use tracing_subscriber::EnvFilter;

use crate::Error;
use crate::cli::LogFormat;
use crate::metrics::Metrics;

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(format: LogFormat) -> Result<(), Error> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    result.map_err(|e| Error::Logging(e.to_string()))
}

/// How long repeats of a denial are counted instead of logged: the first denial of a user's
/// change to an object for a reason is logged in full, the repeats within this window are
/// counted, and one line at its end says how many there were.
pub const DENIAL_LOG_WINDOW: Duration = Duration::from_secs(10);

/// The most distinct denials followed at once. Past it, a new one is logged in full and not
/// followed (until the windows of others end), so memory stays bounded in a storm of distinct
/// denials.
pub const DENIAL_LOG_KEYS: usize = 4096;

/// What makes two denials the same for the log: who, what, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DenialKey<'a> {
    pub user: &'a str,
    pub operation: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub verdict: &'static str,
    pub reason: &'static str,
}

impl DenialKey<'_> {
    fn digest(&self) -> u64 {
        // Fixed keys: the same key always lands in the same slot.
        let mut h = std::hash::DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }

    fn to_owned(self) -> OwnedKey {
        OwnedKey {
            user: self.user.into(),
            operation: self.operation.into(),
            kind: self.kind.into(),
            namespace: self.namespace.into(),
            name: self.name.into(),
            verdict: self.verdict,
            reason: self.reason,
        }
    }
}

/// A [`DenialKey`] kept across requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedKey {
    pub user: String,
    pub operation: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub verdict: &'static str,
    pub reason: &'static str,
}

impl OwnedKey {
    fn is(&self, key: &DenialKey<'_>) -> bool {
        self.user == key.user
            && self.operation == key.operation
            && self.kind == key.kind
            && self.namespace == key.namespace
            && self.name == key.name
            && self.verdict == key.verdict
            && self.reason == key.reason
    }
}

/// Repeats of one denial that were not logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub key: OwnedKey,
    /// Denials counted and not logged.
    pub repeats: u64,
    /// From the logged denial to the end of its window (or to the denial that closed it).
    pub over: Duration,
}

/// What to do with a denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Log it in full; first log `summary`, the window of its earlier repeats that it closes.
    Log { summary: Option<Summary> },
    /// A repeat within the window: counted, not logged.
    Repeat,
}

#[derive(Debug)]
struct Followed {
    key: OwnedKey,
    since: Instant,
    repeats: u64,
}

/// The bookkeeping of [`DenialLog`], with the clock passed in.
#[derive(Debug)]
pub struct Summariser {
    window: Duration,
    capacity: usize,
    followed: HashMap<u64, Followed>,
}

impl Summariser {
    pub fn new(window: Duration, capacity: usize) -> Summariser {
        Summariser {
            window,
            capacity,
            followed: HashMap::new(),
        }
    }

    /// A denial at `now`.
    pub fn record(&mut self, key: DenialKey<'_>, now: Instant) -> Seen {
        let digest = key.digest();
        if let Some(f) = self.followed.get_mut(&digest) {
            if !f.key.is(&key) {
                // Two keys with one digest: the later one is simply not followed.
                return Seen::Log { summary: None };
            }
            let elapsed = now.saturating_duration_since(f.since);
            if elapsed < self.window {
                f.repeats += 1;
                return Seen::Repeat;
            }
            let summary = (f.repeats > 0).then(|| Summary {
                key: f.key.clone(),
                repeats: f.repeats,
                over: elapsed,
            });
            f.since = now;
            f.repeats = 0;
            return Seen::Log { summary };
        }
        if self.followed.len() < self.capacity {
            self.followed.insert(
                digest,
                Followed {
                    key: key.to_owned(),
                    since: now,
                    repeats: 0,
                },
            );
        }
        Seen::Log { summary: None }
    }

    /// Forgets the denials whose window ended by `now`; the summaries of those that repeated.
    pub fn expire(&mut self, now: Instant) -> Vec<Summary> {
        let window = self.window;
        let mut summaries = Vec::new();
        self.followed.retain(|_, f| {
            if now.saturating_duration_since(f.since) < window {
                return true;
            }
            if f.repeats > 0 {
                summaries.push(Summary {
                    key: f.key.clone(),
                    repeats: f.repeats,
                    over: window,
                });
            }
            false
        });
        summaries
    }

    /// Denials followed now.
    pub fn len(&self) -> usize {
        self.followed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.followed.is_empty()
    }
}

/// Bounds the log volume of denial storms (a script or controller retrying a change the guard
/// denies): repeated identical denials (same user, operation, object, verdict and reason) are
/// logged once per [`DENIAL_LOG_WINDOW`]; the repeats are counted in
/// `gitops_guard_denial_log_suppressed_total` and one line per window says how many there were.
/// A task of the runtime the first denial came in on writes the summaries of windows that ended
/// with no denial after them.
#[derive(Debug)]
pub struct DenialLog {
    summariser: Mutex<Summariser>,
    window: Duration,
    sweeper: OnceLock<()>,
}

impl Default for DenialLog {
    fn default() -> Self {
        DenialLog::new(DENIAL_LOG_WINDOW)
    }
}

impl DenialLog {
    pub fn new(window: Duration) -> DenialLog {
        DenialLog {
            summariser: Mutex::new(Summariser::new(window, DENIAL_LOG_KEYS)),
            window,
            sweeper: OnceLock::new(),
        }
    }

    /// Whether to log this denial in full. Logs the summary of the window it closes, and counts
    /// a repeat in `metrics`.
    pub fn admit(self: &Arc<Self>, key: DenialKey<'_>, metrics: &Metrics) -> bool {
        self.start_sweeper();
        let seen = self
            .summariser
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(key, now());
        match seen {
            Seen::Repeat => {
                metrics.denial_log_suppressed();
                false
            }
            Seen::Log { summary } => {
                if let Some(summary) = summary {
                    log_summary(&summary);
                }
                true
            }
        }
    }

    /// Logs the summaries of the windows that have ended.
    pub fn sweep(&self) {
        let summaries = self
            .summariser
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .expire(now());
        for summary in &summaries {
            log_summary(summary);
        }
    }

    fn start_sweeper(self: &Arc<Self>) {
        if self.sweeper.get().is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.sweeper.get_or_init(|| {
            let log: Weak<DenialLog> = Arc::downgrade(self);
            let window = self.window.max(Duration::from_millis(100));
            runtime.spawn(async move {
                let mut ticks = tokio::time::interval(window);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    // Gone with its app.
                    let Some(log) = log.upgrade() else { break };
                    log.sweep();
                }
            });
        });
    }
}

/// The runtime's clock (paused and advanced in tests), as a std `Instant`.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn log_summary(s: &Summary) {
    info!(
        operation = %s.key.operation,
        kind = %s.key.kind,
        namespace = %s.key.namespace,
        name = %s.key.name,
        user = %s.key.user,
        verdict = %s.key.verdict,
        reason = %s.key.reason,
        repeats = s.repeats,
        seconds = s.over.as_secs(),
        "repeated admission decisions not logged"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(user: &'a str, name: &'a str, reason: &'static str) -> DenialKey<'a> {
        DenialKey {
            user,
            operation: "UPDATE",
            kind: "Deployment",
            namespace: "prod",
            name,
            verdict: "deny",
            reason,
        }
    }

    const WINDOW: Duration = Duration::from_secs(10);

    #[test]
    fn the_first_denial_is_logged_and_its_repeats_counted_until_the_window_ends() {
        let t0 = Instant::now();
        let mut s = Summariser::new(WINDOW, 100);
        let ana = key("ana", "web", "managed");
        assert_eq!(s.record(ana, t0), Seen::Log { summary: None });
        for i in 1..=999 {
            assert_eq!(
                s.record(ana, t0 + Duration::from_millis(i * 9)),
                Seen::Repeat
            );
        }
        // The next one after the window is logged, after the summary of the 999 repeats.
        let later = t0 + Duration::from_secs(12);
        let Seen::Log {
            summary: Some(summary),
        } = s.record(ana, later)
        else {
            panic!("the window's end was not summarised");
        };
        assert_eq!(summary.repeats, 999);
        assert_eq!(summary.over, Duration::from_secs(12));
        assert_eq!(summary.key.user, "ana");
        assert_eq!(summary.key.name, "web");
        assert_eq!(summary.key.reason, "managed");
        // A new window: its repeats are counted afresh.
        assert_eq!(s.record(ana, later + Duration::from_secs(1)), Seen::Repeat);
    }

    #[test]
    fn another_user_object_or_reason_is_another_denial() {
        let t0 = Instant::now();
        let mut s = Summariser::new(WINDOW, 100);
        let logged = Seen::Log { summary: None };
        assert_eq!(s.record(key("ana", "web", "managed"), t0), logged);
        assert_eq!(s.record(key("bob", "web", "managed"), t0), logged);
        assert_eq!(s.record(key("ana", "api", "managed"), t0), logged);
        assert_eq!(
            s.record(key("ana", "web", "break-glass-refused"), t0),
            logged
        );
        let mut create = key("ana", "web", "managed");
        create.operation = "CREATE";
        assert_eq!(s.record(create, t0), logged);
        assert_eq!(s.record(key("bob", "web", "managed"), t0), Seen::Repeat);
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn a_storm_that_stops_is_summarised_when_its_window_ends() {
        let t0 = Instant::now();
        let mut s = Summariser::new(WINDOW, 100);
        s.record(key("ana", "web", "managed"), t0);
        s.record(key("bob", "web", "managed"), t0);
        for _ in 0..5 {
            s.record(key("ana", "web", "managed"), t0 + Duration::from_secs(1));
        }
        assert!(s.expire(t0 + Duration::from_secs(9)).is_empty());
        assert_eq!(s.len(), 2);
        let summaries = s.expire(t0 + WINDOW);
        // Bob's denial did not repeat: nothing to say, and forgotten all the same.
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].key.user, "ana");
        assert_eq!(summaries[0].repeats, 5);
        assert_eq!(summaries[0].over, WINDOW);
        assert!(s.is_empty());
        // After that, the same denial is logged again.
        assert_eq!(
            s.record(key("ana", "web", "managed"), t0 + Duration::from_secs(11)),
            Seen::Log { summary: None }
        );
    }

    #[test]
    fn memory_is_bounded_in_a_storm_of_distinct_denials() {
        let t0 = Instant::now();
        let mut s = Summariser::new(WINDOW, 10);
        let names: Vec<String> = (0..100).map(|i| format!("web-{i}")).collect();
        for name in &names {
            assert_eq!(
                s.record(key("ana", name, "managed"), t0),
                Seen::Log { summary: None }
            );
        }
        assert_eq!(s.len(), 10);
        // Those not followed are logged every time; those followed are counted.
        assert_eq!(
            s.record(key("ana", &names[50], "managed"), t0),
            Seen::Log { summary: None }
        );
        assert_eq!(s.record(key("ana", &names[5], "managed"), t0), Seen::Repeat);
        s.expire(t0 + WINDOW);
        assert!(s.is_empty());
    }
}
