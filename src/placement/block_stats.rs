//! sysfs's I/O counters of each block device as a VPS sees them (SPEC section 5).
//!
//! sysstat's `iostat` (12.x) reads `/sys/block/<disk>/stat`, not `/proc/diskstats`, and
//! divides it by the VPS's `uptime`: with the host's counters a new VPS was shown
//! millions of transfers a second. The view serves each device's `stat` from the VPS's
//! cgroup ([`crate::resources::diskstats::render_sysfs_stat`], hidden names of its root
//! from [`crate::view::resource_files::block_stat_name`]), and each is bound over
//! sysfs's own file, which every path to it (`/sys/block/…`, `/sys/class/block/…`,
//! `/sys/dev/block/<major>:<minor>/…`) reaches. The devices are those there when the view
//! is put in place; one added later shows the host's counters.

use std::os::fd::OwnedFd;
use std::path::Path;

use crate::resources::cgroup::parse_dev;
use crate::sys::process::{move_mount_to, open_tree_clone};
use crate::view::resource_files::block_stat_name;

/// The host's block devices, disks and partitions (the names of `/sys/dev/block`:
/// "major:minor").
fn devices() -> Vec<(u32, u32)> {
    super::cpu_dir::names_in(Path::new("/sys/dev/block"))
        .unwrap_or_default()
        .iter()
        .filter_map(|name| parse_dev(name))
        .collect()
}

/// The view's `stat` of every block device, taken (`open_tree`) from the view mounted
/// at `view`, to be put in place by [`place`], in this mount namespace or another. A
/// device that cannot be taken (gone since it was listed) is left out.
pub fn take(view: &Path) -> Vec<((u32, u32), OwnedFd)> {
    devices()
        .into_iter()
        .filter_map(|dev| {
            let source = view.join(block_stat_name(dev));
            open_tree_clone(&source)
                .map_err(|e| log::info!("cannot take {}: {e}", source.display()))
                .ok()
                .map(|tree| (dev, tree))
        })
        .collect()
}

/// Binds each device's `stat` of `taken` over sysfs's at `sys` (the sysfs beside the
/// VPS's `/proc`). A device that sysfs lacks there, or whose file cannot be covered,
/// keeps the host's counters, with a warning for the latter.
pub fn place(sys: &Path, taken: Vec<((u32, u32), OwnedFd)>) {
    for ((major, minor), tree) in taken {
        let target = sys.join(format!("dev/block/{major}:{minor}/stat"));
        if !target.exists() {
            continue;
        }
        if let Err(e) = move_mount_to(&tree, &target) {
            log::warn!(
                "cannot mount on {}: {e}; the VPS sees the host's I/O counters of {major}:{minor}",
                target.display()
            );
        }
    }
}
