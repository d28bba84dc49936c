//! Standard input for `timeline -`, which reads its input twice.

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
};

use super::TimelineError;
use crate::replay::LogStream;

/// Standard input, read twice: copied into an unnamed temp file first. No name means no
/// name to predict: a file planted in /tmp is never opened, let alone overwritten, and
/// nothing is left behind when the process dies.
pub(super) struct Spool {
    paths: Vec<PathBuf>,
    stdin: Option<File>,
}

impl Spool {
    pub(super) fn new(paths: &[PathBuf], stdin: &mut dyn io::Read) -> Result<Spool, TimelineError> {
        if !paths.iter().any(|p| p == Path::new("-")) {
            return Ok(Spool {
                paths: paths.to_vec(),
                stdin: None,
            });
        }
        let dir = std::env::temp_dir();
        let mut copy = || -> io::Result<File> {
            let mut f = unnamed_temp_file(&dir)?;
            io::copy(stdin, &mut f)?;
            Ok(f)
        };
        let file = copy().map_err(|source| TimelineError::Spool {
            path: dir.clone(),
            source,
        })?;
        Ok(Spool {
            paths: paths.to_vec(),
            stdin: Some(file),
        })
    }

    pub(super) fn stream(&self, strict: bool) -> Result<LogStream, TimelineError> {
        let stream = LogStream::new(&self.paths, strict);
        match &self.stdin {
            None => Ok(stream),
            Some(f) => f
                .try_clone()
                .map(|f| stream.with_stdin(f))
                .map_err(|source| TimelineError::Spool {
                    path: std::env::temp_dir(),
                    source,
                }),
        }
    }
}

/// O_TMPFILE (0600, never linked into `dir`); where the file system lacks it, mkstemp's
/// random O_EXCL name, unlinked at once.
fn unnamed_temp_file(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmpfile = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir);
    match tmpfile {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
            let (fd, path) = nix::unistd::mkstemp(&dir.join("escapewatch-timeline-XXXXXX"))?;
            // SAFETY: mkstemp returned a new descriptor that nothing else owns.
            let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            std::fs::remove_file(path)?;
            Ok(file)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::super::{TimelineQuery, build, build_with_stdin};
    use super::*;

    /// The old spool file was `$TMPDIR/escapewatch-timeline-stdin-PID`, created with
    /// truncation: a file planted there (or the 0600 file of another run) was overwritten and
    /// then deleted.
    #[test]
    fn a_file_at_the_old_predictable_spool_path_is_not_touched() {
        let planted =
            std::env::temp_dir().join(format!("escapewatch-timeline-stdin-{}", std::process::id()));
        std::fs::write(&planted, "not yours\n").unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o600)).unwrap();
        let log = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/incident-two-containers.events.jsonl");
        let text = std::fs::read(&log).unwrap();
        let q = TimelineQuery {
            containers: vec!["host".into()],
            ..TimelineQuery::default()
        };
        let from_stdin = build_with_stdin(&[PathBuf::from("-")], &q, &mut text.as_slice()).unwrap();
        let from_file = build(&[log], &q).unwrap();
        assert_eq!(from_stdin.events_read, from_file.events_read);
        assert!(from_stdin.events_read > 0);
        assert_eq!(from_stdin.rows.len(), from_file.rows.len());
        assert_eq!(std::fs::read_to_string(&planted).unwrap(), "not yours\n");
        std::fs::remove_file(&planted).unwrap();
    }
}
