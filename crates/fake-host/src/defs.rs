//! The app folder as the host sees it: `host.json` (which executable to start) and one folder
//! per function with its `function.json` (binding names, trigger type, HTTP methods).

use crate::FakeHostError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One function's bindings, as far as the fake host needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDef {
    pub name: String,
    /// The trigger binding: its name and type (`timerTrigger`, `httpTrigger`).
    pub trigger_name: String,
    pub trigger_type: String,
    /// Lower-case HTTP methods (HTTP triggers only).
    pub methods: Vec<String>,
    /// The HTTP route (default: the function name).
    pub route: String,
    /// Names of the output bindings (exact case): the only keys allowed in `Outputs`.
    pub outputs: Vec<String>,
    /// The raw `function.json`.
    pub json: Value,
}

impl FunctionDef {
    /// Whether this is an HTTP-triggered function.
    pub fn is_http(&self) -> bool {
        self.trigger_type.eq_ignore_ascii_case("httpTrigger")
    }

    /// Parses one `function.json`.
    pub fn parse(name: &str, text: &str) -> Result<Self, FakeHostError> {
        let bad = |m: String| FakeHostError::Definition(format!("{name}/function.json: {m}"));
        let json: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("does not parse: {e}")))?;
        let bindings = json
            .get("bindings")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no bindings array".into()))?;
        let mut trigger = None;
        let mut outputs = Vec::new();
        for b in bindings {
            let field = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_owned);
            let (Some(bname), Some(btype), Some(dir)) =
                (field("name"), field("type"), field("direction"))
            else {
                return Err(bad("a binding lacks name, type or direction".into()));
            };
            match dir.as_str() {
                "in" if btype.ends_with("Trigger") => trigger = Some((bname, btype, b.clone())),
                "out" => outputs.push(bname),
                _ => {}
            }
        }
        let (trigger_name, trigger_type, binding) =
            trigger.ok_or_else(|| bad("no trigger binding".into()))?;
        let methods = binding
            .get("methods")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    .collect()
            })
            .unwrap_or_default();
        let route = binding
            .get("route")
            .and_then(Value::as_str)
            .unwrap_or(name)
            .to_owned();
        Ok(Self {
            name: name.to_owned(),
            trigger_name,
            trigger_type,
            methods,
            route,
            outputs,
            json,
        })
    }
}

/// Reads every `<dir>/<Name>/function.json` under `dir`.
pub fn load_functions(dir: &Path) -> Result<BTreeMap<String, FunctionDef>, FakeHostError> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| FakeHostError::Definition(format!("{}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let file = entry.path().join("function.json");
        if !file.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file)
            .map_err(|e| FakeHostError::Definition(format!("{}: {e}", file.display())))?;
        out.insert(name.clone(), FunctionDef::parse(&name, &text)?);
    }
    Ok(out)
}

/// The executable `host.json` names, resolved as the host does: relative to the app root when
/// that file exists, else taken as a command on `PATH`; plus its arguments.
pub fn executable_from_host_json(app_root: &Path) -> Result<(PathBuf, Vec<String>), FakeHostError> {
    let path = app_root.join("host.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| FakeHostError::Definition(format!("{}: {e}", path.display())))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| FakeHostError::Definition(format!("host.json does not parse: {e}")))?;
    let description = json.pointer("/customHandler/description");
    let exe = description
        .and_then(|d| d.get("defaultExecutablePath"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            FakeHostError::Definition(
                "host.json lacks customHandler.description.defaultExecutablePath".into(),
            )
        })?;
    let args = description
        .and_then(|d| d.get("arguments"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let local = app_root.join(exe);
    Ok((
        if local.is_file() {
            local
        } else {
            PathBuf::from(exe)
        },
        args,
    ))
}

/// Lays out an app folder the way the deployment zip does: `host.json` at the root and each
/// function folder of `function_defs` beside it.
pub fn stage_app_root(dest: &Path, host_json: &Path, function_defs: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    std::fs::copy(host_json, dest.join("host.json"))?;
    for entry in std::fs::read_dir(function_defs)?.flatten() {
        let src = entry.path().join("function.json");
        if src.is_file() {
            let dir = dest.join(entry.file_name());
            std::fs::create_dir_all(&dir)?;
            std::fs::copy(&src, dir.join("function.json"))?;
        }
    }
    Ok(())
}
