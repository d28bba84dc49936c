//! Keeps the kernel's set of container runtime binaries current: the well-known install paths at
//! start, then every runtime binary the agent sees executed on the host. A write-open of one of
//! them from a container is the CVE-2019-5736 pattern (`runtime-binary-overwrite`).

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::{
    loader::RuntimeInodes,
    model::{Event, Payload},
};

/// Where distributions install runtimes and their shims.
const WELL_KNOWN: &[&str] = &[
    "/usr/sbin/runc",
    "/usr/bin/runc",
    "/usr/local/bin/runc",
    "/usr/local/sbin/runc",
    "/usr/bin/crun",
    "/usr/local/bin/crun",
    "/usr/bin/containerd",
    "/usr/local/bin/containerd",
    "/usr/bin/containerd-shim",
    "/usr/bin/containerd-shim-runc-v1",
    "/usr/bin/containerd-shim-runc-v2",
    "/usr/local/bin/containerd-shim-runc-v2",
    "/usr/bin/dockerd",
    "/usr/bin/conmon",
    "/usr/libexec/podman/conmon",
    "/usr/bin/crio",
    "/usr/bin/podman",
];

pub struct RuntimeWatch {
    inodes: RuntimeInodes,
}

impl RuntimeWatch {
    pub fn new(inodes: RuntimeInodes) -> Self {
        let mut watch = RuntimeWatch { inodes };
        for path in WELL_KNOWN {
            watch.register(Path::new(path));
        }
        watch
    }

    fn register(&mut self, path: &Path) {
        match self.inodes.register(path) {
            Ok(true) => info!(path = %path.display(), "watching runtime binary for writes"),
            Ok(false) => {}
            Err(e) => warn!(error = %e, "runtime binary not watched"),
        }
    }

    /// Register the binary of a runtime helper seen exec'ing on the host.
    pub fn observe(&mut self, event: &Event) {
        if event.process.runtime_helper
            && matches!(event.data, Payload::ProcessExec { .. })
            && event.process.exe.starts_with('/')
        {
            // The path is the host's: runtime helpers run in the host mount namespace.
            self.register(&PathBuf::from(&event.process.exe));
        }
    }
}
