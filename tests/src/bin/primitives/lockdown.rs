//! What kernel lockdown guards, asked for from a container (issue K): port I/O rights (iopl,
//! ioperm), kexec, and opens of hardware files. Every call is harmless: rights granted are
//! given back at once and no port is touched; the kexec calls carry arguments the kernel
//! rejects (an undefined flag, more segments than it allows, descriptors that are not open)
//! after its permission checks and before it reads or changes anything, so no kernel is
//! loaded and a loaded crash kernel stays loaded (kexec_load with zero segments and
//! KEXEC_ON_CRASH would unload it: never made here).

use std::ffi::CString;

use super::fail;

/// Prints `what: ok` or `what: <errno text>` for a raw syscall's result.
fn report(what: &str, rc: libc::c_long) {
    if rc < 0 {
        println!("{what}: {}", std::io::Error::last_os_error());
    } else {
        println!("{what}: ok");
    }
}

/// `iopl LEVEL`: ask for I/O privilege level LEVEL, then give it back (iopl(0)).
pub fn iopl(level: &str) {
    let level: libc::c_long = level.parse().unwrap_or_else(|_| fail("level"));
    // SAFETY: iopl takes an integer; no port is accessed.
    let rc = unsafe { libc::syscall(libc::SYS_iopl, level) };
    report(&format!("iopl({level})"), rc);
    if rc == 0 {
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_iopl, 0 as libc::c_long) };
    }
}

/// `ioperm FROM NUM`: ask for NUM ports from FROM, then give them back.
pub fn ioperm(from: &str, num: &str) {
    let parse = |s: &str| {
        let s = s.trim_start_matches("0x");
        libc::c_ulong::from_str_radix(s, 16).unwrap_or_else(|_| fail("port (hex)"))
    };
    let (from, num) = (parse(from), parse(num));
    // SAFETY: ioperm takes integers; no port is accessed.
    let rc = unsafe { libc::syscall(libc::SYS_ioperm, from, num, 1 as libc::c_long) };
    report(&format!("ioperm({from:#x}, {num:#x}, 1)"), rc);
    if rc == 0 {
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_ioperm, from, num, 0 as libc::c_long) };
    }
}

/// An undefined kexec flag (neither KEXEC_ON_CRASH 0x1, PRESERVE_CONTEXT 0x2,
/// UPDATE_ELFCOREHDR 0x4, CRASH_HOTPLUG_SUPPORT 0x8, nor an architecture in 0xffff0000; for
/// kexec_file_load neither UNLOAD 0x1, ON_CRASH 0x2, NO_INITRAMFS 0x4 nor DEBUG 0x8).
const KEXEC_UNDEFINED_FLAG: libc::c_ulong = 0x8000;
/// More segments than KEXEC_SEGMENT_MAX (16).
const TOO_MANY_SEGMENTS: libc::c_ulong = 1000;

/// `kexec-load`: kexec_load(0, 1000, NULL, 0x8000), refused with EINVAL (EPERM without
/// CAP_SYS_BOOT) before anything is read.
pub fn kexec_load() {
    // SAFETY: no pointer is dereferenced: the kernel rejects the flags and the segment count
    // first.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_load,
            0 as libc::c_ulong,
            TOO_MANY_SEGMENTS,
            std::ptr::null::<u8>(),
            KEXEC_UNDEFINED_FLAG,
        )
    };
    report("kexec_load", rc);
}

/// `kexec-file-load`: kexec_file_load(-1, -1, 0, NULL, 0x8000), refused (EINVAL, EBADF, or
/// EPERM without CAP_SYS_BOOT).
pub fn kexec_file_load() {
    // SAFETY: as above: bad descriptors and an undefined flag.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            -1 as libc::c_long,
            -1 as libc::c_long,
            0 as libc::c_ulong,
            std::ptr::null::<u8>(),
            KEXEC_UNDEFINED_FLAG,
        )
    };
    report("kexec_file_load", rc);
}

/// `open PATH r|rw`: open PATH read-only or read-write and close it, reading and writing
/// nothing (a hardware file's open is the act under test; its bytes are not).
pub fn open(path: &str, mode: &str) {
    let flags = match mode {
        "r" => libc::O_RDONLY,
        "rw" => libc::O_RDWR,
        _ => fail("mode r|rw"),
    };
    let c = CString::new(path).unwrap_or_else(|_| fail("path"));
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    report(&format!("open({path}, {mode})"), libc::c_long::from(fd));
    if fd >= 0 {
        // SAFETY: our descriptor.
        unsafe { libc::close(fd) };
    }
}
