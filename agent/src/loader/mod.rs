//! Load the eBPF object, hand it this kernel's offsets, attach every program and report how.

pub mod links;

use escapewatch_common::abi::{CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, kernel_dev};
use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, ProgramArray},
    programs::{
        BtfTracePoint, CgroupAttachMode, CgroupSysctl, FEntry, KProbe, Lsm, RawTracePoint,
        TracePoint,
    },
};
use escapewatch_common::{
    event::InodeKey,
    kind::EventKind,
    maps::{CONFIG_GLOBAL, RING_CRITICAL, RING_LIFECYCLE, RUNTIME_INODES, WATCHED_PORTS},
    programs::{Hook, IOURING_TAILS, PROGRAMS, ProgramSpec, SYS_ENTER_TAILS, SYS_EXIT_TAILS},
};
use tracing::{info, warn};

use crate::{
    btf::{Btf, BtfError},
    config::{PrecisionHook, RingBuffers},
    offsets::{OffsetError, kernel_config, set_io_uring_complete},
};

/// The eBPF object, built by build.rs with the pinned nightly.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/escapewatch"));

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
const TRACEFS: &str = "/sys/kernel/tracing";
const SECURITYFS: &str = "/sys/kernel/security";
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe/type";
/// Present on every kernel with loadable module support (CONFIG_MODULES).
const PROC_MODULES: &str = "/proc/modules";
/// The tracepoint of `request_module`, which only CONFIG_MODULES kernels have.
const MODULE_REQUEST: &str = "module_request";

/// Lines kept from the end of a verifier log in an attach error.
const VERIFIER_TAIL: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot put watched port {port} into the kernel map {WATCHED_PORTS}")]
    WatchedPort {
        port: u16,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(
        "escapewatch must run as root, or with CAP_BPF and CAP_PERFMON (plus CAP_SYS_ADMIN on kernels before 5.8), to load its eBPF programs; this process has effective capabilities {caps:#x}. Run it with sudo or through the shipped systemd unit"
    )]
    NotPrivileged { caps: u64 },
    #[error(
        "cannot read the kernel's BTF at {path}: escapewatch resolves kernel struct offsets from it at load time, so the kernel must be built with CONFIG_DEBUG_INFO_BTF=y (the default on Debian 11+, Ubuntu 20.10+, RHEL 8.2+), or give a BTF file for this kernel with --btf"
    )]
    Btf {
        path: PathBuf,
        #[source]
        source: BtfError,
    },
    #[error(transparent)]
    Offsets(#[from] OffsetError),
    #[error(
        "tracefs is not mounted and mounting it at {TRACEFS} failed; mount it by hand (`mount -t tracefs tracefs {TRACEFS}`)"
    )]
    Tracefs {
        #[source]
        source: nix::Error,
    },
    #[error("the kernel refused the eBPF object (maps or BTF)")]
    Object {
        #[source]
        source: aya::EbpfError,
    },
    #[error(
        "required program(s) could not be attached, so escapewatch would be blind:\n  {}",
        .failed.join("\n  ")
    )]
    Required { failed: Vec<String> },
}

/// What loading needs to know about this machine.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub rings: RingBuffers,
    /// Kernel BTF to read offsets from (default /sys/kernel/btf/vmlinux).
    pub btf: Option<PathBuf>,
    /// The host's mount namespace inode (0: unknown).
    pub host_mnt_ns: u32,
    /// Where the cgroup2 hierarchy is mounted (for cgroup/sysctl).
    pub cgroup2_root: Option<PathBuf>,
    /// Precision hook types not to try (`hooks.disable`, `--disable-hooks`).
    pub disabled: Vec<PrecisionHook>,
    /// Destination ports of IPv4/IPv6 connects to report (`runtime_api.ports`).
    pub watched_ports: Vec<u16>,
}

