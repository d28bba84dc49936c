//! cgroup id → cgroup path.
//!
//! The kernel reports the cgroup v2 id of a task (the inode number of its directory in the
//! cgroup2 hierarchy). The path comes from walking that hierarchy, cached, with one re-walk on
//! a miss (a new container's cgroup exists before its first process runs). On hosts where the
//! container sits in the cgroup2 root (cgroup v1 only setups) /proc/PID/cgroup gives the path.

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use procfs::{FromRead as _, ProcessCGroups, process::MountInfos};

/// Entries kept before the cache is rebuilt from scratch.
const CACHE_LIMIT: usize = 65_536;

pub struct CgroupResolver {
    /// Mount point of the cgroup2 hierarchy, if any.
    root: Option<PathBuf>,
    root_id: Option<u64>,
    paths: HashMap<u64, String>,
    proc_root: PathBuf,
}

impl CgroupResolver {
    pub fn new(proc_root: &Path) -> Self {
        let root = cgroup2_mount(proc_root);
        let root_id = root
            .as_ref()
            .and_then(|r| fs::metadata(r).ok())
            .map(|m| m.ino());
        let mut resolver = CgroupResolver {
            root,
            root_id,
            paths: HashMap::new(),
            proc_root: proc_root.to_owned(),
        };
        resolver.rewalk();
        resolver
    }

    pub fn cgroup2_root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The cgroup path of `pid` whose kernel cgroup id is `id`.
    pub fn path(&mut self, id: u64, pid: u32) -> String {
        if Some(id) != self.root_id {
            if let Some(p) = self.paths.get(&id) {
                return p.clone();
            }
            self.rewalk();
            if let Some(p) = self.paths.get(&id) {
                return p.clone();
            }
        }
        // In the cgroup2 root (or cgroup2 unknown): what /proc says, v2 line first, then v1.
        proc_cgroup_path(&self.proc_root, pid).unwrap_or_else(|| "/".into())
    }

    fn rewalk(&mut self) {
        let Some(root) = self.root.clone() else {
            return;
        };
        if self.paths.len() > CACHE_LIMIT {
            self.paths.clear();
        }
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(ft) = entry.file_type() else { continue };
                if !ft.is_dir() {
                    continue;
                }
                let path = entry.path();
                if let (Ok(meta), Ok(rel)) = (entry.metadata(), path.strip_prefix(&root)) {
                    self.paths
                        .insert(meta.ino(), format!("/{}", rel.to_string_lossy()));
                }
                stack.push(path);
            }
        }
    }
}

/// Mount point of the cgroup2 filesystem from /proc/self/mountinfo.
pub fn cgroup2_mount(proc_root: &Path) -> Option<PathBuf> {
    let mounts = MountInfos::from_file(proc_root.join("self/mountinfo")).ok()?;
    cgroup2_in(mounts)
}

fn cgroup2_in(mounts: MountInfos) -> Option<PathBuf> {
    mounts
        .into_iter()
        .find(|m| m.fs_type == "cgroup2")
        .map(|m| m.mount_point)
}

/// A process's cgroup path from /proc/PID/cgroup: the v2 (`0::`) path when it is not the root,
/// else the first non-root v1 path (name=systemd first, as systemd and runtimes keep it exact).
pub fn proc_cgroup_path(proc_root: &Path, pid: u32) -> Option<String> {
    let groups = ProcessCGroups::from_file(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    cgroup_path(&groups).map(str::to_owned)
}

fn cgroup_path(groups: &ProcessCGroups) -> Option<&str> {
    let mut v2 = None;
    let mut systemd = None;
    let mut first_v1 = None;
    for g in groups {
        let path = g.pathname.as_str();
        if g.hierarchy == 0 && g.controllers.is_empty() {
            v2 = Some(path);
        } else if path != "/" {
            if g.controllers == ["name=systemd"] {
                systemd = Some(path);
            } else if first_v1.is_none() {
                first_v1 = Some(path);
            }
        }
    }
    match v2 {
        Some(p) if p != "/" => Some(p),
        _ => systemd.or(first_v1).or(v2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_proc_cgroup(text: &str) -> Option<String> {
        let groups = ProcessCGroups::from_read(text.as_bytes()).ok()?;
        cgroup_path(&groups).map(str::to_owned)
    }

    #[test]
    fn finds_the_cgroup2_mount() {
        let mountinfo = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/root rw
25 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate
";
        let mounts = MountInfos::from_read(mountinfo.as_bytes()).unwrap();
        assert_eq!(cgroup2_in(mounts), Some(PathBuf::from("/sys/fs/cgroup")));
        let without: String = mountinfo
            .lines()
            .take(2)
            .map(|l| format!("{l}\n"))
            .collect();
        let mounts = MountInfos::from_read(without.as_bytes()).unwrap();
        assert_eq!(cgroup2_in(mounts), None);
    }

    #[test]
    fn proc_cgroup_prefers_v2_then_systemd_then_v1() {
        assert_eq!(
            parse_proc_cgroup("0::/docker/abc\n1:cpu:/x\n").as_deref(),
            Some("/docker/abc")
        );
        assert_eq!(
            parse_proc_cgroup("4:memory:/m\n9:name=systemd:/docker/abc\n0::/\n").as_deref(),
            Some("/docker/abc")
        );
        assert_eq!(
            parse_proc_cgroup("4:memory:/m\n0::/\n").as_deref(),
            Some("/m")
        );
        assert_eq!(parse_proc_cgroup("0::/\n").as_deref(), Some("/"));
        assert_eq!(parse_proc_cgroup("garbage").as_deref(), None);
    }

    #[test]
    #[ignore = "needs root: creates a cgroup (run by `cargo xtask test`)"]
    fn resolves_a_new_cgroup_by_id_after_a_rewalk() {
        let mut r = CgroupResolver::new(Path::new("/proc"));
        let root = r
            .cgroup2_root()
            .expect("this machine has a cgroup2 mount")
            .to_owned();
        let name = format!("escapewatch-unit-{}", std::process::id());
        let dir = root.join(&name);
        fs::create_dir(&dir).expect("create a cgroup (root needed)");
        let id = fs::metadata(&dir).map(|m| m.ino());
        let resolved = id.as_ref().ok().map(|id| r.path(*id, std::process::id()));
        fs::remove_dir(&dir).expect("remove the test cgroup");
        assert_eq!(resolved, Some(format!("/{name}")));
    }
}
