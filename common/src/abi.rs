//! Kernel ABI constants (placeholder of the lead's tree; replaced by the full table on merge).

pub const PTRACE_POKETEXT: u64 = 4;
pub const PTRACE_POKEDATA: u64 = 5;
pub const PTRACE_POKEUSER: u64 = 6;
pub const PTRACE_ATTACH: u64 = 16;
pub const PTRACE_SEIZE: u64 = 0x4206;
pub const BPF_PROG_LOAD: u64 = 5;
pub const BPF_PROG_ATTACH: u64 = 8;
pub const BPF_RAW_TRACEPOINT_OPEN: u64 = 17;
pub const BPF_LINK_CREATE: u64 = 28;
pub const ENOENT: i64 = 2;
pub const ENODEV: i64 = 19;
pub const MS_BIND: u64 = 0x1000;
pub const MADV_DONTNEED: u64 = 4;
pub const MADV_DONTNEED_LOCKED: u64 = 24;
pub const O_WRONLY: u64 = 0o1;
pub const O_RDWR: u64 = 0o2;
