//! The run's child processes: each is started with its stdout and stderr
//! in files of the run's directory, waited for until it prints the line
//! that says it is serving, and killed (SIGKILL) and reaped when its
//! handle drops, so no process outlives the run, however the run ends.

use super::ScaleError;
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often a starting process's output is looked at.
const POLL: Duration = Duration::from_millis(10);
/// Lines of a process's log quoted when it fails to start.
const LOG_TAIL: usize = 5;

/// A child process of the run.
#[derive(Debug)]
pub struct Spawned {
    name: String,
    child: Child,
    out: PathBuf,
    log: PathBuf,
    reaped: bool,
}

impl Spawned {
    /// Starts `program` with `args`; its stdout goes to `dir/<file>.out`
    /// and its stderr to `dir/<file>.log`. `name` names it in errors.
    pub fn start<S: AsRef<OsStr>>(
        name: &str,
        file: &str,
        program: &Path,
        args: &[S],
        dir: &Path,
    ) -> Result<Spawned, ScaleError> {
        let out = dir.join(format!("{file}.out"));
        let log = dir.join(format!("{file}.log"));
        let io = |what: &str, source| ScaleError::Io {
            what: format!("{name}: {what}"),
            source,
        };
        let stdout = File::create(&out).map_err(|e| io("creating its stdout file", e))?;
        let stderr = File::create(&log).map_err(|e| io("creating its log", e))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| io(&format!("running {}", program.display()), e))?;
        Ok(Spawned {
            name: name.to_owned(),
            child,
            out,
            log,
            reaped: false,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name it was started under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until its stdout has a line starting with `prefix` and
    /// returns the rest of that line; fails if it exits first or nothing
    /// comes within `within`.
    pub async fn wait_line(
        &mut self,
        prefix: &str,
        within: Duration,
    ) -> Result<String, ScaleError> {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            let found = text
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(|rest| rest.trim().to_owned());
            if let Some(rest) = found {
                return Ok(rest);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.reaped = true;
                return Err(ScaleError::Start {
                    name: self.name.clone(),
                    why: format!("exited ({status}); its log ends: {}", self.log_tail()),
                });
            }
            if start.elapsed() > within {
                return Err(ScaleError::Start {
                    name: self.name.clone(),
                    why: format!(
                        "no {prefix:?} line within {within:?}; its log ends: {}",
                        self.log_tail()
                    ),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `kill -9`: SIGKILL, then reaps it.
    pub fn kill(&mut self) -> Result<(), ScaleError> {
        if self.reaped {
            return Ok(());
        }
        let io = |source| ScaleError::Io {
            what: format!("killing {}", self.name),
            source,
        };
        self.child.kill().map_err(io)?;
        self.child.wait().map_err(io)?;
        self.reaped = true;
        Ok(())
    }

    /// The last lines of its stderr, joined by ` | `.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL);
        lines.get(from..).unwrap_or_default().join(" | ")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_process_is_seen_serving_and_is_killed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let sh = Path::new("/bin/sh");
        let args = [
            "-c",
            "echo noise; echo 'listening on 127.0.0.1:9'; exec sleep 60",
        ];
        let mut p = Spawned::start("sleeper", "sleeper", sh, &args, dir.path()).unwrap();
        let addr = p.wait_line("listening on ", Duration::from_secs(10)).await;
        assert_eq!(addr.unwrap(), "127.0.0.1:9");
        let proc_dir = PathBuf::from(format!("/proc/{}", p.pid()));
        assert!(proc_dir.exists());
        drop(p);
        assert!(!proc_dir.exists(), "killed and reaped on drop");
    }

    #[tokio::test]
    async fn a_process_that_exits_first_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let sh = Path::new("/bin/sh");
        let args = ["-c", "echo 'address in use' >&2; exit 2"];
        let mut p = Spawned::start("bridge h1", "b1", sh, &args, dir.path()).unwrap();
        let err = p.wait_line("listening on ", Duration::from_secs(10)).await;
        let why = err.unwrap_err().to_string();
        assert!(
            why.contains("bridge h1") && why.contains("address in use"),
            "{why}"
        );
    }
}
