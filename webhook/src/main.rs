#![forbid(unsafe_code)]
//! `gitops-guard-webhook`: see the library for everything.

use std::process::ExitCode;

use clap::Parser;
use gitops_guard_webhook::{Args, logging, run};

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = logging::init(args.log_format) {
        eprintln!("gitops-guard-webhook: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
