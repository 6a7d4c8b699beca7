//! AWS for the tests: moto in server mode (`moto[server]` from PyPI, in the test venv
//! `make pyenv` creates), on a free loopback port, seeded by `examples/aws/seed.py`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::binaries::repo_root;
use crate::ports::free_ports;

/// The test venv's python: POSTURE_PYTHON, else `$POSTURE_CACHE/venv` (default
/// `~/.cache/posture/venv`).
pub fn python() -> Result<PathBuf> {
    let path = match std::env::var_os("POSTURE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("POSTURE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/posture")
            })
            .join("venv/bin/python"),
    };
    if !path.exists() {
        bail!(
            "{} does not exist: run `make pyenv` (make test does) for moto[server]",
            path.display()
        );
    }
    Ok(path)
}

/// A moto server; killed on drop.
pub struct Moto {
    child: Child,
    pub url: String,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Result<Moto> {
        let [port] = free_ports::<1>()?;
        let child = Command::new(python()?)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting moto")?;
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("moto did not listen on {port} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(moto)
    }

    /// Seeds the demo account (`examples/aws/seed.py ARGS`), with `extra_roles` more
    /// roles to page through; returns what the script prints.
    pub fn seed(&self, args: &[&str], extra_roles: u32) -> Result<Value> {
        let out = Command::new(python()?)
            .arg(repo_root().join("examples/aws/seed.py"))
            .arg(&self.url)
            .args(args)
            .env("SEED_EXTRA_ROLES", extra_roles.to_string())
            .output()?;
        if !out.status.success() {
            bail!("seeding moto: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// The environment that points an AWS SDK at this server with moto's test keys.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
