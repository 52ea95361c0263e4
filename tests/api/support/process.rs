//! The real binary as a child process, for what only a process can show: its logs, and what
//! a SIGKILL leaves behind.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

/// A port that was free a moment ago (the binary cannot report the one it bound).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// `account-recovery serve` running with exactly the given environment.
pub struct ServerProcess {
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl ServerProcess {
    /// Starts the binary with `env` (and `PATH`) only.
    pub fn start(env: &HashMap<String, String>) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_account-recovery"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env)
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the binary");
        let stdout = Some(drain(child.stdout.take()));
        let stderr = Some(drain(child.stderr.take()));
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Polls `{address}/health/ready` for at most 30 s; false if it never answers 200 or the
    /// process exits.
    pub async fn wait_ready(&mut self, http: &reqwest::Client, address: &str) -> bool {
        for _ in 0..300 {
            if let Ok(res) = http.get(format!("{address}/health/ready")).send().await
                && res.status() == 200
            {
                return true;
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Stops the process with SIGTERM, waiting at most 10 s before SIGKILL.
    pub fn stop(&mut self) {
        self.signal("TERM");
        for _ in 0..200 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    /// Kills the process at once (SIGKILL: no handler runs, nothing is flushed) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status();
    }

    /// Everything the process wrote to stdout and stderr (call after it ended).
    pub fn output(&mut self) -> (String, String) {
        let read = |pipe: Option<JoinHandle<Vec<u8>>>| {
            pipe.and_then(|h| h.join().ok())
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default()
        };
        (read(self.stdout.take()), read(self.stderr.take()))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Reads a pipe to its end on a thread, so the child never blocks on a full pipe.
fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut out);
        }
        out
    })
}