/// Why one program could not be attached. The message is this step's; the kernel's reason
/// (errno, verifier log) is the source: [`error_chain`] gives both in one line.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("program {program} is missing from the eBPF object")]
    MissingProgram { program: &'static str },
    /// Not of the program type its spec says, or the kernel refused to load or attach it.
    #[error(transparent)]
    Program(#[from] aya::programs::ProgramError),
    #[error("{}", join_missing(.missing))]
    NoTracepoint {
        category: &'static str,
        missing: Vec<MissingTracepoint>,
    },
    #[error("no cgroup2 hierarchy is mounted")]
    NoCgroup2,
    #[error("cannot open cgroup2 root {}", .path.display())]
    OpenCgroup2 {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("this kernel has no kprobes ({KPROBE_PMU} is missing: CONFIG_KPROBES off)")]
    NoKprobes,
    /// No loadable modules: the kernel never autoloads one, so there is nothing to watch.
    #[error(
        "this kernel has no loadable module support ({PROC_MODULES} is missing: CONFIG_MODULES off), so it never autoloads a module and has no {tracepoint} tracepoint"
    )]
    NoModules { tracepoint: &'static str },
    #[error(transparent)]
    Lsm(#[from] LsmError),
    #[error("the eBPF object has no map {map}")]
    MissingMap { map: &'static str },
    #[error("cannot duplicate the program's descriptor for its tail-call array")]
    TailCallFd(#[source] std::io::Error),
    #[error("cannot enter the program in tail-call array {array} at {index}")]
    TailCall {
        array: &'static str,
        index: u32,
        #[source]
        source: aya::maps::MapError,
    },
}

/// One tracepoint of a handler that this kernel would not attach it to. Shown with the
/// kernel's reason, as one of a list: no source of its own.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {}", error_chain(.error))]
pub struct MissingTracepoint {
    name: &'static str,
    error: aya::programs::ProgramError,
}

fn join_missing(missing: &[MissingTracepoint]) -> String {
    let each: Vec<String> = missing.iter().map(ToString::to_string).collect();
    each.join("; ")
}

#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error("cannot read the active LSM list {}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("BPF LSM is not active (active LSMs: {active}); boot with lsm=...,bpf to enable it")]
    Inactive { active: String },
}

/// How one program fared.
#[derive(Debug)]
pub enum ProgramState {
    Attached,
    /// Not loaded: a preferred alternative of the same group attached.
    Standby {
        served_by: &'static str,
    },
    /// Not tried (`hooks.disable`, `--disable-hooks`); only precision hooks can be disabled,
    /// and their `fallback` serves instead.
    Disabled,
    /// Not attached, and not a failure of the agent: the hook does not exist on this kernel
    /// (e.g. no init_module tracepoints without CONFIG_MODULES: nothing there to watch), or a
    /// precision hook the kernel refuses whose `fallback` serves instead.
    Absent {
        error: AttachError,
    },
    /// Not attached: the rules that need it do not see its events.
    Failed {
        error: AttachError,
    },
}

impl ProgramState {
    /// Why the program is not attached; None when attached or standing by.
    pub fn why_not(&self) -> Option<String> {
        match self {
            ProgramState::Attached | ProgramState::Standby { .. } => None,
            ProgramState::Disabled => {
                Some("disabled by configuration (hooks.disable, --disable-hooks)".to_owned())
            }
            ProgramState::Absent { error } | ProgramState::Failed { error } => {
                Some(error_chain(error))
            }
        }
    }
}

/// How one program fared, with what it is.
#[derive(Debug)]
pub struct Attachment {
    pub program: &'static str,
    pub group: &'static str,
    pub hook: Hook,
    pub state: ProgramState,
}

impl Attachment {
    pub fn attached(&self) -> bool {
        matches!(self.state, ProgramState::Attached)
    }

    /// Not attached for a reason that leaves rules blind (absent hooks and fallbacks aside).
    pub fn failed(&self) -> bool {
        matches!(self.state, ProgramState::Failed { .. })
    }
}

pub struct Loaded {
    pub ebpf: Ebpf,
    pub attachments: Vec<Attachment>,
}

impl Loaded {
    /// Every program attached, hooks this kernel does not have aside.
    pub fn all_attached(&self) -> bool {
        !self.attachments.iter().any(Attachment::failed)
    }

    /// `hook-type/program` of every attached program producing `kind`.
    pub fn serving(&self, kind: EventKind) -> Vec<String> {
        PROGRAMS
            .iter()
            .zip(&self.attachments)
            .filter(|(spec, a)| a.attached() && spec.kinds.contains(&kind))
            .map(|(spec, _)| {
                let (hook, name) = spec.label();
                format!("{hook}/{name}")
            })
            .collect()
    }
}

/// Effective capabilities of this process (none if /proc says nothing).
fn effective_caps() -> u64 {
    procfs::process::Process::myself()
        .and_then(|p| p.status())
        .map_or(0, |s| s.capeff)
}

fn check_privileges() -> Result<(), LoadError> {
    let caps = effective_caps();
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        Ok(())
    } else {
        Err(LoadError::NotPrivileged { caps })
    }
}

/// Mount tracefs if no tracefs is reachable (aya looks in these two places).
fn ensure_tracefs() -> Result<(), LoadError> {
    let usable = |p: &str| {
        Path::new(p)
            .join("events")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    };
    if usable(TRACEFS) || usable("/sys/kernel/debug/tracing") {
        return Ok(());
    }
    nix::mount::mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|source| LoadError::Tracefs { source })?;
    info!(path = TRACEFS, "tracefs was not mounted; mounted it");
    Ok(())
}

