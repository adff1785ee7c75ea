//! Starts a real Azurite Table service (tests, the demo, benchmarks): explicit free loopback
//! port, telemetry off, any API version accepted; killed when dropped.
//!
//! The binary comes from `tools/azurite` of the repository (pinned in its package-lock.json):
//! run `npm ci --prefix tools/azurite` once.

use anyhow::{Context, bail};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The emulator's documented account and key.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How to start it.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// `--location <dir>` (persisted to disk); `None` = `--inMemoryPersistence`.
    pub location: Option<PathBuf>,
    /// `--cert`/`--key` PEM files: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--oauth basic`.
    pub oauth: bool,
    /// Run the combined `azurite` bin (blob and queue too, on their own free ports) instead of
    /// `azurite-table`. Needed for a graceful SIGTERM: in 3.35.0 `azurite-table` handles only
    /// SIGINT, so SIGTERM kills it before it saves its table store (autosave runs every 5 s);
    /// the combined bin shuts every service down cleanly on SIGTERM.
    pub all_services: bool,
}

/// A running Azurite Table service.
pub struct Azurite {
    child: Child,
    pub port: u16,
    https: bool,
}

/// Path of an Azurite bin (`azurite-table`, `azurite`) under the repository root `repo`, or an
/// error that says how to install it.
pub fn binary(repo: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let bin = repo.join("tools/azurite/node_modules/.bin").join(name);
    if !bin.exists() {
        bail!(
            "Azurite is not installed ({} is missing): run `npm ci --prefix tools/azurite` from the repository root",
            bin.display()
        );
    }
    Ok(bin)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Azurite {
    /// In-memory Azurite over HTTP, from the repository at `repo`.
    pub fn start(repo: &Path) -> anyhow::Result<Self> {
        Self::start_with(repo, &Options::default())
    }

    /// Azurite with options; waits until its port answers (at most 30 s).
    pub fn start_with(repo: &Path, opts: &Options) -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = Self::spawn(repo, opts, port)?;
        let mut me = Self {
            child,
            port,
            https: opts.tls.is_some(),
        };
        me.wait_ready()?;
        Ok(me)
    }

    /// Restarts Azurite on the same port (its clients keep their connection string): a graceful
    /// stop as [`Self::terminate`], then a start with `opts`. With `opts.location` and
    /// `all_services` the tables survive the restart; in memory they are lost.
    pub fn restart(&mut self, repo: &Path, opts: &Options) -> anyhow::Result<()> {
        self.stop()?;
        self.child = Self::spawn(repo, opts, self.port)?;
        self.https = opts.tls.is_some();
        self.wait_ready()
    }

    fn spawn(repo: &Path, opts: &Options, port: u16) -> anyhow::Result<Child> {
        let mut cmd = Command::new(binary(
            repo,
            if opts.all_services {
                "azurite"
            } else {
                "azurite-table"
            },
        )?);
        if opts.all_services {
            cmd.args([
                "--blobHost",
                "127.0.0.1",
                "--queueHost",
                "127.0.0.1",
                "--blobPort",
            ])
            .arg(free_port()?.to_string())
            .arg("--queuePort")
            .arg(free_port()?.to_string());
        }
        cmd.args([
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--silent",
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
        ])
        .arg(port.to_string());
        match &opts.location {
            Some(dir) => cmd.arg("--location").arg(dir),
            None => cmd.arg("--inMemoryPersistence"),
        };
        if let Some((cert, key)) = &opts.tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if opts.oauth {
            cmd.args(["--oauth", "basic"]);
        }
        // Azurite writes its debug/extent files into the cwd unless told otherwise.
        let cwd = opts.location.clone().unwrap_or_else(std::env::temp_dir);
        let child = cmd
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start Azurite")?;
        Ok(child)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    std::io::Read::read_to_string(&mut e, &mut err).ok();
                }
                bail!("Azurite exited early ({status}): {err}");
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("Azurite did not listen on port {} within 30 s", self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Path-style table endpoint of the emulator account.
    pub fn table_endpoint(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// A standard connection string with an explicit TableEndpoint.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};TableEndpoint={};",
            self.table_endpoint()
        )
    }

    /// The process id (for measurements).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Graceful stop: SIGTERM (Azurite saves its table store on exit), then wait for the exit.
    pub fn terminate(mut self) -> anyhow::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status()?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                bail!("Azurite {pid} did not exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        // Already exited after terminate(); otherwise kill our own child by its handle.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
