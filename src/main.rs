//! The `vprocfs` command.

use clap::Parser;

/// The daemon's logger: env_logger's, less one message that is no error. fuser logs
/// every reply the kernel refuses at error level; `ENOENT` means the request is gone
/// (its reader was interrupted or killed while the daemon answered: a VPS ending, a
/// `ps` stopped with Ctrl-C), which happens in normal use and would otherwise print
/// `Failed to send FUSE reply: No such file or directory` on the VPS's terminal.
struct Logger(env_logger::Logger);

impl Logger {
    fn is_gone_request(record: &log::Record<'_>) -> bool {
        record.target().starts_with("fuser::reply")
            && record.args().to_string().ends_with("(os error 2)")
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.0.matches(record) && !Self::is_gone_request(record) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

fn main() {
    // fuser logs every request it has no handler for at warn level; the daemon's stderr is
    // often the VPS's terminal, so only its errors are shown unless RUST_LOG says more.
    let logger = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,fuser=error"),
    )
    .build();
    let level = logger.filter();
    if log::set_boxed_logger(Box::new(Logger(logger))).is_ok() {
        log::set_max_level(level);
    }
    let cli = vprocfs::cli::Cli::parse();
    std::process::exit(vprocfs::cli::main(cli));
}

#[cfg(test)]
mod tests {
    use super::Logger;

    fn dropped(target: &str, args: std::fmt::Arguments<'_>) -> bool {
        Logger::is_gone_request(&log::Record::builder().target(target).args(args).build())
    }

    #[test]
    fn only_the_reply_to_a_gone_request_is_dropped() {
        assert!(dropped(
            "fuser::reply",
            format_args!("Failed to send FUSE reply: No such file or directory (os error 2)")
        ));
        // Any other refusal is a fault of the daemon's and is shown.
        assert!(!dropped(
            "fuser::reply",
            format_args!("Failed to send FUSE reply: Invalid argument (os error 22)")
        ));
        assert!(!dropped(
            "vprocfs::view",
            format_args!("cannot open x (os error 2)")
        ));
    }
}
