//! `[program]`: a user's own training program that a sweep runs instead of the built-in U-Net,
//! with W&B Sweeps' `command` macros. Plain values only: the worker (`runner::program`) spawns it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// W&B's default command: `${env} ${interpreter} ${program} ${args}`.
pub const DEFAULT_COMMAND: [&str; 4] = ["${env}", "${interpreter}", "${program}", "${args}"];

/// The macros a command may hold.
pub const MACROS: [&str; 6] = ["${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}", "${args_json}"];

/// How a trial of a program sweep runs: the command, where, with which environment, for how long,
/// and the trial's own values of the swept parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramConfig {
    /// The command line, macros not yet expanded (W&B's default when the file names none).
    pub command: Vec<String>,
    /// `${program}`: the script, relative to `workdir` or absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// `${interpreter}`: `python3` for a `.py` program, `bash` for `.sh`, else nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// The program's working directory; a relative one is the sweep file's directory joined
    /// with it (resolved when the file is read from disk), or the worker's.
    pub workdir: String,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Seconds one run of the program may take before it is ended and the trial failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// Seconds between SIGTERM and SIGKILL when the program is ended early.
    pub grace: f64,
    /// The trial's values of the swept parameters (and the file's `[program.params]`).
    #[serde(default)]
    pub params: BTreeMap<String, Json>,
}

impl Default for ProgramConfig {
    fn default() -> Self {
        Self {
            command: DEFAULT_COMMAND.iter().map(|s| s.to_string()).collect(),
            program: None,
            interpreter: None,
            workdir: ".".into(),
            env: BTreeMap::new(),
            timeout: None,
            grace: 10.0,
            params: BTreeMap::new(),
        }
    }
}

/// A macro a command uses that it cannot expand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{0} is not a macro; use one of {list}", list = MACROS.join(", "))]
    Unknown(String),
    #[error("${{program}} needs program = \"train.py\" in [program]")]
    NoProgram,
    #[error("{0} expands to several arguments and must be a whole element of command, not part of {1:?}")]
    NotWhole(&'static str, String),
    #[error("command is empty: name the program to run, e.g. command = [\"python3\", \"train.py\", \"${{args}}\"]")]
    Empty,
}

impl ProgramConfig {
    /// `${interpreter}`: the one given, or the one the program's extension implies.
    pub fn interpreter(&self) -> Option<String> {
        self.interpreter.clone().or_else(|| match self.program.as_deref().and_then(|p| p.rsplit_once('.')).map(|(_, ext)| ext) {
            Some("py") => Some("python3".into()),
            Some("sh") => Some("bash".into()),
            _ => None,
        })
    }

    /// The command line with every macro expanded: `${args}` is one `--key=value` argument per
    /// parameter, `${args_no_hyphens}` one `key=value` each, `${args_json}` the parameters as one
    /// JSON object; `${interpreter}` with no interpreter is left out.
    pub fn argv(&self) -> Result<Vec<String>, CommandError> {
        let mut argv = Vec::new();
        for part in &self.command {
            match part.as_str() {
                "${args}" => argv.extend(self.params.iter().map(|(k, v)| format!("--{k}={}", arg_value(v)))),
                "${args_no_hyphens}" => argv.extend(self.params.iter().map(|(k, v)| format!("{k}={}", arg_value(v)))),
                "${interpreter}" => argv.extend(self.interpreter()),
                _ => argv.push(self.expand(part)?),
            }
        }
        if argv.is_empty() {
            return Err(CommandError::Empty);
        }
        Ok(argv)
    }

    /// One element with its single-valued macros expanded.
    fn expand(&self, part: &str) -> Result<String, CommandError> {
        let mut out = String::new();
        let mut rest = part;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            let end = tail.find('}').map_or(tail.len(), |e| e + 1);
            let name = &tail[..end];
            match name {
                "${env}" => out.push_str("/usr/bin/env"),
                "${program}" => out.push_str(self.program.as_deref().ok_or(CommandError::NoProgram)?),
                "${interpreter}" => out.push_str(&self.interpreter().unwrap_or_default()),
                "${args_json}" => out.push_str(&serde_json::to_string(&self.params).expect("parameters serialise")),
                "${args}" => return Err(CommandError::NotWhole("${args}", part.to_string())),
                "${args_no_hyphens}" => return Err(CommandError::NotWhole("${args_no_hyphens}", part.to_string())),
                other => return Err(CommandError::Unknown(other.to_string())),
            }
            rest = &tail[end..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A parameter's value on a command line: a string as it is, anything else as JSON.
pub fn arg_value(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn program(command: &[&str]) -> ProgramConfig {
        ProgramConfig {
            command: command.iter().map(|s| s.to_string()).collect(),
            program: Some("train.py".into()),
            params: [("lr".to_string(), json!(0.001)), ("opt".to_string(), json!("adam")), ("flip".to_string(), json!(true))].into(),
            ..ProgramConfig::default()
        }
    }

    #[test]
    fn the_default_command_is_wandbs() {
        assert_eq!(program(&DEFAULT_COMMAND).argv().unwrap(), ["/usr/bin/env", "python3", "train.py", "--flip=true", "--lr=0.001", "--opt=adam"]);
    }

    #[test]
    fn each_macro_expands_as_wandb_documents_it() {
        let p = program(&["python", "${program}", "${args_no_hyphens}", "--config=${args_json}"]);
        assert_eq!(
            p.argv().unwrap(),
            ["python", "train.py", "flip=true", "lr=0.001", "opt=adam", r#"--config={"flip":true,"lr":0.001,"opt":"adam"}"#]
        );
        let mut no_ext = program(&["${interpreter}", "${program}"]);
        no_ext.program = Some("./train".into());
        assert_eq!(no_ext.argv().unwrap(), ["./train"], "no interpreter for a program without a known extension");
        no_ext.interpreter = Some("julia".into());
        assert_eq!(no_ext.argv().unwrap(), ["julia", "./train"]);
    }

    #[test]
    fn a_command_it_cannot_expand_says_why() {
        assert_eq!(program(&["x", "${argz}"]).argv(), Err(CommandError::Unknown("${argz}".into())));
        assert_eq!(program(&["x", "a${args}"]).argv(), Err(CommandError::NotWhole("${args}", "a${args}".into())));
        let mut p = program(&["${program}"]);
        p.program = None;
        assert_eq!(p.argv(), Err(CommandError::NoProgram));
        assert_eq!(program(&["${interpreter}"]).argv().unwrap(), ["python3"]);
        let mut p = program(&["${interpreter}"]);
        p.program = None;
        assert_eq!(p.argv(), Err(CommandError::Empty));
    }
}
