//! Child processes that cannot outlive the process that started them.
//!
//! Every control-plane component and every pod process runs under a small `sh` guard
//! whose standard input is a pipe held by us. When we close that pipe — on purpose in
//! [`Guarded::stop`], or because our process ended in any way, a panic or a SIGKILL
//! included — the guard sends SIGTERM to the component, then SIGKILL after the grace
//! period, and exits with the component's status. So no test run, however it ends,
//! leaves a kube-apiserver or etcd behind. This needs no `unsafe` (no `pre_exec`
//! with `prctl(PR_SET_PDEATHSIG)`), and the guard also survives our own thread
//! structure, which PDEATHSIG does not.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The guard. `$1` is the pid file, `$2` the grace period in seconds, the rest the
/// command. A background job's stdin is /dev/null in a non-interactive shell, so the
/// pipe is kept on fd 3 for the watcher.
const GUARD: &str = r#"
pidfile=$1; grace=$2; shift 2
exec 3<&0
"$@" </dev/null 3<&- &
child=$!
echo "$child" > "$pidfile"
(
  read -r _ <&3
  kill -TERM "$child" 2>/dev/null
  ticks=$((grace * 10))
  while [ "$ticks" -gt 0 ] && kill -0 "$child" 2>/dev/null; do
    sleep 0.1; ticks=$((ticks - 1))
  done
  kill -KILL "$child" 2>/dev/null
) &
watcher=$!
exec 3<&-
wait "$child"; rc=$?
kill "$watcher" 2>/dev/null
exit "$rc"
"#;

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Clear the inherited environment first (pods see only their own variables).
    pub clear_env: bool,
    pub cwd: Option<PathBuf>,
    /// stdout and stderr, appended.
    pub log: PathBuf,
    pub grace: Duration,
}

impl ProcessSpec {
    pub fn new(program: impl Into<PathBuf>, log: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            clear_env: false,
            cwd: None,
            log: log.into(),
            grace: Duration::from_secs(5),
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// A running, guarded process.
#[derive(Debug)]
pub struct Guarded {
    name: String,
    /// `None` once handed over by [`Guarded::split`].
    guard: Option<Child>,
    lifeline: Option<ChildStdin>,
    pid: u32,
    grace: Duration,
    log: PathBuf,
}

impl Guarded {
    pub fn spawn(name: &str, spec: &ProcessSpec) -> Result<Self> {
        if let Some(parent) = spec.log.parent() {
            fs::create_dir_all(parent)?;
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&spec.log)
            .with_context(|| format!("opening log {}", spec.log.display()))?;
        let pidfile = spec.log.with_extension("pid");
        let _ = fs::remove_file(&pidfile);

        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(GUARD)
            .arg("posture-guard")
            .arg(&pidfile)
            .arg(spec.grace.as_secs().max(1).to_string())
            .arg(&spec.program)
            .args(&spec.args)
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log);
        if spec.clear_env {
            cmd.env_clear();
            cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &spec.cwd {
            cmd.current_dir(dir);
        }
        let mut guard = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({})", spec.program.display()))?;
        let lifeline = guard.stdin.take();

        // The guard writes the component's pid before anything else; wait for it so
        // callers can always name (and, in tests, check) the real process.
        let deadline = Instant::now() + Duration::from_secs(5);
        let pid = loop {
            match fs::read_to_string(&pidfile) {
                Ok(text) if text.ends_with('\n') => {
                    break text.trim().parse::<u32>().context("pid file")?;
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e).context("reading pid file"),
            }
            if let Some(status) = guard.try_wait()? {
                bail!(
                    "{name} exited at once with {status}; see {}",
                    spec.log.display()
                );
            }
            if Instant::now() > deadline {
                bail!("{name}: guard wrote no pid file within 5 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Ok(Self {
            name: name.to_owned(),
            guard: Some(guard),
            lifeline,
            pid,
            grace: spec.grace,
            log: spec.log.clone(),
        })
    }

    /// The component's own pid (not the guard's).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The guard's pid.
    pub fn guard_pid(&self) -> Option<u32> {
        self.guard.as_ref().map(Child::id)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// `Some(status)` once the component has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match &mut self.guard {
            Some(guard) => Ok(guard.try_wait()?),
            None => bail!("{} was handed over", self.name),
        }
    }

    /// SIGTERM, then SIGKILL after the grace period; returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        drop(self.lifeline.take());
        let guard = self.guard.as_mut()?;
        let deadline = Instant::now() + self.grace + Duration::from_secs(3);
        loop {
            match guard.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break,
            }
        }
        // The guard itself is stuck: kill both, the component first.
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status();
        let _ = guard.kill();
        guard.wait().ok()
    }

    /// Hands the wait over to a blocking task while keeping the means to stop.
    pub fn split(mut self) -> (Lifeline, Child) {
        let lifeline = Lifeline {
            pipe: self.lifeline.take(),
            pid: self.pid,
        };
        let guard = self.guard.take().expect("split once");
        (lifeline, guard)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if matches!(self.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// Closing the lifeline stops the process (SIGTERM, then SIGKILL after the grace).
#[derive(Debug)]
pub struct Lifeline {
    pipe: Option<ChildStdin>,
    pid: u32,
}

impl Lifeline {
    pub fn cut(&mut self) {
        drop(self.pipe.take());
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// Whether a process exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, args: &[&str]) -> ProcessSpec {
        let mut spec = ProcessSpec::new("/bin/sh", dir.join("p.log"))
            .args(["-c"])
            .args(args.iter().copied());
        spec.grace = Duration::from_secs(1);
        spec
    }

    #[test]
    fn exit_code_passes_through_the_guard() {
        let dir = tempfile::tempdir().unwrap();
        let process = Guarded::spawn("t", &spec(dir.path(), &["echo hello; exit 7"])).unwrap();
        let (_lifeline, mut child) = process.split();
        assert_eq!(child.wait().unwrap().code(), Some(7));
        assert_eq!(
            fs::read_to_string(dir.path().join("p.log")).unwrap(),
            "hello\n"
        );
    }

    #[test]
    fn cutting_the_lifeline_terminates_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = Guarded::spawn("t", &spec(dir.path(), &["exec sleep 60"])).unwrap();
        let pid = process.pid();
        assert!(is_alive(pid));
        let status = process.stop().expect("stopped");
        // sleep dies of SIGTERM: 128 + 15 as a shell reports it.
        assert_eq!(status.code(), Some(143));
        assert!(!is_alive(pid));
    }

    #[test]
    fn a_process_ignoring_sigterm_is_killed_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = Guarded::spawn(
            "t",
            &spec(dir.path(), &["trap '' TERM; while :; do sleep 0.05; done"]),
        )
        .unwrap();
        let pid = process.pid();
        let started = Instant::now();
        let status = process.stop().expect("stopped");
        assert_eq!(status.code(), Some(137));
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        assert!(!is_alive(pid));
    }
}
