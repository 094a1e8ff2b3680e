//! The only module with `unsafe` code: raw system calls behind small safe wrappers, each
//! block with a `// SAFETY:` note, so that everything else can stay safe and pure.

pub mod creds;
pub mod netlink;
pub mod passthrough;
pub mod process;
pub mod sched;
pub mod shared_map;

pub use netlink::{ConnectorSocket, Received};
