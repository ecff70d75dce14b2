//! `sweep run FILE --set train.epochs=3`: settings given on the command line, written into the
//! sweep file's text before it is validated, so that each is checked as the file's own keys are,
//! and stored with the file in the tracker (the workers, which read the sweep back from there,
//! see them too). Problems on a line a flag wrote name the flag; every other problem keeps its
//! place in the file as written.

use std::path::Path;

use toml_edit::DocumentMut;

use super::{Located, SECTIONS, SpecError, SweepSpec, parse};

/// One `--set KEY=VALUE`: the setting's section and key, and its value as TOML (a bare word that
/// is no TOML value, `adam` or a path, is a string).
#[derive(Debug, Clone)]
struct Setting {
    flag: String,
    section: String,
    key: String,
    value: toml_edit::Value,
}

fn parse_flag(flag: &str) -> Result<Setting, String> {
    let (dotted, value) = flag.split_once('=').ok_or("expected KEY=VALUE, e.g. --set train.epochs=3")?;
    let (section, key) = dotted
        .trim()
        .split_once('.')
        .filter(|(s, k)| SECTIONS.contains(s) && !k.is_empty() && !k.contains('.'))
        .ok_or_else(|| format!("{dotted} is no setting: settings are {}.<key> (README: Settings)", SECTIONS.join(".<key>, ")))?;
    let value = value.trim();
    let value = value.parse::<toml_edit::Value>().unwrap_or_else(|_| toml_edit::Value::from(value));
    Ok(Setting { flag: flag.to_string(), section: section.to_string(), key: key.to_string(), value })
}

