//! The `--config` file: checked at start (a bad file stops the webhook), reloaded when it changes
//! (a bad file then keeps the last good config in effect, says why, and counts a failed reload).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gitops_guard_core::Config;
use tracing::{info, warn};

use crate::Error;
use crate::app::App;
use crate::files::{Change, WatchedFiles};
use crate::metrics::Outcome;

fn parse(path: &Path, bytes: &[u8]) -> Result<Config, Error> {
    let text = String::from_utf8_lossy(bytes);
    Config::from_yaml(&text).map_err(|source| Error::ConfigInvalid {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and checks the config file. Returns it and the bytes it came from.
pub async fn load(path: &Path) -> Result<(Config, Vec<u8>), Error> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| Error::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
    let config = parse(path, &bytes)?;
    Ok((config, bytes))
}

/// Polls the config file every `interval` and puts a changed, valid config in effect.
pub async fn watch(mut files: WatchedFiles, app: App, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(path) = files.paths().first().cloned() else {
            return;
        };
        match files.poll().await {
            Change::Unchanged => {}
            Change::Unreadable { path, error } => {
                warn!(file = %path.display(), %error, "cannot read the config file; keeping the last good config");
                app.metrics().config_reload(Outcome::Failure);
            }
            Change::Changed(contents) => {
                let bytes = contents.first().map(Vec::as_slice).unwrap_or_default();
                match parse(&path, bytes) {
                    Ok(config) => {
                        app.set_config(Arc::new(config));
                        app.metrics().config_reload(Outcome::Success);
                        info!(file = %path.display(), "config reloaded");
                    }
                    Err(e) => {
                        warn!(file = %path.display(), error = %e, "keeping the last good config");
                        app.metrics().config_reload(Outcome::Failure);
                    }
                }
            }
        }
    }
}
