//! The whole system on this machine, from the binary: the simulators in this process, Azurite
//! (when installed) for the state, an app folder staged from the repository, and this very
//! binary spawned as the custom handler by the fake Functions host, as Azure would start it.

use crate::adapters::logs::STREAM_COLUMNS;
use anyhow::{Context, bail};
use dss_fake_host::azurite::Azurite;
use dss_fake_host::{FakeHost, HandlerSpec, stage_app_root};
use dss_simulators::{SimConfig, Simulators, wellknown};
use std::path::{Path, PathBuf};

/// Where the state lives.
pub enum Store {
    /// A real Table service (Azurite).
    Azurite(Azurite),
    /// Azurite is not installed: the handler keeps its state in memory.
    Memory(String),
}

/// Everything the demo started. Dropping it stops the handler and Azurite.
pub struct System {
    pub sims: Simulators,
    pub host: FakeHost,
    pub store: Store,
    /// Temp dir with the CA, the staged app and the handler log.
    pub dir: PathBuf,
    /// The handler's `WEBHOOK_SECRET` (random per run; the demo's playbook calls send it).
    pub webhook_secret: String,
}

/// The repository root (or an app folder with `tools/azurite` beside it): `--app-root`, else
/// the first ancestor of this binary holding host.json and function-defs/ (target/release/… in
/// a clone), else the current directory or its first such ancestor. Nothing of the build
/// machine is baked in: a binary copied elsewhere needs `--app-root` or to be run from a clone.
pub fn repo_root(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let is_repo = |p: &Path| p.join("host.json").is_file() && p.join("function-defs").is_dir();
    if let Some(p) = given {
        if !is_repo(p) {
            bail!(
                "--app-root {}: no host.json and function-defs/ there",
                p.display()
            );
        }
        return Ok(p.to_path_buf());
    }
    let find = |start: &Path| {
        start
            .ancestors()
            .find(|p| is_repo(p))
            .map(Path::to_path_buf)
    };
    let exe = std::env::current_exe().context("cannot find this binary's path")?;
    let from_exe = exe.parent().and_then(find);
    let from_cwd = || std::env::current_dir().ok().as_deref().and_then(find);
    from_exe.or_else(from_cwd).context(
        "cannot find the repository (host.json + function-defs/) above this binary or the \
         current directory; run from a clone or pass --app-root",
    )
}

/// The simulators' config: the Logs stream takes exactly the columns the handler writes (the
/// DCR's columns), so a drifting row is refused. Shared with the end-to-end tests.
pub fn sim_config() -> SimConfig {
    let columns: Vec<&str> = STREAM_COLUMNS.iter().map(|(name, _)| *name).collect();
    SimConfig::default().with_stream(wellknown::STREAM_NAME, &columns)
}

/// How the fake host starts `exe` as the handler in the staged `app`: a clean environment with
/// every setting pointing at `sims` (whose CA is in the file `ca`), the state `storage` setting,
/// and webhook authentication off. Shared with the end-to-end tests.
pub fn handler_spec(
    exe: PathBuf,
    app: &Path,
    sims: &Simulators,
    ca: &Path,
    storage: (&str, String),
) -> HandlerSpec {
    let mut spec = HandlerSpec::new(exe, app, app);
    spec.clear_env = true;
    spec.env
        .insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    for (k, v) in sims.handler_env(&ca.to_string_lossy()) {
        spec.env.insert(k, v);
    }
    spec.env.insert(storage.0.into(), storage.1);
    for (k, v) in [
        ("WEBHOOK_AUTH", "none"),
        ("DEFENDER_SYNC_SCHEDULE", "0 */5 * * * *"),
        ("FUNCTIONS_WORKER_RUNTIME", "custom"),
    ] {
        spec.env.insert(k.into(), v.into());
    }
    spec
}

fn start_store(repo: &Path) -> Store {
    match dss_fake_host::azurite::binary(repo, "azurite-table") {
        Ok(_) => match Azurite::start(repo) {
            Ok(a) => Store::Azurite(a),
            Err(e) => Store::Memory(format!("Azurite did not start ({e:#})")),
        },
        Err(e) => Store::Memory(format!("{e:#}")),
    }
}

impl System {
    /// Starts everything; `dir` must exist (a temp dir the caller owns).
    pub async fn start(repo: &Path, dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(repo, dir, sim_config(), &[]).await
    }

    /// As [`System::start`], with these simulators and extra handler settings.
    pub async fn start_with(
        repo: &Path,
        dir: &Path,
        cfg: SimConfig,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let sims = Simulators::start(cfg)
            .await
            .context("the simulators did not start")?;
        let ca = dir.join("sim-ca.pem");
        std::fs::write(&ca, sims.cert_pem()).context("cannot write the simulator CA")?;
        let store = start_store(repo);
        let app = dir.join("app");
        std::fs::create_dir_all(&app)?;
        stage_app_root(&app, &repo.join("host.json"), &repo.join("function-defs"))
            .context("cannot stage the app folder")?;
        let exe = std::env::current_exe().context("cannot find this binary's path")?;
        let storage = match &store {
            Store::Azurite(a) => ("AzureWebJobsStorage", a.connection_string()),
            Store::Memory(_) => ("SYNC_STATE_STORE", "memory".to_owned()),
        };
        let mut spec = handler_spec(exe, &app, &sims, &ca, storage);
        for (k, v) in env {
            spec.env.insert((*k).to_owned(), (*v).to_owned());
        }
        // The demo's webhook is authenticated (the shared secret), so its hostile call is real.
        let webhook_secret = format!("demo-{}", uuid::Uuid::new_v4().simple());
        spec.env.remove("WEBHOOK_AUTH");
        spec.env
            .insert("WEBHOOK_SECRET".into(), webhook_secret.clone());
        let host = FakeHost::start(spec)
            .await
            .context("the handler did not start under the fake host")?;
        Ok(Self {
            sims,
            host,
            store,
            dir: dir.to_path_buf(),
            webhook_secret,
        })
    }

    /// Path of the handler's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("handler.log")
    }

    /// Writes everything the handler printed so far to [`Self::log_path`].
    pub fn save_log(&self) -> std::io::Result<()> {
        let out = self.host.output();
        let mut text = out.stdout.join("\n");
        if !out.stderr.is_empty() {
            text.push_str("\n--- stderr ---\n");
            text.push_str(&out.stderr.join("\n"));
        }
        text.push('\n');
        std::fs::write(self.log_path(), text)
    }
}
