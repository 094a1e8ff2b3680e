//! The `vprocfs` command.

use clap::Parser;

fn main() {
    // fuser logs every request it has no handler for at warn level; the daemon's stderr is
    // often the VPS's terminal, so only its errors are shown unless RUST_LOG says more.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,fuser=error"))
        .init();
    let cli = vprocfs::cli::Cli::parse();
    std::process::exit(vprocfs::cli::main(cli));
}
