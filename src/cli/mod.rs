//! The command line: `run`, `serve`, `attach`.

mod channel;
mod run;
mod serve;
mod supervise;
mod vps_mounts;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::{Numbering, Pid, VpsConfig, DEFAULT_VPID_BIT};

/// vprocfs: give a container (VPS) its own /proc, with its processes numbered from 1.
#[derive(Debug, Parser)]
#[command(name = "vprocfs", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start CMD as pid 1 of a new VPS whose /proc is the VPS's view.
    Run(RunArgs),
    /// Serve one mount to several VPSes; each reader sees its own VPS's view.
    Serve(ServeArgs),
    /// Bind a served mount over /proc in the mount namespace of a running process.
    Attach(AttachArgs),
    /// Talk to a running `serve` daemon over its control socket.
    Ctl(CtlArgs),
    /// Run CMD inside a served VPS: a member, in its pid namespace where it has one,
    /// with the view over its /proc.
    Exec(ExecArgs),
    /// An OCI runtime hook: `create` registers the container (state JSON on standard
    /// input) and puts the view over its /proc; `delete` removes it.
    OciHook(OciHookArgs),
}

#[derive(Debug, clap::Args)]
struct OciHookArgs {
    /// The daemon's control socket (`serve --ctl`).
    #[arg(long, visible_alias = "ctl", default_value = crate::ctl::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Where the view goes inside the container [default: <bundle root>/proc from the
    /// bundle's config.json, as a createContainer hook sees it before pivot_root; else
    /// /proc].
    #[arg(long)]
    target: Option<PathBuf>,
    /// `create` (createContainer or prestart) or `delete` (poststop).
    #[arg(value_parser = ["create", "delete"])]
    phase: String,
    /// Put the whole view over the container's /proc even when it has its own pid
    /// namespace (by default only the virtual global files go over its procfs).
    #[arg(long)]
    full_view: bool,
}

#[derive(Debug, clap::Args)]
struct ExecArgs {
    /// The daemon's control socket (`serve --ctl`).
    #[arg(long, visible_alias = "ctl", default_value = crate::ctl::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// The VPS.
    vps: String,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    cmd: Vec<OsString>,
}

#[derive(Debug, clap::Args)]
struct CtlArgs {
    /// The daemon's control socket (`serve --ctl`).
    #[arg(long, visible_alias = "ctl", default_value = crate::ctl::DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    op: CtlOp,
}

#[derive(Debug, Subcommand)]
enum CtlOp {
    /// List the VPSes.
    List,
    /// Show a VPS's mappings (real pid → vpid).
    Mappings {
        /// The VPS.
        vps: String,
    },
    /// Add a VPS (NAME:SOURCE, as serve --vps).
    Add {
        /// The spec.
        #[arg(value_name = "NAME:SOURCE")]
        spec: String,
    },
    /// Remove a VPS.
    Remove {
        /// The VPS.
        vps: String,
    },
    /// Give real pid PID the vpid VPID in a VPS (restore).
    Alloc {
        /// The VPS.
        #[arg(long)]
        vps: String,
        /// The real pid.
        #[arg(long)]
        pid: Pid,
        /// The vpid.
        #[arg(long)]
        vpid: i32,
    },
    /// The daemon's statistics.
    Stats,
}

/// How vpids are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NumberingArg {
    /// Each member's vpid is its number in the VPS's kernel pid namespace.
    Pidns,
    /// The seed's default: init 1, others pid + 2^vpid-bit.
    Linear,
    /// The seed's hash table from the start.
    Sparse,
    /// Dense 1, 2, 3, … like a kernel pid namespace.
    Ns,
}

impl NumberingArg {
    /// The engine policy; `pidns` requests each member's namespace number on the seed's
    /// specific-vpid path, which starts linear and goes sparse on the second member.
    pub fn engine(self) -> Numbering {
        match self {
            NumberingArg::Pidns | NumberingArg::Linear => Numbering::Linear,
            NumberingArg::Sparse => Numbering::Sparse,
            NumberingArg::Ns => Numbering::Ns,
        }
    }
}

#[derive(Debug, clap::Args)]
struct EngineArgs {
    /// Numbering policy [default: pidns with a pid namespace, linear without].
    #[arg(long, value_enum)]
    numbering: Option<NumberingArg>,
    /// The seed's VPID_BIT: linear vpids are pid + 2^N [default without a pid namespace:
    /// the smallest N with 2^N >= the host's pid_max, so that no vpid is a host pid;
    /// with one, 10].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=24))]
    vpid_bit: Option<u32>,
}