fn attach_one(
    ebpf: &mut Ebpf,
    btf: &aya::Btf,
    spec: &ProgramSpec,
    cgroup2_root: Option<&Path>,
) -> Result<(), AttachError> {
    let program = ebpf
        .program_mut(spec.name)
        .ok_or(AttachError::MissingProgram { program: spec.name })?;
    match spec.hook {
        Hook::Tracepoint { category, names } => {
            let p: &mut TracePoint = program.try_into()?;
            p.load()?;
            // One handler may serve several syscall exits: attach it to each that this kernel
            // has (no init_module tracepoints without CONFIG_MODULES, say).
            let mut attached = 0;
            let mut missing = Vec::new();
            for name in names {
                match p.attach(category, name) {
                    Ok(_) => attached += 1,
                    Err(error) => missing.push(MissingTracepoint { name, error }),
                }
            }
            if attached == 0 {
                return Err(AttachError::NoTracepoint { category, missing });
            }
            if !missing.is_empty() {
                warn!(
                    program = spec.name,
                    missing = %join_missing(&missing),
                    "attached to {attached} of {} tracepoints",
                    names.len()
                );
            }
            Ok(())
        }
        Hook::CgroupSysctl => {
            let root = cgroup2_root.ok_or(AttachError::NoCgroup2)?;
            let cgroup = std::fs::File::open(root).map_err(|source| AttachError::OpenCgroup2 {
                path: root.to_owned(),
                source,
            })?;
            let p: &mut CgroupSysctl = program.try_into()?;
            p.load()
                .and_then(|()| p.attach(&cgroup, CgroupAttachMode::Single).map(drop))
                .map_err(AttachError::from)
        }
        Hook::RawTracepoint { name } => {
            if name == MODULE_REQUEST && !Path::new(PROC_MODULES).exists() {
                return Err(AttachError::NoModules { tracepoint: name });
            }
            let p: &mut RawTracePoint = program.try_into()?;
            p.load()
                .and_then(|()| p.attach(name).map(drop))
                .map_err(AttachError::from)
        }
        Hook::BtfTracepoint { name } => {
            let p: &mut BtfTracePoint = program.try_into()?;
            p.load(name, btf)
                .and_then(|()| p.attach().map(drop))
                .map_err(AttachError::from)
        }
        Hook::FEntry { function } => {
            let p: &mut FEntry = program.try_into()?;
            p.load(function, btf)
                .and_then(|()| p.attach().map(drop))
                .map_err(AttachError::from)
        }
        Hook::KProbe { function } => {
            // aya attaches kprobes through the kprobe PMU (perf_event_open, kernel 4.17+).
            if !Path::new(KPROBE_PMU).exists() {
                return Err(AttachError::NoKprobes);
            }
            let p: &mut KProbe = program.try_into()?;
            p.load()
                .and_then(|()| p.attach(function, 0).map(drop))
                .map_err(AttachError::from)
        }
        Hook::Lsm { hook } => {
            bpf_lsm_active()?;
            let p: &mut Lsm = program.try_into()?;
            p.load(hook, btf)
                .and_then(|()| p.attach().map(drop))
                .map_err(AttachError::from)
        }
        Hook::Syscall { exit, numbers } => set_tails(ebpf, btf, spec, exit, numbers),
        Hook::TailCall { exit, index } => set_tails(ebpf, btf, spec, exit, &[index]),
        Hook::IouringOp { opcodes } => {
            let p: &mut TracePoint = program.try_into()?;
            p.load()?;
            let fd = p.fd()?.try_clone().map_err(AttachError::TailCallFd)?;
            set_program_array(ebpf, IOURING_TAILS, opcodes, &fd)
        }
    }
}

