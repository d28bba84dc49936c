//! Kernel ABI constants used by the eBPF programs and the agent, each defined once under the
//! kernel's own name and grouped by the header it comes from.
//!
//! Types follow their use: values compared with syscall arguments are `u64` (the tracepoint
//! record widens every argument), errnos are positive `i64` (a syscall returns `-ENOENT`),
//! the rest take the width of the kernel field they are compared with.

// include/uapi/linux/ptrace.h

/// `ptrace(2)` request (include/uapi/linux/ptrace.h).
pub const PTRACE_POKETEXT: u64 = 4;
/// `ptrace(2)` request (include/uapi/linux/ptrace.h).
pub const PTRACE_POKEDATA: u64 = 5;
/// `ptrace(2)` request (include/uapi/linux/ptrace.h).
pub const PTRACE_POKEUSER: u64 = 6;
/// `ptrace(2)` request (include/uapi/linux/ptrace.h).
pub const PTRACE_ATTACH: u64 = 16;
/// `ptrace(2)` request (include/uapi/linux/ptrace.h).
pub const PTRACE_SEIZE: u64 = 0x4206;

// include/uapi/linux/bpf.h

/// `bpf(2)` command, `enum bpf_cmd` (include/uapi/linux/bpf.h).
pub const BPF_PROG_LOAD: u64 = 5;
/// `bpf(2)` command, `enum bpf_cmd` (include/uapi/linux/bpf.h).
pub const BPF_PROG_ATTACH: u64 = 8;
/// `bpf(2)` command, `enum bpf_cmd` (include/uapi/linux/bpf.h).
pub const BPF_RAW_TRACEPOINT_OPEN: u64 = 17;
/// `bpf(2)` command, `enum bpf_cmd` (include/uapi/linux/bpf.h).
pub const BPF_LINK_CREATE: u64 = 28;

// include/uapi/asm-generic/errno-base.h

/// Operation not permitted (include/uapi/asm-generic/errno-base.h).
pub const EPERM: i64 = 1;
/// No such file or directory (include/uapi/asm-generic/errno-base.h).
pub const ENOENT: i64 = 2;
/// I/O error (include/uapi/asm-generic/errno-base.h).
pub const EIO: i64 = 5;
/// No such device or address (include/uapi/asm-generic/errno-base.h).
pub const ENXIO: i64 = 6;
/// Permission denied (include/uapi/asm-generic/errno-base.h).
pub const EACCES: i64 = 13;
/// Bad address (include/uapi/asm-generic/errno-base.h).
pub const EFAULT: i64 = 14;
/// No such device (include/uapi/asm-generic/errno-base.h).
pub const ENODEV: i64 = 19;
/// Text file busy (include/uapi/asm-generic/errno-base.h).
pub const ETXTBSY: i64 = 26;
/// Read-only file system (include/uapi/asm-generic/errno-base.h).
pub const EROFS: i64 = 30;

// include/uapi/asm-generic/fcntl.h

/// The `dfd` that means the caller's working directory (include/uapi/linux/fcntl.h).
pub const AT_FDCWD: i32 = -100;
/// `open(2)` flag (include/uapi/asm-generic/fcntl.h).
pub const O_WRONLY: u64 = 0o1;
/// `open(2)` flag (include/uapi/asm-generic/fcntl.h).
pub const O_RDWR: u64 = 0o2;
/// `open(2)` flag (include/uapi/asm-generic/fcntl.h).
pub const O_TRUNC: u64 = 0o1000;

// include/linux/fs.h

/// `file.f_mode` bit: opened for writing (include/linux/fs.h).
pub const FMODE_WRITE: u32 = 0x2;

// include/uapi/linux/stat.h

