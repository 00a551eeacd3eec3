//! The audit log on disk: `queen.log` in the state directory, one line per
//! event, appended and `fsync`ed by the group-commit writer
//! ([`super::durable`]), rotated by size into `queen.log.1` (newest) …
//! `queen.log.<keep>` (oldest, deleted on the next rotation).
//!
//! A crash can leave the last record torn (a write cut short: no final
//! newline, or a tail of zero bytes where the filesystem grew the file but
//! not its data). Opening finds it, cuts the file back to the last whole
//! line and says so in a log line; it never rewrites a whole line. This
//! module must never acknowledge a line it could not write: a failed append
//! cuts the file back to where the batch started and returns the error.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The active file's name.
pub(crate) const LOG_NAME: &str = "queen.log";

/// The audit files of one state directory.
#[derive(Debug)]
pub(crate) struct AuditFiles {
    dir: PathBuf,
    file: File,
    /// Bytes in the active file (all of them whole lines).
    len: u64,
    /// Rotate once the active file would grow past this.
    max_bytes: u64,
    /// Rotated files kept.
    keep: u32,
}

/// What opening found.
#[derive(Debug, Default)]
pub(crate) struct Opened {
    /// Bytes of a torn last record that were cut off.
    pub(crate) torn: u64,
}

fn path_of(dir: &Path, n: u32) -> PathBuf {
    if n == 0 {
        dir.join(LOG_NAME)
    } else {
        dir.join(format!("{LOG_NAME}.{n}"))
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

impl AuditFiles {
    /// Opens (or creates) the log in `dir`, cutting a torn last record.
    pub(crate) fn open(dir: &Path, max_bytes: u64, keep: u32) -> std::io::Result<(Self, Opened)> {
        let path = path_of(dir, 0);
        let mut file = open_append(&path)?;
        let size = file.metadata()?.len();
        let whole = whole_prefix(&mut file, size)?;
        let mut opened = Opened::default();
        if whole < size {
            file.set_len(whole)?;
            file.sync_all()?;
            opened.torn = size - whole;
        }
        let files = AuditFiles {
            dir: dir.to_path_buf(),
            file,
            len: whole,
            max_bytes: max_bytes.max(1),
            keep: keep.max(1),
        };
        Ok((files, opened))
    }

    /// The active file.
    pub(crate) fn path(&self) -> PathBuf {
        path_of(&self.dir, 0)
    }

    /// Where lines older than the active file are: `queen.log.1` … .
    pub(crate) fn older(&self) -> String {
        format!("{}.1..{}", self.path().display(), self.keep)
    }

    /// Appends `lines` (each ending in `\n`) without syncing, rotating first
    /// if they would not fit; returns the active file's length before them.
    /// On error the file is cut back to that length.
    pub(crate) fn append(&mut self, lines: &[u8]) -> std::io::Result<u64> {
        if lines.is_empty() {
            return Ok(self.len);
        }
        if self.len > 0 && self.len + lines.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let before = self.len;
        match self.file.write_all(lines) {
            Ok(()) => {
                self.len += lines.len() as u64;
                Ok(before)
            }
            Err(e) => {
                let _ = self.file.set_len(before);
                Err(e)
            }
        }
    }

    /// Makes every appended line durable.
    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Cuts the active file back to `len` bytes (lines whose batch failed
    /// further on, in the database), durably.
    pub(crate) fn cut(&mut self, len: u64) -> std::io::Result<()> {
        if len < self.len {
            self.file.set_len(len)?;
            self.file.sync_data()?;
            self.len = len;
        }
        Ok(())
    }

    /// Bytes in the active file.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.sync_all()?;
        let _ = std::fs::remove_file(path_of(&self.dir, self.keep));
        for n in (0..self.keep).rev() {
            let from = path_of(&self.dir, n);
            if from.exists() {
                std::fs::rename(&from, path_of(&self.dir, n + 1))?;
            }
        }
        self.file = open_append(&path_of(&self.dir, 0))?;
        self.len = 0;
        File::open(&self.dir)?.sync_all()
    }

    /// The last whole lines, at most `max` bytes of them, oldest first,
    /// from the active file and, if it holds less, the newest rotated one.
    pub(crate) fn tail(&self, max: usize) -> std::io::Result<Vec<String>> {
        let mut lines = tail_of(&self.path(), max)?;
        let held: usize = lines.iter().map(String::len).sum();
        if held < max {
            let mut older = tail_of(&path_of(&self.dir, 1), max - held)?;
            older.append(&mut lines);
            lines = older;
        }
        Ok(lines)
    }
}

/// The length of `file`'s prefix of whole lines: up to its last newline,
/// and nothing of a tail that is only zero bytes.
pub(crate) fn whole_prefix(file: &mut File, size: u64) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = size;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        let chunk = buf.get_mut(..n).unwrap_or(&mut []);
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The last whole lines of `path` within `max` bytes (none if it is missing).
fn tail_of(path: &Path, max: usize) -> std::io::Result<Vec<String>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    let start = size.saturating_sub(max as u64);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((size - start) as usize);
    file.read_to_end(&mut bytes)?;
    // Skip a partial first line (unless the read began at the start).
    let from = if start == 0 {
        0
    } else {
        bytes
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| i + 1)
    };
    let body = bytes.get(from..).unwrap_or(&[]);
    Ok(body
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_record_is_cut_and_whole_lines_stay() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOG_NAME), b"1 a\n2 b\n3 tor").unwrap();
        let (files, opened) = AuditFiles::open(dir.path(), 1 << 20, 4).unwrap();
        assert_eq!(opened.torn, 5);
        assert_eq!(files.len(), 8);
        assert_eq!(files.tail(1024).unwrap(), ["1 a\n", "2 b\n"]);
    }

    #[test]
    fn a_zero_filled_tail_is_torn_too() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOG_NAME), b"1 a\n\0\0\0\0").unwrap();
        let (_, opened) = AuditFiles::open(dir.path(), 1 << 20, 4).unwrap();
        assert_eq!(opened.torn, 4);
        assert_eq!(std::fs::read(dir.path().join(LOG_NAME)).unwrap(), b"1 a\n");
    }

    #[test]
    fn rotation_keeps_n_files_and_the_tail_spans_two() {
        let dir = tempfile::tempdir().unwrap();
        let (mut files, _) = AuditFiles::open(dir.path(), 20, 2).unwrap();
        for n in 0..10 {
            files.append(format!("{n} event\n").as_bytes()).unwrap();
        }
        files.sync().unwrap();
        assert!(dir.path().join("queen.log.1").exists());
        assert!(dir.path().join("queen.log.2").exists());
        assert!(!dir.path().join("queen.log.3").exists());
        let tail = files.tail(16).unwrap();
        assert_eq!(tail, ["8 event\n", "9 event\n"]);
        let tail = files.tail(1024).unwrap();
        assert!(tail.len() >= 3, "{tail:?}");
        assert_eq!(tail.last().map(String::as_str), Some("9 event\n"));
    }
}