impl EngineArgs {
    /// The engine settings of a VPS with (`pidns`) or without a kernel pid namespace.
    fn config(&self, numbering: NumberingArg, pidns: bool) -> VpsConfig {
        engine_config(
            self.vpid_bit,
            numbering.engine(),
            pidns,
            read_pid_max(),
            crate::host::pid_max_per_namespace(),
        )
    }

    /// The one-line warning a VPS without a pid namespace gets, if any
    /// ([`seed_model_warning`]).
    fn warning(&self, numbering: NumberingArg, pidns: bool) -> Option<String> {
        if pidns {
            return None;
        }
        seed_model_warning(numbering.engine(), self.vpid_bit, read_pid_max())
    }
}

/// The engine settings of a VPS with (`pidns`) or without a kernel pid namespace, on a
/// host whose `pid_max` is `host_pid_max` and whose kernel keeps one per namespace or
/// not (`per_ns`, Linux 6.14 on). `pid_max`, where numbering wraps, is the host's but
/// for dense numbers without a pid namespace where the kernel keeps one per namespace:
/// they are numbered as a namespace's, whose own starts at the kernel's limit (`run`
/// reads a namespace's own through its init).
fn engine_config(
    asked_bit: Option<u32>,
    numbering: Numbering,
    pidns: bool,
    host_pid_max: i32,
    per_ns: bool,
) -> VpsConfig {
    let own = !pidns && numbering == Numbering::Ns && per_ns;
    VpsConfig {
        vpid_bit: vpid_bit(asked_bit, pidns, host_pid_max),
        numbering,
        pid_max: if own {
            crate::engine::PID_MAX_LIMIT
        } else {
            host_pid_max
        },
        ..VpsConfig::default()
    }
}

/// The `VPID_BIT` of a VPS: the one asked for, else, without a pid namespace, the
/// smallest that keeps every vpid off the host's pids ([`crate::engine::safe_vpid_bit`]);
/// with one the bit does not show (vpids are the namespace's numbers), and the seed's 10
/// is kept.
fn vpid_bit(asked: Option<u32>, pidns: bool, pid_max: i32) -> u32 {
    asked.unwrap_or(if pidns {
        DEFAULT_VPID_BIT
    } else {
        crate::engine::safe_vpid_bit(pid_max)
    })
}

/// What a user of a VPS without a pid namespace must be told, in one line: system calls
/// there take real pids, so a vpid that is also a host pid turns `kill <vpid>` into a
/// signal to a host process. Linear (and sparse) numbers are safe with the default
/// `VPID_BIT`; a smaller one, and dense `ns` numbers, are not. Sparse numbering is warned
/// of too: a requested vpid (restore) can be any number.
fn seed_model_warning(
    numbering: Numbering,
    asked_bit: Option<u32>,
    pid_max: i32,
) -> Option<String> {
    let safe = crate::engine::safe_vpid_bit(pid_max);
    match (numbering, asked_bit) {
        (Numbering::Ns, _) => Some(
            "--numbering ns without a pid namespace: vpids are small numbers that are also host pids, and kill N acts on host pid N, not on vpid N".to_string()
        ),
        (Numbering::Linear, Some(b)) if b < safe => Some(format!(
            "--vpid-bit {b} without a pid namespace: a vpid can be a host pid (pid_max is {pid_max}), so kill N may signal a host process; --vpid-bit {safe} or more (the default) avoids it"
        )),
        (Numbering::Sparse, _) => Some(format!(
            "--numbering sparse without a pid namespace: a requested vpid, or one from --vpid-bit below {safe}, can be a host pid, and kill N acts on host pid N"
        )),
        _ => None,
    }
}

/// The kernel's pid_max, where numbering wraps.
fn read_pid_max() -> i32 {
    crate::host::pid_max()
        .ok()
        .filter(|&p| p > crate::engine::RESERVED_PIDS && p <= crate::engine::PID_MAX_LIMIT)
        .unwrap_or(crate::engine::PID_MAX_DEFAULT)
}