/// File-type bits of `inode.i_mode` (include/uapi/linux/stat.h).
pub const S_IFMT: u16 = 0o170000;
/// Socket (include/uapi/linux/stat.h).
pub const S_IFSOCK: u16 = 0o140000;
/// Symbolic link (include/uapi/linux/stat.h).
pub const S_IFLNK: u16 = 0o120000;
/// Regular file (include/uapi/linux/stat.h).
pub const S_IFREG: u16 = 0o100000;
/// Block device (include/uapi/linux/stat.h).
pub const S_IFBLK: u16 = 0o060000;
/// Directory (include/uapi/linux/stat.h).
pub const S_IFDIR: u16 = 0o040000;
/// Character device (include/uapi/linux/stat.h).
pub const S_IFCHR: u16 = 0o020000;
/// FIFO (include/uapi/linux/stat.h).
pub const S_IFIFO: u16 = 0o010000;

// include/uapi/linux/magic.h

/// `super_block.s_magic` of procfs (include/uapi/linux/magic.h).
pub const PROC_SUPER_MAGIC: u32 = 0x9fa0;
/// `super_block.s_magic` of cgroup v1 (include/uapi/linux/magic.h).
pub const CGROUP_SUPER_MAGIC: u32 = 0x0027_e0eb;
/// `super_block.s_magic` of cgroup v2 (include/uapi/linux/magic.h).
pub const CGROUP2_SUPER_MAGIC: u32 = 0x6367_7270;
/// `super_block.s_magic` of sysfs (include/uapi/linux/magic.h).
pub const SYSFS_MAGIC: u32 = 0x6265_6572;
/// `super_block.s_magic` of debugfs (include/uapi/linux/magic.h).
pub const DEBUGFS_MAGIC: u32 = 0x6462_6720;
/// `super_block.s_magic` of tracefs (include/uapi/linux/magic.h).
pub const TRACEFS_MAGIC: u32 = 0x7472_6163;
/// `super_block.s_magic` of binfmt_misc (include/uapi/linux/magic.h).
pub const BINFMTFS_MAGIC: u32 = 0x4249_4e4d;
/// `super_block.s_magic` of selinuxfs (include/uapi/linux/magic.h).
pub const SELINUX_MAGIC: u32 = 0xf97c_ff8c;
/// `super_block.s_magic` of securityfs (AppArmor, IMA, EVM, lockdown; include/uapi/linux/magic.h).
pub const SECURITYFS_MAGIC: u32 = 0x7363_6673;
/// `super_block.s_magic` of smackfs (include/uapi/linux/magic.h).
pub const SMACK_MAGIC: u32 = 0x4341_5d53;
/// `super_block.s_magic` of tmpfs (include/uapi/linux/magic.h).
pub const TMPFS_MAGIC: u32 = 0x0102_1994;
/// `super_block.s_magic` of ramfs (include/uapi/linux/magic.h).
pub const RAMFS_MAGIC: u32 = 0x8584_58f6;
/// `super_block.s_magic` of hugetlbfs (include/uapi/linux/magic.h; memfd MFD_HUGETLB).
pub const HUGETLBFS_MAGIC: u32 = 0x9584_58f6;
/// `super_block.s_magic` of ext2/3/4 (include/uapi/linux/magic.h).
pub const EXT4_SUPER_MAGIC: u32 = 0x0000_ef53;
/// `super_block.s_magic` of overlayfs (include/uapi/linux/magic.h).
pub const OVERLAYFS_SUPER_MAGIC: u32 = 0x794c_7630;
/// `super_block.s_magic` of xfs (include/uapi/linux/magic.h).
pub const XFS_SUPER_MAGIC: u32 = 0x5846_5342;
/// `super_block.s_magic` of btrfs (include/uapi/linux/magic.h).
pub const BTRFS_SUPER_MAGIC: u32 = 0x9123_683e;