/// Load a program of the syscall dispatchers (a tp_btf program on `sys_enter`/`sys_exit`,
/// never attached) and put it at `indices` of the dispatcher's program array.
fn set_tails(
    ebpf: &mut Ebpf,
    btf: &aya::Btf,
    spec: &ProgramSpec,
    exit: bool,
    indices: &[u32],
) -> Result<(), AttachError> {
    let program = ebpf
        .program_mut(spec.name)
        .ok_or(AttachError::MissingProgram { program: spec.name })?;
    let tracepoint = if exit { "sys_exit" } else { "sys_enter" };
    let p: &mut BtfTracePoint = program.try_into()?;
    p.load(tracepoint, btf)?;
    let fd = p.fd()?.try_clone().map_err(AttachError::TailCallFd)?;
    let array = if exit {
        SYS_EXIT_TAILS
    } else {
        SYS_ENTER_TAILS
    };
    set_program_array(ebpf, array, indices, &fd)
}

/// Put the program `fd` at `indices` of the program array `array`.
fn set_program_array(
    ebpf: &mut Ebpf,
    array: &'static str,
    indices: &[u32],
    fd: &aya::programs::ProgramFd,
) -> Result<(), AttachError> {
    let map = ebpf
        .map_mut(array)
        .ok_or(AttachError::MissingMap { map: array })?;
    let mut tails = ProgramArray::try_from(map).map_err(|source| AttachError::TailCall {
        array,
        index: indices.first().copied().unwrap_or(0),
        source,
    })?;
    for &index in indices {
        tails
            .set(index, fd, 0)
            .map_err(|source| AttachError::TailCall {
                array,
                index,
                source,
            })?;
    }
    Ok(())
}