#[derive(Clone, Debug, clap::Args)]
struct FuseArgs {
    /// How long a burst of requests lasts after its last request, in microseconds.
    /// During a burst the FUSE thread polls /dev/fuse rather than sleep, sparing a
    /// wake-up per request (`ps -ef` sends ~9 per process), and, once it knows its
    /// reader's CPU, serves the burst there at SCHED_IDLE, so that no round trip crosses
    /// CPUs. 0: no bursts, serve with two sleeping threads.
    #[arg(long, default_value_t = 1000, value_name = "MICROSECONDS",
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    spin: u64,
    /// Never let the kernel serve reads from rendered snapshots (FUSE passthrough);
    /// every read then goes through the daemon, as on kernels before 6.9.
    #[arg(long)]
    no_passthrough: bool,
}

impl FuseArgs {
    fn spin(
        &self,
        stats: &std::sync::Arc<crate::stats::Stats>,
    ) -> std::sync::Arc<crate::spin::Spin> {
        crate::spin::Spin::new(
            std::time::Duration::from_micros(self.spin),
            std::sync::Arc::clone(stats),
        )
    }
}

/// The VPS's cgroup limits (`vprocfs run`), enforced by the kernel and shown in its
/// `/proc/meminfo`, `cpuinfo`, `stat`… (SPEC section 5).
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// Memory limit (bytes, or with K, M, G, T: 256M).
    #[arg(long, value_parser = crate::resources::parse_size, value_name = "SIZE")]
    memory: Option<u64>,
    /// Swap the VPS may use beyond --memory (0: none).
    #[arg(long, value_parser = crate::resources::parse_size, value_name = "SIZE")]
    swap: Option<u64>,
    /// CPU time, in CPUs (0.5: half of one CPU); the VPS sees ⌈N⌉ CPUs.
    #[arg(long, value_parser = parse_cpus, value_name = "N")]
    cpus: Option<f64>,
    /// The CPUs the VPS may run on (0-1,3), renumbered from 0 inside.
    #[arg(long, value_name = "LIST")]
    cpuset: Option<String>,
    /// At most this many tasks (processes and threads).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pids: Option<u64>,
}

impl LimitArgs {
    fn limits(&self) -> crate::resources::Limits {
        crate::resources::Limits {
            memory: self.memory,
            swap: self.swap,
            cpus: self.cpus,
            cpuset: self.cpuset.clone(),
            pids: self.pids,
        }
    }

    /// Whether any limit was asked for (then a cgroup is a must).
    fn any(&self) -> bool {
        self.memory.is_some()
            || self.swap.is_some()
            || self.cpus.is_some()
            || self.cpuset.is_some()
            || self.pids.is_some()
    }
}

fn parse_cpus(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.01..=4096.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of CPUs (0.01 to 4096, such as 0.5 or 2)"
        )),
    }
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// No kernel pid namespace: the seed's own model (tree membership, linear numbers).
    /// Syscalls then see real pids. A view, not a sandbox.
    #[arg(long)]
    no_pidns: bool,
    /// Serve the whole /proc through vprocfs, rather than the kernel's procfs of the
    /// VPS's pid namespace with vprocfs's virtual global files over it.
    #[arg(long)]
    full_view: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    fuse: FuseArgs,
    /// The command to run as the VPS's init, and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    cmd: Vec<OsString>,
}

/// One `--vps NAME:SOURCE=PID`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpsSpec {
    name: String,
    source: crate::membership::Source,
    /// As written, for the control socket's `add`.
    text: String,
}

