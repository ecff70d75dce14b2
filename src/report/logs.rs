//! A trial's part of the worker logs (`<runs-dir>/<sweep>/logs/*.log`: what its workers wrote to
//! standard error, warnings and panics). A worker writes [`trial_marker`] when it claims a trial,
//! so that the lines up to the next marker or the next worker start are that trial's; the
//! dashboard's trial page shows them.
//!
//! ```
//! use sweep::report::logs::{sections, trial_marker};
//! let log = format!("=== sweep run: worker 1 of sweep s started at unix time 1 ===\n{}\nwarning: slow disk\n{}\npanic: boom\n",
//!     trial_marker("s-1", 1), trial_marker("s-2", 1));
//! assert_eq!(sections(&log, "s-1"), [format!("{}\nwarning: slow disk", trial_marker("s-1", 1))]);
//! assert_eq!(sections(&log, "s-2")[0].lines().last(), Some("panic: boom"));
//! ```

use std::path::{Path, PathBuf};

/// How every marker line of a worker log begins (a worker's start, a trial's claim).
pub const MARKER: &str = "=== ";

/// The line a worker writes when it claims trial `id` (its `attempt`-th run).
pub fn trial_marker(id: &str, attempt: i64) -> String {
    format!("{MARKER}trial {id} (attempt {attempt}) claimed ===")
}

/// The parts of one log's `text` that belong to trial `id`, each from its marker to the line
/// before the next marker.
pub fn sections(text: &str, id: &str) -> Vec<String> {
    let start = format!("{MARKER}trial {id} (");
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        if line.starts_with(MARKER) {
            if let Some(lines) = current.take() {
                out.push(lines.join("\n"));
            }
            if line.starts_with(&start) {
                current = Some(vec![line]);
            }
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    out.extend(current.map(|lines| lines.join("\n")));
    out
}

/// Trial `id`'s parts of every log of sweep `sweep` under `runs_dir`, by log file (sorted).
pub fn trial_log(runs_dir: &Path, sweep: &str, id: &str) -> Vec<(PathBuf, String)> {
    let dir = runs_dir.join(sweep).join("logs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let parts = sections(&text, id);
            (!parts.is_empty()).then(|| (path, parts.join("\n")))
        })
        .collect()
}
