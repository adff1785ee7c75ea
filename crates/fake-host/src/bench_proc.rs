//! Process figures and a scratch directory for the benchmark binaries (`bench_forward`,
//! `bench_webhook`), read from Linux's `/proc`.

use std::path::PathBuf;

/// The first three fields of /proc/loadavg.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A `/proc/<pid>/status` figure in kB (`"VmHWM:"`, `"VmRSS:"`).
pub fn vm_kb(pid: u32, field: &str) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Peak resident set (VmHWM) of a process, in kB.
pub fn vm_hwm_kb(pid: u32) -> std::io::Result<u64> {
    vm_kb(pid, "VmHWM:")
}

/// utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat).
pub fn cpu_seconds(pid: u32) -> std::io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(ticks / clock_ticks())
}

/// `getconf CLK_TCK` (100 on Linux x86_64).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A temporary directory removed on drop (a benchmark's app root and CA file).
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory named `<prefix>-<uuid>` under the system's temporary directory.
    pub fn new(prefix: &str) -> std::io::Result<Self> {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p)?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