fn parse_vps(s: &str) -> Result<VpsSpec, String> {
    let usage =
        "expected NAME:tree=PID, NAME:pidns=PID or NAME:cgroup=[CONTROLLER:]PATH[,init=PID]";
    let (name, rest) = s.split_once(':').ok_or(format!("{s:?}: {usage}"))?;
    let (kind, pid) = rest.split_once('=').ok_or(format!("{s:?}: {usage}"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "{name:?} is not a valid VPS name (letters, digits, '-', '_', '.')"
        ));
    }
    if kind == "cgroup" {
        let (path, init) = match pid.rsplit_once(",init=") {
            Some((path, init)) => {
                let init: Pid = init
                    .parse()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or(format!("{init:?} is not a pid"))?;
                (path, Some(init))
            }
            None => (pid, None),
        };
        let spec = crate::membership::cgroup::CgroupSpec::parse(path)?;
        return Ok(VpsSpec {
            name: name.to_string(),
            source: crate::membership::Source::Cgroup { spec, init },
            text: s.to_string(),
        });
    }
    let pid: Pid = pid
        .parse()
        .ok()
        .filter(|&p| p > 0)
        .ok_or(format!("{pid:?} is not a pid"))?;
    let source = match kind {
        "tree" => crate::membership::Source::Tree { init: pid },
        "pidns" => crate::membership::Source::Pidns { of: pid },
        other => return Err(format!("unknown membership {other:?}: {usage}")),
    };
    Ok(VpsSpec {
        name: name.to_string(),
        source,
        text: s.to_string(),
    })
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Where to mount the view.
    mountpoint: PathBuf,
    /// A VPS to serve: NAME:tree=PID (PID and all it forks), NAME:pidns=PID (the pid
    /// namespace of PID) or NAME:cgroup=[CONTROLLER:]PATH[,init=PID] (the processes of a
    /// cgroup v2 path, or of a v1 controller's hierarchy, and below). Repeatable.
    #[arg(long = "vps", value_parser = parse_vps, value_name = "NAME:SOURCE=PID")]
    vps: Vec<VpsSpec>,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    fuse: FuseArgs,
    /// The control socket (`vprocfs ctl --socket`), mode 0600.
    #[arg(long, visible_alias = "socket", default_value = crate::ctl::DEFAULT_SOCKET)]
    ctl: PathBuf,
    /// A file of VPSes, one NAME:SOURCE a line (`#` comments); re-read on SIGHUP.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to keep the state (VPSes and the vpids no rule recomputes), so that a
    /// restarted daemon gives surviving processes their vpids again.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Where each VPS's own mount goes, as DIR/NAME (DIR made mode 0700): a mount that
    /// serves one VPS lets the kernel cache its entries, which the shared mount cannot.
    /// Hooks and `vprocfs exec` use it. Default: `vps` beside the control socket.
    #[arg(long, value_name = "DIR", conflicts_with = "no_vps_mounts")]
    vps_mounts: Option<PathBuf>,
    /// Serve every VPS through the shared mount only (uncached).
    #[arg(long)]
    no_vps_mounts: bool,
    /// Set by the supervisor on the daemon it runs (see `supervise`).
    #[arg(long, hide = true, value_parser = supervise::parse_worker)]
    worker: Option<supervise::WorkerArg>,
    /// The supervisor's directory: the inode journal, and the state when none is given.
    #[arg(long, hide = true, requires = "worker")]
    worker_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct AttachArgs {
    /// A process of the container: its mount namespace gets the view.
    #[arg(long)]
    pid: Pid,
    /// The served mount (`vprocfs serve MOUNTPOINT`).
    mountpoint: PathBuf,
    /// Where the container's /proc is, inside it.
    #[arg(long, default_value = "/proc")]
    target: PathBuf,
    /// Put the whole view over the container's /proc even when it has its own pid
    /// namespace (by default only the virtual global files go over its procfs; its CPU
    /// directory goes over its sysfs either way).
    #[arg(long)]
    full_view: bool,
}

/// Opens `/dev/fuse` for a new connection.
fn open_dev_fuse() -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|e| {
            format!("cannot open /dev/fuse: {e} (is the fuse module loaded? try: modprobe fuse)")
        })?;
    // The kernel's only answer to a mount with another device is EINVAL: said here.
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = file
        .metadata()
        .map_err(|e| format!("cannot stat /dev/fuse: {e}"))?;
    let rdev = md.rdev();
    if !md.file_type().is_char_device() || (libc::major(rdev), libc::minor(rdev)) != FUSE_DEVICE {
        return Err(format!(
            "/dev/fuse is not the FUSE device (character device 10:229; here {}:{}): \
             recreate it with `mknod /dev/fuse c 10 229`, or give the container the host's",
            libc::major(rdev),
            libc::minor(rdev)
        ));
    }
    Ok(file)
}

/// The FUSE device's number (`MISC_MAJOR`, `FUSE_MINOR`), fixed by the kernel.
const FUSE_DEVICE: (u32, u32) = (10, 229);

