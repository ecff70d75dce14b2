//! `[program]`: a sweep of the user's own training program (W&B's `program` and `command` keys).
//! Its parameters are the program's, of any name; `[train]` keeps only `epochs` (the target told to
//! the program) and `seed`; the built-in trainer's sections are refused.

use std::path::Path;

use serde_json::{Value as Json, json};
use toml_edit::{DocumentMut, Item};

use super::{Validator, item_span};
use crate::config::ProgramConfig;
use crate::config::program::CommandError;

const PROGRAM_KEYS: &[&str] = &["command", "program", "interpreter", "workdir", "env", "timeout", "grace"];

/// The `[train]` settings a program sweep keeps: the epoch target and the seed, told to the
/// program as `SWEEP_EPOCHS` and `SWEEP_SEED`.
pub(super) const PROGRAM_TRAIN_KEYS: &[&str] = &["epochs", "seed"];

/// Whether the file sweeps a program rather than the built-in U-Net.
pub(super) fn is_program(root: &toml_edit::Table) -> bool {
    root.contains_key("program")
}

impl Validator<'_> {
    /// `[program]` as the JSON of a [`ProgramConfig`] without parameters; None (reported) when it
    /// is not one.
    pub(super) fn program(&mut self, root: &toml_edit::Table) -> Option<Json> {
        let item = root.get("program")?;
        let Some(table) = item.as_table_like() else {
            self.report(item.span(), "program must be a table: [program] command = [\"python3\", \"train.py\", \"${args}\"]".into());
            return None;
        };
        self.unknown_keys(table, "program", PROGRAM_KEYS);
        let mut config = ProgramConfig::default();
        let before = self.problems.len();
        if let Some(item) = table.get("command") {
            let words: Option<Vec<String>> = item.as_array().and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect());
            match words {
                Some(words) if !words.is_empty() => config.command = words,
                _ => self.report(
                    item.span(),
                    "program.command must be a non-empty list of strings, e.g. [\"python3\", \"train.py\", \"${args}\"] (W&B's macros: ${env}, ${interpreter}, ${program}, ${args}, ${args_no_hyphens}, ${args_json})".into(),
                ),
            }
        }
        for (key, slot) in [("program", &mut config.program), ("interpreter", &mut config.interpreter)] {
            if let Some(item) = table.get(key) {
                match item.as_str().filter(|s| !s.trim().is_empty()) {
                    Some(s) => *slot = Some(s.to_string()),
                    None => self.report(item.span(), format!("program.{key} must be a non-empty string")),
                }
            }
        }
        if let Some(item) = table.get("workdir") {
            match item.as_str().filter(|s| !s.is_empty()) {
                Some(s) => config.workdir = s.to_string(),
                None => self.report(item.span(), "program.workdir must be a directory (relative to the sweep file's)".into()),
            }
        }
        if let Some(item) = table.get("env") {
            match item.as_table_like() {
                None => self.report(item.span(), "program.env must be a table of NAME = \"value\"".into()),
                Some(env) => {
                    for (name, value) in env.iter() {
                        let at = env.key(name).and_then(|k| k.span()).or(value.span());
                        if name.starts_with("SWEEP_") {
                            self.report(
                                at,
                                format!(
                                    "program.env.{name}: SWEEP_* variables are set by the worker for each trial (README: Your own training program)"
                                ),
                            );
                        } else if name.is_empty() || name.contains('=') || name.contains('\0') {
                            self.report(at, format!("program.env: {name:?} is not an environment variable name"));
                        } else {
                            match value.as_str() {
                                Some(v) => {
                                    config.env.insert(name.to_string(), v.to_string());
                                }
                                None => self.report(value.span().or(at), format!("program.env.{name} must be a string")),
                            }
                        }
                    }
                }
            }
        }
        if let Some(t) = self.number(table, "program.", "timeout", None) {
            if t > 0.0 {
                config.timeout = Some(t);
            } else {
                self.report(table.get("timeout").and_then(Item::span), "program.timeout must be more than 0 seconds".into());
            }
        }
        if let Some(g) = self.number(table, "program.", "grace", Some(0.0)) {
            config.grace = g;
        }
        // The macros are checked now, with the parameters' names standing in for their values.
        match config.argv() {
            Ok(_) => {}
            Err(e) => {
                let at = table.get("command").and_then(Item::span).or_else(|| item_span(root, "program"));
                let hint = if e == CommandError::NoProgram && table.get("command").is_none() {
                    " (the default command is W&B's: ${env} ${interpreter} ${program} ${args}; name the program, or give command = [...])"
                } else {
                    ""
                };
                self.report(at, format!("program.command: {e}{hint}"));
            }
        }
        (self.problems.len() == before).then(|| serde_json::to_value(config).expect("a program config serialises"))
    }
}

/// The value type a program's parameter takes, from its domain: numbers for the numeric
/// distributions, anything (`Null`) for lists and fixed values.
pub(super) fn parameter_default(item: &Item) -> Json {
    match item.as_table_like().and_then(|t| t.get("distribution")).and_then(Item::as_str) {
        Some("int_uniform") => json!(0),
        Some("uniform" | "log_uniform_values" | "q_uniform") => json!(0.0),
        _ => Json::Null,
    }
}

/// The file's text with a relative `[program] workdir` (or none, meaning `.`) made absolute
/// against `dir`, the sweep file's directory, so that the workers, which read the file back from
/// the tracker wherever they run, start the program where the file's author meant. None when
/// there is nothing to change. Also checks that the directory and the program are there (an
/// error names the key of `[program]` at fault and what is wrong).
pub(super) fn anchor_workdir(text: &str, dir: &Path) -> Result<Option<String>, (&'static str, String)> {
    let Ok(mut doc) = text.parse::<DocumentMut>() else { return Ok(None) };
    let Some(table) = doc.get_mut("program").and_then(Item::as_table_like_mut) else { return Ok(None) };
    let written = table.get("workdir").and_then(Item::as_str).unwrap_or(".").to_string();
    let joined = dir.join(&written);
    let workdir = std::fs::canonicalize(&joined)
        .map_err(|e| ("workdir", format!("program.workdir = {written:?}: {} is not a directory: {e}", joined.display())))?;
    if !workdir.is_dir() {
        return Err(("workdir", format!("program.workdir = {written:?}: {} is not a directory", workdir.display())));
    }
    if let Some(program) = table.get("program").and_then(Item::as_str)
        && !workdir.join(program).exists()
    {
        return Err(("program", format!("program = {program:?}: there is no such file in {} (the program's workdir)", workdir.display())));
    }
    if Path::new(&written).is_absolute() && Path::new(&written) == workdir {
        return Ok(None);
    }
    let Some(absolute) = workdir.to_str() else {
        return Err(("workdir", format!("program.workdir: {} is not UTF-8", workdir.display())));
    };
    table.insert("workdir", toml_edit::value(absolute));
    Ok(Some(doc.to_string()))
}
