//! Commands that manage trials in the tracker: `enqueue`, `tag`, `note`, `stop`, `prune`, `resume`, `rm`.

use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};
use std::process::ExitCode;

use crate::Result;
use clap::Args;

use super::{Global, usage};
use crate::report;
use crate::store::{self, Intervened, Intervention, TrialFilter, TrialRow, TrialStatus};

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The sweep, as registered by `sweep run`.
    #[arg(value_name = "SWEEP")]
    pub sweep: String,
    /// Parameter values of the configuration to try first, e.g. train.learning_rate=0.001
    /// train.optimizer=adam; parameters not named are drawn by the sweep's sampler.
    #[arg(value_name = "KEY=VALUE", required = true, num_args = 1..)]
    pub values: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// A trial id, e.g. hue-3.
    #[arg(value_name = "TRIAL")]
    pub trial: String,
    /// name=value sets a tag (replacing its value); name= (nothing after '=') removes it. Names:
    /// letters, digits, '_', '-' and '.'; query them with --where 'tag.name = "value"'.
    #[arg(value_name = "NAME=VALUE", required = true, num_args = 1..)]
    pub tags: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NoteArgs {
    /// A trial id, e.g. hue-3.
    #[arg(value_name = "TRIAL")]
    pub trial: String,
    /// The note, replacing the trial's note; "" clears it, - reads it from standard input.
    #[arg(value_name = "TEXT", required_unless_present = "file", conflicts_with = "file")]
    pub text: Option<String>,
    /// Read the note from this file (UTF-8 text; for notes too long for a command line).
    #[arg(long, value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Trial ids, e.g. hue-3 hue-4: a queued one stops at once, a running one at its worker's
    /// next heartbeat (its last checkpoint kept); `sweep resume` continues them.
    #[arg(value_name = "TRIAL", required = true, num_args = 1..)]
    pub trials: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Trial ids, e.g. hue-3: a queued or stopped one is pruned at once, a running one at its
    /// worker's next heartbeat, its recorded epochs kept.
    #[arg(value_name = "TRIAL", required = true, num_args = 1..)]
    pub trials: Vec<String>,
    /// Why, kept as the pruning reason (`sweep show`, the dashboard).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub note: String,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Stopped trial ids, e.g. hue-3: queued again, to continue from their last checkpoint.
    #[arg(value_name = "TRIAL", required = true, num_args = 1..)]
    pub trials: Vec<String>,
}

/// The largest note taken (1 MiB): a tracker row, not a document store.
const NOTE_LIMIT: usize = 1 << 20;

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Trial ids to remove, e.g. hue-3 hue-4.
    #[arg(value_name = "TRIAL", required_unless_present = "sweep", conflicts_with = "sweep")]
    pub trials: Vec<String>,
    /// Remove this sweep's trials instead (all of them, or those of --status).
    #[arg(long)]
    pub sweep: Option<String>,
    /// With --sweep: only the trials of this status (queued, completed, failed, pruned, diverged or stopped).
    #[arg(long, requires = "sweep")]
    pub status: Option<String>,
    /// With --sweep: remove the sweep itself, with every trial and its directory <runs-dir>/SWEEP
    /// (charts and logs too); the name is free again afterwards.
    #[arg(long, requires = "sweep", conflicts_with = "status")]
    pub all: bool,
    /// Remove without asking (needed when standard input is not a terminal, e.g. in scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `name=value` as a change: `Some(value)` sets, `name=` removes.
fn tag_change(arg: &str) -> Result<(String, Option<String>)> {
    let Some((name, value)) = arg.split_once('=') else {
        return Err(usage(format!("{arg:?}: expected NAME=VALUE to set a tag, or NAME= to remove it")));
    };
    store::validate_tag_name(name)?;
    Ok((name.to_string(), (!value.is_empty()).then(|| value.to_string())))
}

/// `sweep tag TRIAL name=value...`: sets and removes tags, then prints the trial's tags.
pub fn tag(g: &Global, args: &TagArgs) -> Result<ExitCode> {
    store::validate_trial_id(&args.trial)?;
    let changes = args.tags.iter().map(|a| tag_change(a)).collect::<Result<Vec<_>>>()?;
    let mut store = g.open_store()?;
    store.tag(&args.trial, &changes)?;
    let trial = store.trial(&args.trial)?;
    // A long value is shown by its start and length (`sweep show --json` has it whole).
    let shown: std::collections::BTreeMap<String, String> = trial
        .tags
        .iter()
        .map(|(k, v)| {
            let n = v.chars().count();
            let v = if n > 80 { format!("{}... ({n} characters)", v.chars().take(60).collect::<String>()) } else { v.clone() };
            (k.clone(), v)
        })
        .collect();
    println!("{}: {}", trial.id, if shown.is_empty() { "no tags".to_string() } else { report::tags_cell(&shown) });
    Ok(ExitCode::SUCCESS)
}

