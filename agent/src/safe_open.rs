//! Opening files by path in directories others may write to (the log directory, a config
//! directory): never through a symbolic link an attacker planted (O_NOFOLLOW), never blocked
//! by a FIFO (O_NONBLOCK, then fstat), and created files are 0640 (before the umask).
//!
//! A refusal is an `io::Error` wrapping [`Refused`], so the callers' error enums keep naming
//! the path and the chain says why: "cannot open the event log /x for appending: it is a
//! symbolic link …".

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    path::Path,
};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// Mode of the log files the agent creates: the agent writes, its group (`adm`, a log
/// shipper) reads, others nothing — the logs name every process of every container.
pub const LOG_FILE_MODE: u32 = 0o640;

/// Why a path was not opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error(
        "it is a symbolic link (not followed: writing or reading through it could reach any file)"
    )]
    Symlink,
    #[error("it is a {0}, not a regular file")]
    NotRegular(&'static str),
}

/// Open for appending (and reading: a reopened log is checked for a partial last line),
/// created 0640 if missing.
pub fn open_append(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).create(true).append(true);
    open_checked(&mut o, path)
}

/// Create a file that must not exist yet (a temp name): `O_EXCL` with `O_NOFOLLOW` refuses
/// anything planted there, a link included.
pub fn create_new(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    open_checked(&mut o, path)
}

/// Open an existing regular file for reading.
pub fn open_read(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    open_checked(&mut o, path)
}

fn open_checked(o: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let file = o
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .mode(LOG_FILE_MODE)
        .open(path)
        .map_err(|e| {
            // ELOOP also means a loop further up the path; only a link at the end is ours
            // to name.
            if e.raw_os_error() == Some(libc::ELOOP)
                && path.symlink_metadata().is_ok_and(|m| m.is_symlink())
            {
                io::Error::other(Refused::Symlink)
            } else {
                e
            }
        })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::other(Refused::NotRegular(file_kind(kind))));
    }
    // O_NONBLOCK only kept the open from waiting on a FIFO; a regular file never blocks, but
    // leave the descriptor as a plain open would.
    let flags = oflags(&file)? - OFlag::O_NONBLOCK;
    fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&file),
        FcntlArg::F_SETFL(flags),
    )?;
    Ok(file)
}

/// The status flags of `file` (to keep O_APPEND when O_NONBLOCK is cleared).
fn oflags(file: &File) -> io::Result<OFlag> {
    let bits = fcntl(std::os::fd::AsRawFd::as_raw_fd(file), FcntlArg::F_GETFL)?;
    Ok(OFlag::from_bits_truncate(bits))
}

/// What a non-regular file is, in words.
pub fn file_kind(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_symlink() {
        "symbolic link"
    } else if kind.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// The [`Refused`] reason inside `e`, if it is one.
pub fn refusal(e: &io::Error) -> Option<&Refused> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Refused>())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ew-safe-open-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_symlink_is_refused_and_its_target_untouched() {
        let d = dir("link");
        let target = d.join("target");
        std::fs::write(&target, "precious\n").unwrap();
        let link = d.join("log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for e in [
            open_append(&link).unwrap_err(),
            open_read(&link).unwrap_err(),
            create_new(&link).unwrap_err(),
        ] {
            assert!(
                refusal(&e) == Some(&Refused::Symlink) || e.kind() == io::ErrorKind::AlreadyExists,
                "{e}"
            );
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = dir("fifo");
        let fifo = d.join("log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Without a reader a blocking open for writing would wait forever; with O_NONBLOCK
        // the read side opens at once and is refused by its type.
        let e = open_read(&fifo).unwrap_err();
        assert_eq!(refusal(&e), Some(&Refused::NotRegular("FIFO")), "{e}");
        assert!(open_append(&fifo).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn created_files_are_0640_and_not_left_nonblocking() {
        let d = dir("mode");
        let f = open_append(&d.join("log")).unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o640);
        let flags = oflags(&f).unwrap();
        assert!(flags.contains(OFlag::O_APPEND) && !flags.contains(OFlag::O_NONBLOCK));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
