#![forbid(unsafe_code)]
//! `kubectl-gitops`: a kubectl plugin (`kubectl gitops …`). Everything lives in the library.

fn main() -> std::process::ExitCode {
    kubectl_gitops::cli::main()
}