/// `sweep note TRIAL TEXT`: replaces the trial's note ("" clears it).
pub fn note(g: &Global, args: &NoteArgs) -> Result<ExitCode> {
    store::validate_trial_id(&args.trial)?;
    let (text, from) = match (&args.text, &args.file) {
        (Some(dash), None) if dash == "-" => (read_note(std::io::stdin().lock()), "standard input".to_string()),
        (Some(text), None) => (Ok(text.clone().into_bytes()), String::new()),
        (_, Some(path)) => (std::fs::File::open(path).and_then(read_note), path.display().to_string()),
        (None, None) => unreachable!("clap requires TEXT or --file"),
    };
    let text = text.map_err(|e| usage(format!("reading the note from {from}: {e}")))?;
    if text.len() > NOTE_LIMIT {
        return Err(usage(format!("the note from {from} is over {NOTE_LIMIT} bytes; keep notes short and link to longer documents")));
    }
    let text = String::from_utf8(text).map_err(|_| usage(format!("the note from {from} is not UTF-8 text")))?;
    let mut store = g.open_store()?;
    store.set_note(&args.trial, Some(&text))?;
    println!("{}: {}", args.trial, if text.is_empty() { "note cleared" } else { "note set" });
    Ok(ExitCode::SUCCESS)
}