/// Filesystem names (as in /proc/filesystems) of the magics above.
pub const FS_MAGIC_NAMES: &[(u32, &str)] = &[
    (PROC_SUPER_MAGIC, "proc"),
    (CGROUP_SUPER_MAGIC, "cgroup"),
    (CGROUP2_SUPER_MAGIC, "cgroup2"),
    (SYSFS_MAGIC, "sysfs"),
    (DEBUGFS_MAGIC, "debugfs"),
    (TRACEFS_MAGIC, "tracefs"),
    (BINFMTFS_MAGIC, "binfmt_misc"),
    (SELINUX_MAGIC, "selinuxfs"),
    (SECURITYFS_MAGIC, "securityfs"),
    (SMACK_MAGIC, "smackfs"),
    (TMPFS_MAGIC, "tmpfs"),
    (EXT4_SUPER_MAGIC, "ext4"),
    (OVERLAYFS_SUPER_MAGIC, "overlay"),
    (XFS_SUPER_MAGIC, "xfs"),
    (BTRFS_SUPER_MAGIC, "btrfs"),
];

// include/uapi/linux/mount.h

/// `mount(2)` flag (include/uapi/linux/mount.h).
pub const MS_BIND: u64 = 0x1000;
/// `mount(2)` flag: change an existing mount, add none (include/uapi/linux/mount.h).
pub const MS_REMOUNT: u64 = 0x20;
/// `mount(2)` flag: move an existing mount (include/uapi/linux/mount.h).
pub const MS_MOVE: u64 = 0x2000;
/// `fsconfig(2)` command, `enum fsconfig_command` (include/uapi/linux/mount.h).
pub const FSCONFIG_SET_STRING: u64 = 1;

// include/uapi/linux/fs.h

/// `renameat2(2)` flag: fail if the new name exists (include/uapi/linux/fs.h).
pub const RENAME_NOREPLACE: u64 = 1 << 0;
/// `renameat2(2)` flag: swap the two names atomically (include/uapi/linux/fs.h).
pub const RENAME_EXCHANGE: u64 = 1 << 1;
/// `renameat2(2)` flag: leave a whiteout at the old name (include/uapi/linux/fs.h).
pub const RENAME_WHITEOUT: u64 = 1 << 2;

// include/uapi/asm-generic/mman-common.h

/// `madvise(2)` advice (include/uapi/asm-generic/mman-common.h).
pub const MADV_DONTNEED: u64 = 4;
/// `madvise(2)` advice (include/uapi/asm-generic/mman-common.h).
pub const MADV_FREE: u64 = 8;
/// `madvise(2)` advice, 5.18+ (include/uapi/asm-generic/mman-common.h).
pub const MADV_DONTNEED_LOCKED: u64 = 24;

// include/linux/mm.h

/// `vm_area_struct.vm_flags` bit (include/linux/mm.h).
pub const VM_WRITE: u64 = 0x2;
/// `vm_area_struct.vm_flags`: readable (include/linux/mm.h).
pub const VM_READ: u64 = 0x1;
/// `vm_area_struct.vm_flags` bit (include/linux/mm.h).
pub const VM_SHARED: u64 = 0x8;

// include/linux/mm_types.h

/// `enum fault_flag`: a write fault (include/linux/mm_types.h, unchanged since 5.x).
pub const FAULT_FLAG_WRITE: u32 = 1 << 0;
/// `enum fault_flag`: a fault on another task's mm or by GUP on behalf of a syscall
/// (FOLL_REMOTE: /proc/PID/mem, ptrace) (include/linux/mm_types.h).
pub const FAULT_FLAG_REMOTE: u32 = 1 << 7;

// include/linux/sched.h

/// `task_struct.flags` bit: a kernel thread (include/linux/sched.h).
pub const PF_KTHREAD: u32 = 0x0020_0000;

// include/linux/socket.h

/// `sockaddr.sa_family` of a Unix socket (include/linux/socket.h).
pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

// include/net/tcp_states.h

/// `sk_state` values: a socket starting an active open leaves TCP_CLOSE for TCP_SYN_SENT.
pub const TCP_SYN_SENT: i32 = 2;
pub const TCP_CLOSE: i32 = 7;