/// BPF LSM programs load on any CONFIG_BPF_LSM kernel but only run when `bpf` is in the active
/// LSM list (`lsm=` on the kernel command line): check, mounting securityfs if needed.
fn bpf_lsm_active() -> Result<(), LsmError> {
    let list = Path::new(SECURITYFS).join("lsm");
    if !list.exists() {
        let _ = nix::mount::mount(
            Some("securityfs"),
            SECURITYFS,
            Some("securityfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
    }
    let active = std::fs::read_to_string(&list)
        .map_err(|source| LsmError::Unreadable { path: list, source })?;
    if active.trim().split(',').any(|l| l == "bpf") {
        Ok(())
    } else {
        Err(LsmError::Inactive {
            active: active.trim().to_owned(),
        })
    }
}

/// Whether this kernel lacks the hook altogether (every tracepoint of it missing in tracefs).
fn hook_absent(hook: &Hook) -> bool {
    match hook {
        Hook::Tracepoint { category, names } => names.iter().all(|name| {
            [TRACEFS, "/sys/kernel/debug/tracing"].iter().all(|root| {
                !Path::new(root)
                    .join("events")
                    .join(category)
                    .join(name)
                    .exists()
            })
        }),
        _ => false,
    }
}

/// An error with its source chain (errno, verifier log) in one message; of a verifier log only
/// the end, which says why the program was rejected.
fn error_chain(e: &dyn std::error::Error) -> String {
    let msg = crate::errors::chain(e);
    let lines: Vec<&str> = msg.lines().collect();
    if lines.len() > VERIFIER_TAIL {
        format!(
            "{} [... {} verifier log lines ...] {}",
            lines[0],
            lines.len() - VERIFIER_TAIL,
            lines[lines.len() - VERIFIER_TAIL + 1..].join(" | ")
        )
    } else {
        lines.join(" | ")
    }
}

/// What becomes of `spec`, given the programs before it: standby when a preferred alternative
/// of its group attached, else disabled by configuration, else what `attach` gives.
fn program_state(
    spec: &ProgramSpec,
    before: &[Attachment],
    opts: &LoadOptions,
    attach: impl FnOnce() -> Result<(), AttachError>,
) -> ProgramState {
    // Alternatives of a group: the first that attaches serves, the rest stand by.
    let served_by = PROGRAMS
        .iter()
        .zip(before)
        .find(|(other, a)| other.group == spec.group && a.attached())
        .map(|(other, _)| other.name);
    if let Some(served_by) = served_by {
        return ProgramState::Standby { served_by };
    }
    if opts
        .disabled
        .iter()
        .any(|h| h.kind_name() == spec.hook.kind_name())
    {
        return ProgramState::Disabled;
    }
    match attach() {
        Ok(()) => ProgramState::Attached,
        Err(error @ AttachError::NoModules { .. }) => ProgramState::Absent { error },
        Err(error) if hook_absent(&spec.hook) || !spec.fallback.is_empty() => {
            ProgramState::Absent { error }
        }
        Err(error) => ProgramState::Failed { error },
    }
}

/// What loading one program cost: the verifier dominates start-up on old kernels, so the
/// start-up log names each program's share.
struct LoadCost {
    millis: u128,
    /// Instructions the verifier processed (kernel 5.16+).
    verified_insns: Option<u32>,
}

fn log_state(spec: &ProgramSpec, state: &ProgramState, cost: &LoadCost) {
    let (program, group, hook) = (spec.name, spec.group, spec.hook.kind_name());
    let (load_ms, verified_insns) = (cost.millis, cost.verified_insns);
    match state {
        ProgramState::Standby { served_by } => info!(
            program,
            group, hook, served_by, "not loaded: a preferred hook of the same group serves"
        ),
        ProgramState::Attached => info!(
            program,
            group,
            hook,
            target = ?spec.hook,
            load_ms,
            verified_insns,
            "attached"
        ),
        ProgramState::Disabled | ProgramState::Absent { .. } if !spec.fallback.is_empty() => {
            info!(
                program,
                group,
                hook,
                reason = %state.why_not().unwrap_or_default(),
                fallback = spec.fallback,
                "not attached; the next hook of its group, or else its fallback, serves its rules"
            );
        }
        ProgramState::Disabled | ProgramState::Absent { .. } => info!(
            program,
            group,
            hook,
            reason = %state.why_not().unwrap_or_default(),
            "not attached: this kernel does not have this hook (nothing there to watch)"
        ),
        ProgramState::Failed { error } => warn!(
            program,
            group,
            hook,
            error = %error_chain(error),
            "could not attach; the rules that need it will not see these events"
        ),
    }
}

/// Load and attach everything. A program that fails is reported and skipped, unless the agent
/// cannot work without it.
pub fn load(opts: &LoadOptions) -> Result<Loaded, LoadError> {
    check_privileges()?;
    let rings = opts.rings;
    let btf_path = opts
        .btf
        .clone()
        .unwrap_or_else(|| PathBuf::from(VMLINUX_BTF));
    let btf = Btf::from_file(&btf_path).map_err(|source| LoadError::Btf {
        path: btf_path.clone(),
        source,
    })?;
    let mut config = kernel_config(&btf, std::process::id(), opts.host_mnt_ns)?;
    crate::enrich::payload::set_lockdown_reasons(&btf.enum_values("lockdown_reason"));
    ensure_tracefs()?;
    let io_uring_format = [TRACEFS, "/sys/kernel/debug/tracing"].iter().find_map(|t| {
        std::fs::read_to_string(Path::new(t).join("events/io_uring/io_uring_complete/format")).ok()
    });
    set_io_uring_complete(&mut config, io_uring_format.as_deref());
    let aya_btf =
        aya::Btf::parse_file(&btf_path, aya::Endianness::default()).map_err(|source| {
            LoadError::Object {
                source: aya::EbpfError::BtfError(source),
            }
        })?;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&aya_btf))
        .override_global(CONFIG_GLOBAL, &config, true)
        .map_max_entries(RING_CRITICAL, rings.critical_bytes)
        .map_max_entries(RING_LIFECYCLE, rings.lifecycle_bytes)
        .load(OBJECT)
        .map_err(|source| LoadError::Object { source })?;
    fill_watched_ports(&mut ebpf, &opts.watched_ports)?;
    let mut attachments: Vec<Attachment> = Vec::new();
    for spec in PROGRAMS {
        let started = std::time::Instant::now();
        let state = program_state(spec, &attachments, opts, || {
            attach_one(&mut ebpf, &aya_btf, spec, opts.cgroup2_root.as_deref())
        });
        let cost = LoadCost {
            millis: started.elapsed().as_millis(),
            verified_insns: ebpf
                .program(spec.name)
                .and_then(|p| p.info().ok())
                .and_then(|i| i.verified_instruction_count()),
        };
        log_state(spec, &state, &cost);
        attachments.push(Attachment {
            program: spec.name,
            group: spec.group,
            hook: spec.hook,
            state,
        });
    }
    let failed: Vec<String> = PROGRAMS
        .iter()
        .zip(&attachments)
        .filter_map(|(spec, a)| {
            let why = a.state.why_not().filter(|_| spec.required)?;
            Some(format!("{}: {why}", spec.name))
        })
        .collect();
    if !failed.is_empty() {
        return Err(LoadError::Required { failed });
    }
    Ok(Loaded { ebpf, attachments })
}