/// Mounts the daemon's FUSE connection `fuse` at `at`.
///
/// The full view is mounted read-write: procfs takes writes (`oom_score_adj`, sysctls,
/// `uid_map`…), which the daemon carries out with the writer's credentials
/// ([`crate::view::writes`]). The kernel pid view's mount only lends its files.
fn mount_view(fuse: &std::fs::File, at: &std::path::Path, writable: bool) -> nix::Result<()> {
    let opts = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
        std::os::fd::AsRawFd::as_raw_fd(fuse)
    );
    let mut flags = nix::mount::MsFlags::MS_NOSUID
        | nix::mount::MsFlags::MS_NODEV
        | nix::mount::MsFlags::MS_NOEXEC;
    if !writable {
        flags |= nix::mount::MsFlags::MS_RDONLY;
    }
    nix::mount::mount(
        Some("vprocfs"),
        at,
        Some("fuse.vprocfs"),
        flags,
        Some(opts.as_str()),
    )
}

/// Runs the command line; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    let result = match cli.cmd {
        Command::Run(a) => run::run(a),
        Command::Serve(a) => serve::serve(a),
        Command::Attach(a) => serve::attach(a),
        Command::Ctl(a) => ctl(a),
        Command::Exec(a) => run::exec(a.socket, a.vps, a.cmd),
        Command::OciHook(a) => {
            serve::oci_hook(&a.socket, a.target.as_deref(), &a.phase, a.full_view)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            crate::say!("vprocfs: {e}");
            1
        }
    }
}

fn ctl(a: CtlArgs) -> Result<i32, String> {
    use crate::ctl::Request;
    let req = match a.op {
        CtlOp::List => Request::List,
        CtlOp::Mappings { vps } => Request::Mappings { vps },
        CtlOp::Add { spec } => Request::Add { vps: spec },
        CtlOp::Remove { vps } => Request::Remove { vps },
        CtlOp::Alloc { vps, pid, vpid } => Request::Alloc { vps, pid, vpid },
        CtlOp::Stats => Request::Stats,
    };
    let resp = crate::ctl::call(&a.socket, &req).map_err(|e| e.to_string())?;
    if !resp.ok {
        return Err(resp.error.unwrap_or_else(|| "refused".into()));
    }
    if let Some(vpses) = resp.vpses {
        crate::out!(
            "{:>4} {:<16} {:>8} {:<7} {:>8} {:>8} MOUNT",
            "ID",
            "NAME",
            "INIT",
            "MODE",
            "MEMBERS",
            "MAPPINGS"
        );
        for v in vpses {
            crate::out!(
                "{:>4} {:<16} {:>8} {:<7} {:>8} {:>8} {}",
                v.id,
                v.name,
                v.init,
                v.mode,
                v.members,
                v.mappings,
                v.mount.as_deref().unwrap_or("-")
            );
        }
    } else if let Some(maps) = resp.mappings {
        crate::out!("{:>8} {:>8}", "PID", "VPID");
        for m in maps {
            crate::out!("{:>8} {:>8}", m.pid, m.vpid);
        }
    } else if let Some(stats) = resp.stats {
        crate::out!("{stats}");
    } else if let Some(id) = resp.id {
        match resp.mount {
            Some(mount) => crate::out!("added VPS {id}, its view at {mount}"),
            None => crate::out!("added VPS {id}"),
        }
    }
    Ok(0)
}