/// -EINPROGRESS (include/uapi/asm-generic/errno.h): a connect under way.
pub const EINPROGRESS: i64 = -115;

// include/uapi/linux/sched.h

/// clone/unshare/setns namespace flag (include/uapi/linux/sched.h).
pub const CLONE_NEWTIME: u64 = 0x0000_0080;
/// clone/unshare/setns namespace flag (include/uapi/linux/sched.h).
pub const CLONE_NEWNS: u64 = 0x0002_0000;
/// clone/unshare/setns namespace flag (include/uapi/linux/sched.h).
pub const CLONE_NEWCGROUP: u64 = 0x0200_0000;
/// clone/unshare/setns namespace flag (include/uapi/linux/sched.h).
pub const CLONE_NEWUTS: u64 = 0x0400_0000;
/// clone/unshare/setns namespace flag (include/uapi/linux/sched.h).
pub const CLONE_NEWIPC: u64 = 0x0800_0000;
/// clone/unshare/setns namespace flag (include/uapi/linux/sched.h).
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
/// clone/unshare/setns namespace flag (include/uapi/linux/sched.h).
pub const CLONE_NEWPID: u64 = 0x2000_0000;
/// clone/unshare/setns namespace flag (include/uapi/linux/sched.h).
pub const CLONE_NEWNET: u64 = 0x4000_0000;
/// Not a kernel name: any namespace-creating flag. CLONE_NEWTIME is left out for clone(2):
/// there its bit is CSIGNAL territory (0x80 is part of the exit signal); clone3 and unshare
/// check it apart.
pub const CLONE_NEW_MASK: u64 = CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET;

// include/linux/proc_ns.h

/// Inode number of the initial ipc namespace (include/linux/proc_ns.h).
pub const PROC_IPC_INIT_INO: u32 = 0xEFFF_FFFF;
/// Inode number of the initial uts namespace (include/linux/proc_ns.h).
pub const PROC_UTS_INIT_INO: u32 = 0xEFFF_FFFE;
/// Inode number of the initial user namespace (include/linux/proc_ns.h).
pub const PROC_USER_INIT_INO: u32 = 0xEFFF_FFFD;
/// Inode number of the initial pid namespace (include/linux/proc_ns.h).
pub const PROC_PID_INIT_INO: u32 = 0xEFFF_FFFC;
/// Inode number of the initial cgroup namespace (include/linux/proc_ns.h).
pub const PROC_CGROUP_INIT_INO: u32 = 0xEFFF_FFFB;
/// Inode number of the initial time namespace (include/linux/proc_ns.h).
pub const PROC_TIME_INIT_INO: u32 = 0xEFFF_FFFA;

// include/uapi/linux/capability.h

/// Capability bit number (include/uapi/linux/capability.h).
pub const CAP_SYS_ADMIN: u32 = 21;
/// Capability bit number, 5.8+ (include/uapi/linux/capability.h).
pub const CAP_PERFMON: u32 = 38;
/// Capability bit number, 5.8+ (include/uapi/linux/capability.h).
pub const CAP_BPF: u32 = 39;

// include/linux/kdev_t.h

/// Bits of the minor in the kernel's internal `dev_t` (include/linux/kdev_t.h).
pub const MINORBITS: u32 = 20;
/// Mask of the minor in the kernel's internal `dev_t` (include/linux/kdev_t.h).
pub const MINORMASK: u32 = (1 << MINORBITS) - 1;

/// The kernel's internal encoding of a device number, as in `inode.i_rdev` and
/// `super_block.s_dev`: `MKDEV` (include/linux/kdev_t.h). Not the userspace `st_rdev` encoding.
pub const fn kernel_dev(major: u32, minor: u32) -> u32 {
    (major << MINORBITS) | minor
}

/// The major of a kernel-encoded device number: `MAJOR` (include/linux/kdev_t.h).
pub const fn kernel_dev_major(dev: u32) -> u32 {
    dev >> MINORBITS
}