/// `text` (the sweep file at `path`) with `flags` applied: the file's own value of each key
/// replaced, or the key added to its section (the section added when the file has none), and a
/// comment saying which flags changed the file.
pub fn apply(text: &str, path: &Path, flags: &[String]) -> Result<SweepSpec, SpecError> {
    if flags.is_empty() {
        return parse(text, path);
    }
    let flag_error = |flag: &str, message: String| Located { file: format!("--set {flag}"), line: 0, column: 0, message };
    let mut problems = Vec::new();
    let settings: Vec<Setting> = flags.iter().filter_map(|f| parse_flag(f).map_err(|m| problems.push(flag_error(f, m))).ok()).collect();
    if !problems.is_empty() {
        return Err(SpecError { problems });
    }
    // A file that is no TOML is the file's problem, reported as such.
    let mut doc: DocumentMut = match text.parse() {
        Ok(doc) => doc,
        Err(_) => return parse(text, path),
    };
    let swept = |dotted: &str| doc.get("parameters").and_then(|p| p.as_table_like()).is_some_and(|p| p.contains_key(dotted));
    for s in &settings {
        let dotted = format!("{}.{}", s.section, s.key);
        if swept(&dotted) {
            problems.push(flag_error(
                &s.flag,
                format!("{dotted} is swept in [parameters] of {}; a setting is either swept or set: drop one", path.display()),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(SpecError { problems });
    }
    for s in &settings {
        if doc.get(&s.section).is_none() {
            doc.insert(&s.section, toml_edit::Item::Table(toml_edit::Table::new()));
        }
        let Some(table) = doc.get_mut(&s.section).and_then(|t| t.as_table_like_mut()) else {
            problems.push(flag_error(&s.flag, format!("[{}] of {} is not a table of settings", s.section, path.display())));
            continue;
        };
        table.insert(&s.key, toml_edit::Item::Value(s.value.clone()));
    }
    if !problems.is_empty() {
        return Err(SpecError { problems });
    }
    let note = format!("# set on the command line: {}\n", flags.iter().map(|f| format!("--set {f}")).collect::<Vec<_>>().join(" "));
    let written = format!("{note}{doc}");
    parse(&written, path).map_err(|e| relocate(e, text, &written, &settings))
}

/// Problems found in `written` (the file with the flags applied) placed where people look: on a
/// line a flag wrote, at that flag; anywhere else, at the line of the file as written (lines the
/// flags added are skipped in the count).
fn relocate(error: SpecError, original: &str, written: &str, settings: &[Setting]) -> SpecError {
    let map = line_map(original, written);
    let flag_on = |line: &str| {
        settings
            .iter()
            .find(|s| {
                let key = line.trim_start();
                key.starts_with(&s.key) && key[s.key.len()..].trim_start().starts_with('=')
            })
            .map(|s| s.flag.clone())
    };
    let problems = error
        .problems
        .into_iter()
        .map(|p| {
            let line_text = written.lines().nth(p.line.saturating_sub(1)).unwrap_or("");
            match map.get(p.line.saturating_sub(1)).copied().flatten() {
                Some(line) => Located { line, ..p },
                None => match flag_on(line_text) {
                    Some(flag) => Located { file: format!("--set {flag}"), line: 0, column: 0, message: p.message },
                    None => Located { file: "--set".into(), line: 0, column: 0, message: p.message },
                },
            }
        })
        .collect();
    SpecError { problems }
}

/// For each line of `written`, the (1-based) line of `original` it is, when it is one: the
/// longest common subsequence of the two texts' lines, so that lines the flags replaced or added
/// are skipped and every other line keeps its number.
fn line_map(original: &str, written: &str) -> Vec<Option<usize>> {
    let (a, b): (Vec<&str>, Vec<&str>) = (original.lines().collect(), written.lines().collect());
    // common[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut common = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            common[i][j] = if a[i] == b[j] { common[i + 1][j + 1] + 1 } else { common[i + 1][j].max(common[i][j + 1]) };
        }
    }
    let (mut map, mut i, mut j) = (vec![None; b.len()], 0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            map[j] = Some(i + 1);
            (i, j) = (i + 1, j + 1);
        } else if common[i + 1][j] >= common[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "name = \"s\"\nmethod = \"grid\"\n[train]\nepochs = 2\n# a comment\nbatch_size = 4\n[parameters]\n\"augment.hue_delta\" = { values = [0.0, 0.1] }\n";

    #[test]
    fn a_flag_replaces_or_adds_a_setting_and_the_file_keeps_its_own_lines() {
        let spec = apply(FILE, Path::new("s.toml"), &["train.epochs=7".into(), "model.depth=3".into(), "train.optimizer=sgd".into()]).unwrap();
        assert_eq!((spec.base.train.epochs, spec.base.model.depth), (7, 3));
        assert_eq!(spec.base.train.optimizer, crate::config::OptimizerKind::Sgd, "a bare word is a string");
        assert!(spec.text.starts_with("# set on the command line: --set train.epochs=7 --set model.depth=3 --set train.optimizer=sgd\n"));
        assert!(spec.text.contains("# a comment"), "the file's formatting is kept");
        assert_eq!(spec.trials(None).iter().map(|t| t.config.train.epochs).collect::<Vec<_>>(), [7, 7]);
    }

    #[test]
    fn bad_flags_are_named_and_the_files_problems_keep_their_lines() {
        let err =
            |flags: &[&str]| apply(FILE, Path::new("s.toml"), &flags.iter().map(|f| f.to_string()).collect::<Vec<_>>()).unwrap_err().to_string();
        assert_eq!(err(&["train.epochs"]), "--set train.epochs: expected KEY=VALUE, e.g. --set train.epochs=3");
        assert!(err(&["epochs=3"]).starts_with("--set epochs=3: epochs is no setting"), "{}", err(&["epochs=3"]));
        assert_eq!(err(&["train.epochs=-1"]), "--set train.epochs=-1: train.epochs = -1 must not be negative", "checked as the file's keys are");
        assert!(err(&["train.epohcs=3"]).contains("unknown key train.epohcs (did you mean epochs?)"), "{}", err(&["train.epohcs=3"]));
        assert!(err(&["augment.hue_delta=0.2"]).contains("swept in [parameters] of s.toml"));
        // A problem of the file itself stays at its line of the file.
        let broken = FILE.replace("batch_size = 4", "batch_size = \"four\"");
        let e = apply(&broken, Path::new("s.toml"), &["train.epochs=3".into()]).unwrap_err().to_string();
        assert!(e.starts_with("s.toml:6:"), "{e}");
    }
}
