//! kubectl-gitops as a library: the binary in `main.rs` is a thin CLI over these modules.
#![forbid(unsafe_code)]

pub mod audit;
pub mod blame;
pub mod change;
pub mod cli;
pub mod cluster;
pub mod complete;
pub mod diff;
pub mod doctor;
pub mod error;
pub mod exceptions;
pub mod forge;
pub mod git;
pub mod locate;
pub mod manifest;
pub mod object_args;
pub mod output;
pub mod patch_target;
pub mod session;
pub mod splice;
pub mod status;
pub mod trace;
pub mod version;

pub use error::Error;