/// The minor of a kernel-encoded device number: `MINOR` (include/linux/kdev_t.h).
pub const fn kernel_dev_minor(dev: u32) -> u32 {
    dev & MINORMASK
}

// include/uapi/linux/major.h

/// Major of the memory character devices (include/uapi/linux/major.h).
pub const MEM_MAJOR: u32 = 1;
/// /dev/mem, /dev/kmem and /dev/port: char MEM_MAJOR:1, :2, :4 (`devlist` in
/// drivers/char/mem.c), kernel-encoded.
pub const MEM_DEVICES: [u32; 3] = [
    kernel_dev(MEM_MAJOR, 1),
    kernel_dev(MEM_MAJOR, 2),
    kernel_dev(MEM_MAJOR, 4),
];

/// Major of the x86 MSR character devices, /dev/cpu/N/msr (include/uapi/linux/major.h
/// `MSR_MAJOR`; arch/x86/kernel/msr.c). The minor is the CPU.
pub const MSR_MAJOR: u32 = 202;
/// Major of the x86 CPUID character devices, /dev/cpu/N/cpuid (`CPUID_MAJOR`): read-only
/// CPUID leaves, a benign look-alike of [`MSR_MAJOR`].
pub const CPUID_MAJOR: u32 = 203;

const _: () = assert!(kernel_dev_major(kernel_dev(1, 3)) == 1);
const _: () = assert!(kernel_dev_minor(kernel_dev(1, 3)) == 3);
const _: () = assert!(kernel_dev(0xfff, MINORMASK) == u32::MAX);
const _: () = assert!(
    S_IFMT & (S_IFSOCK | S_IFLNK | S_IFREG | S_IFBLK | S_IFDIR | S_IFCHR | S_IFIFO) == S_IFMT
);
const _: () = assert!(O_TRUNC & (O_WRONLY | O_RDWR) == 0);
const _: () = assert!(VM_WRITE & VM_SHARED == 0 && FAULT_FLAG_WRITE & FAULT_FLAG_REMOTE == 0);
const _: () = assert!(CLONE_NEW_MASK & CLONE_NEWTIME == 0);

/// Every magic of [`FS_MAGIC_NAMES`] appears once (a lookup takes the first).
const _: () = {
    let mut i = 0;
    while i < FS_MAGIC_NAMES.len() {
        let mut j = i + 1;
        while j < FS_MAGIC_NAMES.len() {
            assert!(FS_MAGIC_NAMES[i].0 != FS_MAGIC_NAMES[j].0);
            j += 1;
        }
        i += 1;
    }
};

// include/uapi/linux/io_uring.h

/// `enum io_uring_op`: open a file (include/uapi/linux/io_uring.h).
pub const IORING_OP_OPENAT: u8 = 18;
/// `enum io_uring_op`: open a file with `struct open_how` (include/uapi/linux/io_uring.h).
pub const IORING_OP_OPENAT2: u8 = 28;
/// `enum io_uring_op`: the write family, twins of pwritev, pwrite64 from a registered buffer,
/// pwrite64, and pwritev from registered buffers (6.15+) (include/uapi/linux/io_uring.h).
pub const IORING_OP_WRITEV: u8 = 2;
pub const IORING_OP_WRITE_FIXED: u8 = 5;
pub const IORING_OP_WRITE: u8 = 23;
pub const IORING_OP_WRITEV_FIXED: u8 = 61;
/// `enum io_uring_op`: madvise(2) (5.6+).
/// IORING_OP_CONNECT (5.5+).
pub const IORING_OP_CONNECT: u8 = 16;
pub const IORING_OP_MADVISE: u8 = 25;
/// `enum io_uring_op`: splice(2) and tee(2) (5.7 and 5.8+).
pub const IORING_OP_SPLICE: u8 = 30;
pub const IORING_OP_TEE: u8 = 33;
/// `enum io_uring_op`: renameat2(2) (5.11+) (include/uapi/linux/io_uring.h).
pub const IORING_OP_RENAMEAT: u8 = 35;
/// `io_splice.flags` bit: `splice_fd_in` is a registered (fixed) file's index, not an fd
/// (include/uapi/linux/io_uring.h).
pub const SPLICE_F_FD_IN_FIXED: u32 = 1 << 31;