/// `sweep stop` and `sweep prune`: each trial in turn (the first that cannot be is the error,
/// after those before it were done and printed).
pub fn intervene(g: &Global, trials: &[String], intervention: &Intervention) -> Result<ExitCode> {
    for id in trials {
        store::validate_trial_id(id)?;
    }
    let mut store = g.open_store()?;
    for id in trials {
        match store.intervene(id, intervention)? {
            Intervened::Now(status) => println!("{id}: {}", status.as_str()),
            Intervened::Asked => println!("{id}: running; its worker will {} it at its next heartbeat (within seconds)", intervention.verb()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sweep resume`: queues stopped trials again.
pub fn resume(g: &Global, args: &ResumeArgs) -> Result<ExitCode> {
    for id in &args.trials {
        store::validate_trial_id(id)?;
    }
    let mut store = g.open_store()?;
    for id in &args.trials {
        store.resume(id)?;
        let trial = store.trial(id)?;
        println!(
            "{id}: queued again (from epoch {}); a running `sweep run` or `sweep worker` of sweep {} continues it, or start one",
            trial.epochs(),
            trial.sweep
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `sweep enqueue`: adds a trial with the given values, claimed before the sweep's other queued
/// trials (a running `sweep run` or `sweep worker` picks it up next); a configuration the sweep
/// already has is not added again.
pub fn enqueue(g: &Global, args: &EnqueueArgs) -> Result<ExitCode> {
    let assignments: Vec<(String, serde_json::Value)> =
        args.values.iter().map(|a| crate::study::spec::enqueue::parse_assignment(a)).collect::<Result<_, _>>().map_err(usage)?;
    let mut store = g.open_store()?;
    let info = store::find_sweep(store.as_ref(), &args.sweep)?;
    let Some(study) = crate::runner::study::Study::load(store.as_ref(), &info.name)? else {
        return Err(usage(format!("sweep {}: its recorded sweep file does not parse with this version; enqueue needs its parameters", info.name)));
    };
    let fixed = study.spec().fixed_point(&assignments).map_err(|problems| {
        let said: Vec<String> = problems.iter().map(|(k, m)| if k.is_empty() { m.clone() } else { format!("{k} {m}") }).collect();
        usage(format!("sweep enqueue {}: {}", info.name, said.join("; ")))
    })?;
    use crate::runner::study::Enqueued;
    match study.enqueue(store.as_mut(), &fixed, "sweep enqueue")? {
        Enqueued::Added(id) => {
            let params = store.trial(&id)?.params;
            println!("{id}: enqueued {}; workers claim it before the sweep's other queued trials", serde_json::json!(params));
            Ok(ExitCode::SUCCESS)
        }
        Enqueued::Exists(id) => {
            println!("{id} already has these values; nothing added");
            Ok(ExitCode::SUCCESS)
        }
        Enqueued::Exhausted => {
            Err(usage(format!("sweep {}: the sampler has no configuration with these values that the sweep does not already have", info.name)))
        }
        Enqueued::Refused(why) => Err(usage(format!("sweep {}: the configuration drawn with these values is refused: {why}", info.name))),
    }
}

/// Up to one byte past [`NOTE_LIMIT`] of `reader` (so that a larger input is seen as too large).
fn read_note(reader: impl std::io::Read) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    reader.take(NOTE_LIMIT as u64 + 1).read_to_end(&mut text)?;
    Ok(text)
}

/// `sweep rm`: removes the selected trials with their directories, after a confirmation. Running
/// trials are never removed: they are named and left; when every selected trial is running,
/// nothing is removed and the exit code is 2.
pub fn rm(g: &Global, args: &RmArgs) -> Result<ExitCode> {
    let mut store = g.open_store()?;
    if let (true, Some(sweep)) = (args.all, &args.sweep) {
        return rm_sweep(g, store.as_mut(), sweep, args.yes);
    }
    let selected = select(store.as_ref(), args)?;
    let (running, removable): (Vec<TrialRow>, Vec<TrialRow>) = selected.into_iter().partition(|t| t.status == TrialStatus::Running);
    let running_ids: Vec<&str> = running.iter().map(|t| t.id.as_str()).collect();
    if removable.is_empty() && !running.is_empty() {
        return Err(store::StoreError::Running { ids: running_ids.iter().map(|s| s.to_string()).collect() }.into());
    }
    if removable.is_empty() {
        println!("no trial to remove");
        return Ok(ExitCode::SUCCESS);
    }
    if !running.is_empty() {
        eprintln!("left {} (running: a running trial is never removed)", running_ids.join(", "));
    }
    let listing: Vec<String> = removable.iter().map(|t| format!("{} ({})", t.id, t.status.as_str())).collect();
    if !args.yes
        && !confirm(&format!(
            "remove {} and {} under {}?",
            listing.join(", "),
            if removable.len() == 1 { "its directory" } else { "their directories" },
            g.runs_dir().display()
        ))?
    {
        println!("nothing removed");
        return Ok(ExitCode::SUCCESS);
    }
    let ids: Vec<String> = removable.iter().map(|t| t.id.clone()).collect();
    let removal = crate::runner::remove::remove_trials(store.as_mut(), &g.runs_dir(), &ids)?;
    let removed: Vec<&str> = removal.removed.iter().map(|t| t.id.as_str()).collect();
    println!("removed {} trial{}: {}", removed.len(), if removed.len() == 1 { "" } else { "s" }, removed.join(", "));
    if removal.left.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for (dir, e) in &removal.left {
        eprintln!("error: {}: {e}; the trial is gone from the tracker: delete the directory by hand", dir.display());
    }
    Ok(ExitCode::from(1))
}

/// `sweep rm --sweep S --all`: the sweep with its trials and its directory.
fn rm_sweep(g: &Global, store: &mut dyn store::Store, sweep: &str, yes: bool) -> Result<ExitCode> {
    let info = store::find_sweep(store, sweep)?;
    let running = info.counts.get(TrialStatus::Running.as_str()).copied().unwrap_or(0);
    if running > 0 {
        let ids: Vec<String> = store
            .trials(&store::TrialFilter { sweep: Some(sweep.to_string()), status: Some(TrialStatus::Running) })?
            .into_iter()
            .map(|t| t.id)
            .collect();
        return Err(store::StoreError::Running { ids }.into());
    }
    let trials: i64 = info.counts.values().sum();
    let dir = g.runs_dir().join(sweep);
    if !yes && !confirm(&format!("remove sweep {sweep}, its {trials} trial(s) and {}?", dir.display()))? {
        println!("nothing removed");
        return Ok(ExitCode::SUCCESS);
    }
    let removal = crate::runner::remove::remove_sweep(store, &g.runs_dir(), sweep)?;
    println!("removed sweep {sweep} and its {} trial(s)", removal.removed.len());
    if removal.left.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for (dir, e) in &removal.left {
        eprintln!("error: {}: {e}; the sweep is gone from the tracker: delete the directory by hand", dir.display());
    }
    Ok(ExitCode::from(1))
}

/// The trials `sweep rm` names: the ids given (each must exist), or a sweep's, of a status.
fn select(store: &dyn store::Store, args: &RmArgs) -> Result<Vec<TrialRow>> {
    let Some(sweep) = &args.sweep else {
        let mut trials: Vec<TrialRow> = Vec::new();
        for id in &args.trials {
            store::validate_trial_id(id)?;
            if !trials.iter().any(|t| &t.id == id) {
                trials.push(store.trial(id)?);
            }
        }
        return Ok(trials);
    };
    store::find_sweep(store, sweep)?;
    let status = match &args.status {
        None => None,
        Some(s) if s == TrialStatus::Running.as_str() => return Err(usage("--status running: a running trial is never removed")),
        Some(s) => Some(TrialStatus::parse(s).ok_or_else(|| {
            usage(format!(
                "--status {s}: expected one of {}",
                TrialStatus::ALL.iter().filter(|s| **s != TrialStatus::Running).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?),
    };
    Ok(store.trials(&TrialFilter { sweep: Some(sweep.clone()), status })?)
}

/// Asks `question` on the terminal; true for y or yes. Without a terminal, a usage error that
/// says to pass --yes.
fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(usage(format!(
            "{question} Standard input is not a terminal, so nothing was asked and nothing removed: pass --yes to remove without asking"
        )));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