/// Refuses politely when not root.
fn need_root(what: &str) -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(format!(
            "{what} needs root (it mounts a filesystem and makes namespaces); run it with sudo"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::Source;

    #[test]
    fn vps_specs() {
        assert_eq!(
            parse_vps("web:tree=42"),
            Ok(VpsSpec {
                name: "web".into(),
                source: Source::Tree { init: 42 },
                text: "web:tree=42".into(),
            })
        );
        assert_eq!(
            parse_vps("db:pidns=7").map(|s| s.source),
            Ok(Source::Pidns { of: 7 })
        );
        assert_eq!(
            parse_vps("c:cgroup=pids:/box,init=9").map(|s| s.source),
            Ok(Source::Cgroup {
                spec: crate::membership::cgroup::CgroupSpec::parse("pids:/box").unwrap(),
                init: Some(9)
            })
        );
        for bad in ["c:cgroup=box", "c:cgroup=/b,init=x"] {
            assert!(parse_vps(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "",
            "web",
            "web:tree",
            "web:tree=",
            "web:tree=-1",
            "web:tree=x",
            ":tree=1",
            "a b:tree=1",
            "web:cgroupz=1",
        ] {
            assert!(parse_vps(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn command_lines() {
        let ok = |args: &[&str]| Cli::try_parse_from(args).is_ok();
        assert!(ok(&["vprocfs", "run", "--", "ps", "-ef"]));
        assert!(ok(&[
            "vprocfs",
            "run",
            "--no-pidns",
            "--numbering",
            "ns",
            "ps",
            "-ef"
        ]));
        assert!(!ok(&["vprocfs", "run"]));
        assert!(!ok(&["vprocfs", "run", "--vpid-bit", "0", "--", "true"]));
        assert!(!ok(&[
            "vprocfs",
            "run",
            "--numbering",
            "bogus",
            "--",
            "true"
        ]));
        assert!(ok(&["vprocfs", "serve", "/mnt", "--vps", "a:tree=1"]));
        assert!(!ok(&["vprocfs", "serve", "/mnt", "--vps", "a:tree"]));
        assert!(ok(&["vprocfs", "run", "--vpid-bit", "24", "--", "true"]));
        // One name for the control socket wherever it is given, the other taken too.
        for name in ["--ctl", "--socket"] {
            assert!(ok(&["vprocfs", "serve", "/mnt", name, "/s"]), "{name}");
            assert!(ok(&["vprocfs", "ctl", name, "/s", "list"]), "{name}");
            assert!(
                ok(&["vprocfs", "exec", name, "/s", "web", "true"]),
                "{name}"
            );
            assert!(ok(&["vprocfs", "oci-hook", name, "/s", "create"]), "{name}");
        }
        assert!(!ok(&["vprocfs", "run", "--vpid-bit", "25", "--", "true"]));
    }

    #[test]
    fn vpid_bit_default_is_safe_without_a_pid_namespace() {
        assert_eq!(vpid_bit(None, false, 32768), 15);
        assert_eq!(vpid_bit(None, false, 4_194_304), 22);
        assert_eq!(vpid_bit(None, false, 100_000), 17);
        assert_eq!(vpid_bit(None, true, 4_194_304), DEFAULT_VPID_BIT);
        assert_eq!(vpid_bit(Some(10), false, 4_194_304), 10);
        assert_eq!(vpid_bit(Some(20), true, 32768), 20);
        // Every default is one the CLI and the engine accept.
        for pid_max in [301, 32768, 65536, 4_194_304] {
            let bit = vpid_bit(None, false, pid_max);
            assert!((1..=24).contains(&bit));
            let config = VpsConfig {
                vpid_bit: bit,
                pid_max,
                ..VpsConfig::default()
            };
            assert!(config.validate().is_ok());
        }
    }

    #[test]
    fn dense_numbers_without_a_namespace_wrap_at_a_new_namespaces_pid_max() {
        let c = |n, pidns, per_ns| engine_config(None, n, pidns, 32768, per_ns).pid_max;
        assert_eq!(c(Numbering::Ns, false, true), crate::engine::PID_MAX_LIMIT);
        // Before Linux 6.14 every namespace's is the host's.
        assert_eq!(c(Numbering::Ns, false, false), 32768);
        // Linear and sparse vpids are pid + 2^bit: the host's is where they wrap.
        assert_eq!(c(Numbering::Linear, false, true), 32768);
        assert_eq!(c(Numbering::Sparse, false, true), 32768);
        // With a namespace `run` reads the namespace's own later.
        assert_eq!(c(Numbering::Ns, true, true), 32768);
        assert_eq!(
            engine_config(None, Numbering::Ns, false, 32768, true).vpid_bit,
            15
        );
    }

    #[test]
    fn the_seed_model_warns_where_kill_can_reach_the_host() {
        let w = |n, b| seed_model_warning(n, b, 4_194_304);
        assert_eq!(w(Numbering::Linear, None), None);
        assert_eq!(w(Numbering::Linear, Some(22)), None);
        assert_eq!(w(Numbering::Linear, Some(23)), None);
        let small = w(Numbering::Linear, Some(10)).expect("a warning");
        assert!(
            small.contains("--vpid-bit 10") && small.contains("--vpid-bit 22"),
            "{small}"
        );
        assert!(w(Numbering::Ns, None)
            .unwrap()
            .contains("kill N acts on host pid N"));
        assert!(w(Numbering::Sparse, None)
            .unwrap()
            .contains("kill N acts on host pid N"));
        for n in [Numbering::Linear, Numbering::Ns, Numbering::Sparse] {
            for b in [None, Some(1), Some(24)] {
                if let Some(text) = w(n, b) {
                    assert!(!text.contains('\n'), "one line: {text}");
                }
            }
        }
    }
}
