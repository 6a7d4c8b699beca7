//! The `posture` command line. Kept thin: everything testable lives in the library.
#![forbid(unsafe_code)]

use clap::Parser;

/// Kubernetes-native continuous security posture manager.
#[derive(Parser)]
#[command(
    name = "posture",
    version,
    about,
    after_help = "Example:\n  posture --version"
)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