// arch/x86/include/asm/thread_info.h, arch/x86/include/asm/ptrace.h,
// arch/x86/entry/syscalls/syscall_32.tbl

/// `thread_info.status` bit: a 32-bit syscall is in progress (arch/x86/include/asm/thread_info.h).
/// Set by the i386 entries (`int 0x80`, sysenter, 32-bit syscall) for the duration of the call,
/// whether the caller is a 32-bit or a 64-bit process.
pub const TS_COMPAT: u32 = 0x0002;

/// Byte offsets in x86-64 `struct pt_regs` (arch/x86/include/asm/ptrace.h, fixed by the entry
/// assembly) of the registers that carry the six arguments of an i386 syscall, in order: ebx,
/// ecx, edx, esi, edi, ebp. Only their low 32 bits are the argument.
pub const I386_SYSCALL_ARG_REGS: [usize; 6] = [40, 88, 96, 104, 112, 32];

/// Byte offsets in x86-64 `struct pt_regs` of the six arguments of a 64-bit syscall, in order:
/// rdi, rsi, rdx, r10, r8, r9 (arch/x86/entry/entry_64.S).
pub const X86_64_SYSCALL_ARG_REGS: [usize; 6] = [112, 104, 96, 56, 72, 64];

/// Byte offset in x86-64 `struct pt_regs` of `orig_ax`: the syscall number, kept for the exit.
pub const PT_REGS_ORIG_AX: usize = 120;

/// x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl) of the watched syscalls:
/// the entries of the syscall dispatchers' program arrays.
pub mod x86_64 {
    pub const WRITE: u32 = 1;
    pub const OPEN: u32 = 2;
    pub const PWRITE64: u32 = 18;
    pub const WRITEV: u32 = 20;
    pub const MADVISE: u32 = 28;
    pub const CONNECT: u32 = 42;
    pub const CLONE: u32 = 56;
    pub const RENAME: u32 = 82;
    pub const PTRACE: u32 = 101;
    pub const MOUNT: u32 = 165;
    pub const IOPL: u32 = 172;
    pub const IOPERM: u32 = 173;
    pub const INIT_MODULE: u32 = 175;
    pub const OPENAT: u32 = 257;
    pub const RENAMEAT: u32 = 264;
    pub const UNSHARE: u32 = 272;
    pub const SPLICE: u32 = 275;
    pub const TEE: u32 = 276;
    pub const PWRITEV: u32 = 296;
    pub const OPEN_BY_HANDLE_AT: u32 = 304;
    pub const KEXEC_LOAD: u32 = 246;
    pub const SETNS: u32 = 308;
    pub const PROCESS_VM_WRITEV: u32 = 311;
    pub const FINIT_MODULE: u32 = 313;
    pub const RENAMEAT2: u32 = 316;
    pub const KEXEC_FILE_LOAD: u32 = 320;
    pub const BPF: u32 = 321;
    pub const USERFAULTFD: u32 = 323;
    pub const PWRITEV2: u32 = 328;
    pub const OPEN_TREE: u32 = 428;
    pub const MOVE_MOUNT: u32 = 429;
    pub const FSOPEN: u32 = 430;
    pub const FSCONFIG: u32 = 431;
    pub const FSMOUNT: u32 = 432;
    pub const CLONE3: u32 = 435;
    pub const OPENAT2: u32 = 437;
}

