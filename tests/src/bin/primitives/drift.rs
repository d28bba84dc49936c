//! Fileless execution: this static binary re-runs itself from a file with no name on disk (a
//! memfd, a deleted file through /proc/self/fd), the way in-memory droppers do.

use std::{
    ffi::CString,
    fs,
    io::Write,
    os::fd::{FromRawFd, IntoRawFd},
};

use super::fail;

/// What the re-run image does: say so and exit 0.
pub fn child() {
    println!("drift-child ran");
}

fn own_bytes() -> Vec<u8> {
    fs::read("/proc/self/exe").unwrap_or_else(|_| fail("reading /proc/self/exe"))
}

fn child_argv() -> [CString; 2] {
    [c"primitives".to_owned(), c"drift-child".to_owned()]
}

/// memfd_create, write our own image into it, exec it by `how`: `execveat` (the fd with
/// AT_EMPTY_PATH) or `fexecve` (libc's, through /proc/self/fd/N or execveat).
pub fn memfd_exec(how: &str) {
    // SAFETY: plain syscalls on owned buffers.
    let fd = unsafe { libc::memfd_create(c"payload".as_ptr(), 0) };
    if fd < 0 {
        fail("memfd_create");
    }
    // SAFETY: `fd` is ours; the File closes nothing (into_raw_fd below).
    let mut f = unsafe { fs::File::from_raw_fd(fd) };
    f.write_all(&own_bytes())
        .unwrap_or_else(|_| fail("writing the memfd"));
    let fd = f.into_raw_fd();
    let argv = child_argv();
    let argv: [*const libc::c_char; 3] = [argv[0].as_ptr(), argv[1].as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: NUL-terminated argv/envp arrays of live CStrings.
    unsafe {
        match how {
            "execveat" => {
                libc::syscall(
                    libc::SYS_execveat,
                    fd,
                    c"".as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    libc::AT_EMPTY_PATH,
                );
            }
            "fexecve" => {
                libc::fexecve(fd, argv.as_ptr(), envp.as_ptr());
            }
            _ => fail("memfd-exec: execveat or fexecve"),
        }
    }
    fail("exec of the memfd");
}

/// Copy our image to `path`, open it, delete it, and exec the open file through
/// /proc/self/fd/N: the kernel runs an inode with no link left.
pub fn deleted_exec(path: &str) {
    fs::write(path, own_bytes()).unwrap_or_else(|_| fail("writing the copy"));
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap_or_else(|_| fail("chmod of the copy"));
    let f = fs::File::open(path).unwrap_or_else(|_| fail("opening the copy"));
    fs::remove_file(path).unwrap_or_else(|_| fail("deleting the copy"));
    let fd = f.into_raw_fd();
    let proc_path = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    let argv = child_argv();
    let argv: [*const libc::c_char; 3] = [argv[0].as_ptr(), argv[1].as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: NUL-terminated argv/envp arrays of live CStrings.
    unsafe { libc::execve(proc_path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    fail("exec through /proc/self/fd");
}
