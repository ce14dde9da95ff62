//! Structured logs with `tracing`: text or JSON lines on stderr, filtered by `RUST_LOG`
//! (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::Error;
use crate::cli::LogFormat;

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