/// i386 syscall numbers (arch/x86/entry/syscalls/syscall_32.tbl) of the watched syscalls: the
/// numbers a 64-bit process passes to `int 0x80`, which the per-syscall tracepoints of x86-64
/// do not report.
pub mod i386 {
    pub const WRITE: u64 = 4;
    pub const OPEN: u64 = 5;
    pub const MOUNT: u64 = 21;
    pub const PTRACE: u64 = 26;
    pub const RENAME: u64 = 38;
    pub const IOPERM: u64 = 101;
    pub const SOCKETCALL: u64 = 102;
    pub const IOPL: u64 = 110;
    pub const CLONE: u64 = 120;
    pub const INIT_MODULE: u64 = 128;
    pub const WRITEV: u64 = 146;
    pub const PWRITE64: u64 = 181;
    pub const MADVISE: u64 = 219;
    /// i386 has no kexec_file_load.
    pub const KEXEC_LOAD: u64 = 283;
    pub const OPENAT: u64 = 295;
    pub const RENAMEAT: u64 = 302;
    pub const UNSHARE: u64 = 310;
    pub const SPLICE: u64 = 313;
    pub const TEE: u64 = 315;
    pub const PWRITEV: u64 = 334;
    pub const OPEN_BY_HANDLE_AT: u64 = 342;
    pub const SETNS: u64 = 346;
    pub const PROCESS_VM_WRITEV: u64 = 348;
    pub const FINIT_MODULE: u64 = 350;
    pub const RENAMEAT2: u64 = 353;
    pub const BPF: u64 = 357;
    pub const CONNECT: u64 = 362;
    pub const USERFAULTFD: u64 = 374;
    pub const PWRITEV2: u64 = 379;
    pub const OPEN_TREE: u64 = 428;
    pub const MOVE_MOUNT: u64 = 429;
    pub const FSOPEN: u64 = 430;
    pub const FSCONFIG: u64 = 431;
    pub const FSMOUNT: u64 = 432;
    pub const CLONE3: u64 = 435;
    pub const OPENAT2: u64 = 437;
    /// `socketcall(2)` call number of connect (include/uapi/linux/net.h `SYS_CONNECT`).
    pub const SYS_CONNECT: u64 = 3;
}

#[cfg(all(test, feature = "user"))]
mod tests {
    use super::*;

    #[test]
    fn kernel_dev_round_trips() {
        for (major, minor) in [(0, 0), (1, 1), (8, 16), (259, 0), (4095, MINORMASK)] {
            let dev = kernel_dev(major, minor);
            assert_eq!(
                (kernel_dev_major(dev), kernel_dev_minor(dev)),
                (major, minor)
            );
        }
        // The encoding the eBPF side reads from inode.i_rdev: /dev/sda1 is 8:1.
        assert_eq!(kernel_dev(8, 1), 0x0080_0001);
    }

    #[test]
    fn mem_devices_are_char_1_1_2_4() {
        let split = MEM_DEVICES.map(|d| (kernel_dev_major(d), kernel_dev_minor(d)));
        assert_eq!(split, [(1, 1), (1, 2), (1, 4)]);
    }

    #[test]
    fn fs_magic_names_cover_the_classified_filesystems() {
        let name = |m: u32| {
            FS_MAGIC_NAMES
                .iter()
                .find(|(k, _)| *k == m)
                .map(|(_, n)| *n)
        };
        assert_eq!(name(PROC_SUPER_MAGIC), Some("proc"));
        assert_eq!(name(CGROUP_SUPER_MAGIC), Some("cgroup"));
        assert_eq!(name(DEBUGFS_MAGIC), Some("debugfs"));
        assert_eq!(name(TRACEFS_MAGIC), Some("tracefs"));
        assert_eq!(name(BINFMTFS_MAGIC), Some("binfmt_misc"));
        assert_eq!(name(SYSFS_MAGIC), Some("sysfs"));
        assert_eq!(name(SELINUX_MAGIC), Some("selinuxfs"));
        assert_eq!(name(SECURITYFS_MAGIC), Some("securityfs"));
        assert_eq!(name(SMACK_MAGIC), Some("smackfs"));
        assert_eq!(name(0), None);
    }
}