/// The kernel's set of watched destination ports, before any program runs.
fn fill_watched_ports(ebpf: &mut Ebpf, ports: &[u16]) -> Result<(), LoadError> {
    let Some(map) = ebpf.map_mut(WATCHED_PORTS) else {
        return Ok(());
    };
    let mut map: BpfHashMap<_, u16, u8> =
        BpfHashMap::try_from(map).map_err(|source| LoadError::WatchedPort { port: 0, source })?;
    for &port in ports {
        map.insert(port, 1, 0)
            .map_err(|source| LoadError::WatchedPort { port, source })?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("cannot register runtime binary {key:?} in the kernel map {RUNTIME_INODES}")]
pub struct RegisterError {
    key: InodeKey,
    #[source]
    source: aya::maps::MapError,
}

/// The kernel's set of container runtime binaries (write-opens of them are reported).
pub struct RuntimeInodes {
    map: BpfHashMap<aya::maps::MapData, InodeKey, u8>,
    known: std::collections::HashSet<InodeKey>,
}

impl RuntimeInodes {
    pub fn new(ebpf: &mut Ebpf) -> Option<Self> {
        let map = BpfHashMap::try_from(ebpf.take_map(RUNTIME_INODES)?).ok()?;
        Some(RuntimeInodes {
            map,
            known: std::collections::HashSet::new(),
        })
    }

    /// Register the file at `path` (no-op if known or unreadable).
    pub fn register(&mut self, path: &Path) -> Result<bool, RegisterError> {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(false);
        };
        let dev = meta.dev();
        let key = InodeKey {
            dev: kernel_dev(libc::major(dev), libc::minor(dev)),
            _pad: 0,
            ino: meta.ino(),
        };
        if !self.known.insert(key) {
            return Ok(false);
        }
        self.map
            .insert(key, 1, 0)
            .map_err(|source| RegisterError { key, source })?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
