//! Commands that read the tracker: `status`, `ls`, `show`, `best`, `compare`, `export`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::Result;
use crate::error::Context as _;
use clap::{Args, ValueEnum};

use super::{ComputeArgs, Global, usage};
use crate::config::{Goal, Objective};
use crate::export;
use crate::report::best::{BestQuery, Figures, Reevaluated};
use crate::report::{self, filter::Listing};
use crate::store::{self, TrialFilter, TrialStatus};
use crate::train::checkpoint::CheckpointKind;
use crate::train::scoring::Tta;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A sweep name (default: every sweep).
    pub sweep: Option<String>,
    /// Print JSON instead of text: one object per sweep.
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,
    /// Refresh in the terminal until Ctrl-C; ends by itself once no trial is queued or running.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between refreshes of --watch.
    #[arg(long, default_value_t = 2.0, value_name = "SECS", requires = "watch", value_parser = watch_interval)]
    pub interval: f64,
}

fn watch_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.1..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: expected seconds between 0.1 and 3600, e.g. --interval 2")),
    }
}

#[derive(Debug, Args)]
pub struct ImportanceArgs {
    /// A sweep name (default: the tracker's only sweep).
    pub sweep: Option<String>,
    /// Print JSON instead of text: the sweep, its objective and each parameter's importance.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only this sweep's trials.
    #[arg(long)]
    pub sweep: Option<String>,
    /// queued, running, completed, failed, pruned, diverged, stopped or infeasible.
    #[arg(long)]
    pub status: Option<String>,
    /// Sort by a metric (best first) or a field, e.g. val_iou or train.learning_rate.
    #[arg(long)]
    pub sort: Option<String>,
    /// A filter, e.g. "train.learning_rate < 0.01 and val_iou > 0.9" or 'tag.team = "vision"'.
    #[arg(long = "where")]
    pub filter: Option<String>,
    /// Print JSON instead of a table: every trial with its parameters, metric summaries, tags and note.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV instead of a table.
    #[arg(long)]
    pub csv: bool,
    /// One row per seed group (a configuration trained with several seeds: `repeats = N`, or a
    /// swept train.seed): the mean ± standard deviation and n of its completed trials' best
    /// objective values, ranked by the mean.
    #[arg(long, conflicts_with = "sort")]
    pub group: bool,
    /// Only the Pareto front of the listed trials, for a sweep of several [[objectives]]: the
    /// completed ones that no other listed trial matches or beats by every objective.
    #[arg(long, conflicts_with = "group")]
    pub pareto: bool,
}

#[derive(Debug, Args)]
pub struct ShowTrialArgs {
    /// A trial id, e.g. hue-3.
    #[arg(value_name = "TRIAL")]
    pub trial: String,
    /// Print JSON instead of text: the trial, its epochs and its checkpoints.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GoalArg {
    /// Higher is better.
    Max,
    /// Lower is better.
    Min,
}

#[derive(Debug, Args)]
pub struct BestArgs {
    /// loss, dice, iou or fg_iou (val_ unless --split or a split_ prefix says otherwise); default:
    /// the sweep's objective (its metric.name and goal).
    #[arg(long)]
    pub metric: Option<String>,
    /// Only this sweep's trials.
    #[arg(long)]
    pub sweep: Option<String>,
    /// train or val.
    #[arg(long)]
    pub split: Option<String>,
    /// Override the direction inferred from the name (loss: min; dice, iou, fg_iou: max).
    #[arg(long, value_enum)]
    pub goal: Option<GoalArg>,
    /// Reload the best checkpoint and evaluate it again (with several objectives and no
    /// --metric: the best checkpoint of every trial on the Pareto front).
    #[arg(long)]
    pub eval: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Two or more trial ids.
    #[arg(required = true, num_args = 2.., value_name = "TRIAL")]
    pub trials: Vec<String>,
    /// Print JSON instead of tables: the settings that differ, and each trial with its settings and metrics.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One row per trial and epoch (--out FILE or standard output).
    Csv,
    /// Every trial with its epochs (--out FILE or standard output).
    Json,
    /// To an MLflow tracking server (--to URL).
    Mlflow,
    /// TensorBoard event files under a directory (--out DIR).
    Tensorboard,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to write: csv, json, mlflow or tensorboard.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// csv, json: write this file instead of standard output; tensorboard: the log directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only this sweep's trials.
    #[arg(long)]
    pub sweep: Option<String>,
    /// mlflow: the tracking server's URL, e.g. http://127.0.0.1:5000.
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// mlflow: one experiment of this name for every exported sweep (default: one per sweep, named after it).
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
    /// mlflow: also upload each trial's best checkpoint and chart (needs a server that proxies artifacts).
    #[arg(long)]
    pub artifacts: bool,
}

/// `sweep status [SWEEP]`: counts per status, the running trials, jobs, and the best so far;
/// with `--watch`, again every `--interval` seconds (the screen cleared on a terminal) until no
/// trial is queued or running.
pub fn status(g: &Global, args: &StatusArgs) -> Result<ExitCode> {
    if !args.watch {
        return status_once(g, args).map(|_| ExitCode::SUCCESS);
    }
    let clear = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        if clear {
            print!("\x1b[2J\x1b[H");
        }
        let active = status_once(g, args)?;
        if active == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        println!("({active} trial(s) queued or running; refreshing every {}s, Ctrl-C to stop)", args.interval);
        let _ = std::io::stdout().flush();
        std::thread::sleep(std::time::Duration::from_secs_f64(args.interval));
    }
}

/// Prints the status once; returns how many trials are queued or running.
fn status_once(g: &Global, args: &StatusArgs) -> Result<usize> {
    let store = g.open_store()?;
    let mut active = 0;
    let selected = match &args.sweep {
        Some(name) => vec![store::find_sweep(store.as_ref(), name)?],
        None => store.sweeps()?,
    };
    if selected.is_empty() && !args.json {
        println!("no sweep in {} yet", store.location());
    }
    let now = crate::util::now_unix();
    let mut json = Vec::new();
    for sweep in selected {
        let runs = store.trials(&TrialFilter { sweep: Some(sweep.name.clone()), status: None })?;
        active += runs.iter().filter(|r| matches!(r.status, TrialStatus::Queued | TrialStatus::Running)).count();
        let objective = report::sweep_objective(store.as_ref(), &sweep)?;
        if args.json {
            json.push(status_json(&sweep, &runs, &objective, &store.jobs(Some(&sweep.name))?));
            continue;
        }
        let jobs: Vec<String> = store.jobs(Some(&sweep.name))?.iter().map(|job| crate::runner::slurm::describe(&job.job_id)).collect();
        println!("{}", report::sweep_status(&sweep, &runs, &objective, &jobs, now));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(active)
}

/// `sweep status --json`'s object for one sweep: its counts, running trials, best so far and jobs.
fn status_json(sweep: &store::SweepInfo, runs: &[store::TrialRow], objective: &Objective, jobs: &[store::JobRow]) -> serde_json::Value {
    let running: Vec<&str> = runs.iter().filter(|r| r.status == TrialStatus::Running).map(|r| r.id.as_str()).collect();
    let best = report::best_so_far(runs, objective)
        .map(|(r, value, epoch)| serde_json::json!({"run": r.id, "value": report::json_number(value), "epoch": epoch, "params": r.params}));
    serde_json::json!({
        "sweep": sweep.name,
        "created": sweep.created,
        "updated": sweep.updated,
        "trials": runs.len(),
        "counts": sweep.counts,
        "running": running,
        "objective": {"metric": objective.name, "goal": objective.goal.as_str()},
        "best": best,
        "jobs": jobs,
    })
}

/// `sweep ls`: the trials that match, sorted, as a table, CSV or JSON.
pub fn ls(g: &Global, args: &LsArgs) -> Result<ExitCode> {
    let store = g.open_store()?;
    let status = match &args.status {
        Some(s) => Some(
            TrialStatus::parse(s)
                .ok_or_else(|| usage(format!("--status {s}: expected one of {}", TrialStatus::ALL.map(|s| s.as_str()).join(", "))))?,
        ),
        None => None,
    };
    if let Some(s) = &args.sweep {
        store::find_sweep(store.as_ref(), s)?;
    }
    let listing = Listing { sweep: args.sweep.clone(), status, filter: args.filter.as_deref(), sort: args.sort.as_deref() };
    let mut runs = report::filter::list(store.as_ref(), &listing)?;
    if args.pareto {
        let query = report::best::BestQuery { sweep: args.sweep.as_deref(), ..Default::default() };
        let Some(objectives) = report::best::front_objectives(store.as_ref(), &query)? else {
            return Err(usage(
                "--pareto lists the trials no other beats by every objective, and this sweep follows one: give it several [[objectives]], or use sweep best",
            ));
        };
        let front = report::front::front_of(&runs, &objectives, args.sweep.as_deref());
        let on_front: std::collections::HashSet<String> = front.members.into_iter().map(|m| m.trial.id).collect();
        runs.retain(|r| on_front.contains(&r.id));
    }
    let mut out = std::io::stdout().lock();
    if args.group {
        return ls_groups(store.as_ref(), args, &runs, &mut out);
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&runs)?)?;
    } else if args.csv {
        write!(out, "{}", report::trials_csv(&runs))?;
    } else if runs.is_empty() {
        writeln!(out, "no runs match")?;
    } else {
        write!(out, "{}", report::trials_table(&runs))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `sweep ls --group`: the listed trials' seed groups, ranked by their mean objective (the
/// sweep's own objective, so the trials must be of one sweep).
fn ls_groups(store: &dyn store::Store, args: &LsArgs, runs: &[store::TrialRow], out: &mut dyn std::io::Write) -> Result<ExitCode> {
    let sweeps: std::collections::BTreeSet<&str> = runs.iter().map(|r| r.sweep.as_str()).collect();
    let sweep = match (&args.sweep, sweeps.len()) {
        (Some(sweep), _) => sweep.clone(),
        (None, 0) => {
            writeln!(out, "no runs match")?;
            return Ok(ExitCode::SUCCESS);
        }
        (None, 1) => sweeps.first().map(|s| s.to_string()).unwrap_or_default(),
        (None, _) => {
            let names: Vec<&str> = sweeps.into_iter().collect();
            return Err(usage(format!("--group ranks by a sweep's objective, and these trials are of {}: name one with --sweep", names.join(", "))));
        }
    };
    let objective = report::sweep_objective(store, &store::find_sweep(store, &sweep)?)?;
    let groups = store::rank_groups(runs, &objective.name, objective.goal);
    if args.json {
        let doc = serde_json::json!({"sweep": sweep, "metric": objective.name, "goal": objective.goal.as_str(), "groups": groups});
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else if args.csv {
        write!(out, "{}", report::groups_csv(&groups, &objective.name))?;
    } else if groups.is_empty() {
        writeln!(out, "no runs match")?;
    } else {
        write!(out, "{}", report::groups_table(&groups, &objective.name))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `sweep show TRIAL`: one trial's settings, epochs, checkpoints and error.
pub fn show(g: &Global, args: &ShowTrialArgs) -> Result<ExitCode> {
    store::validate_trial_id(&args.trial)?;
    let store = g.open_store()?;
    let trial = store.trial_data_of(&args.trial, store::Detail { metrics: true, checkpoints: true, settings: false })?;
    let config = store.trial_config(&args.trial)?;
    if args.json {
        let mut v = export::table::json(std::slice::from_ref(&trial)).as_array_mut().and_then(|a| a.pop()).unwrap_or_default();
        v["objective"] = serde_json::json!({"metric": config.metric.name, "goal": config.metric.goal.as_str()});
        // Its seed group, among every trial of its sweep (not only this one).
        let siblings = store.trials(&store::TrialFilter { sweep: Some(trial.row.sweep.clone()), status: None })?;
        match report::group_ids(&siblings).remove(&trial.row.id) {
            Some(group) => v["group"] = group.into(),
            None => {
                v.as_object_mut().map(|o| o.remove("group"));
            }
        }
        v["checkpoints"] = serde_json::to_value(&trial.checkpoints)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", report::show_trial(&trial.row, &trial.metrics, &trial.checkpoints, &config.metric));
    Ok(ExitCode::SUCCESS)
}

/// `sweep best`: the best trial by a metric (the sweep's objective unless `--metric` names
/// another), optionally re-evaluated from its checkpoint.
pub fn best(g: &Global, args: &BestArgs) -> Result<ExitCode> {
    let store = g.open_store()?;
    let goal = args.goal.map(|g| match g {
        GoalArg::Max => Goal::Maximize,
        GoalArg::Min => Goal::Minimize,
    });
    let query = BestQuery { sweep: args.sweep.as_deref(), metric: args.metric.as_deref(), split: args.split.as_deref(), goal };
    if let Some(objectives) = report::best::front_objectives(store.as_ref(), &query)? {
        let front = report::front::front(store.as_ref(), query.sweep, &objectives)?;
        // --eval: every member's best checkpoint (its followed metric's best epoch), evaluated
        // again; a member whose checkpoint cannot be read fails the command, naming it.
        let evals = if args.eval && !front.members.is_empty() {
            let device = args.compute.open()?;
            let mut evals = Vec::with_capacity(front.members.len());
            for m in &front.members {
                let e = reevaluate(g, &m.trial, CheckpointKind::Best, &device).with_context(|| format!("--eval of front member {}", m.trial.id))?;
                evals.push(e);
            }
            Some(evals)
        } else {
            None
        };
        if args.json {
            crate::outln!("{}", serde_json::to_string_pretty(&front.json(evals.as_deref()))?);
        } else {
            crate::outln!("{}", front.text(evals.as_deref()).trim_end());
        }
        if front.members.is_empty() {
            return Err(crate::Error::Other(front.none_reason()));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let best = report::best::best(store.as_ref(), &query)?;
    let Some(found) = &best.found else {
        if args.json {
            // Scripts read standard output: a document that says so, then the same exit code.
            crate::outln!("{}", serde_json::to_string_pretty(&best.json(None))?);
        }
        return Err(crate::Error::Other(best.none_reason()));
    };
    let evaluation = if args.eval {
        let device = args.compute.open()?;
        Some(reevaluate(g, &found.trial, CheckpointKind::parse(found.holding).unwrap_or(CheckpointKind::Best), &device)?)
    } else {
        None
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&best.json(evaluation.as_ref()))?);
    } else {
        print!("{}", best.text(evaluation.as_ref()));
    }
    Ok(ExitCode::SUCCESS)
}

/// A trial's `kind` checkpoint evaluated again on the validation split, at the training
/// resolution and at each image's own size.
fn reevaluate(g: &Global, trial: &store::TrialRow, kind: CheckpointKind, device: &burn::tensor::Device) -> Result<Reevaluated> {
    let run_dir = crate::train::checkpoint::TrialDir::of(&g.runs_dir(), &trial.sweep, &trial.id);
    let e = crate::train::predict::evaluate_checkpoint(&run_dir, kind, &g.runs_dir(), None, Tta::None, device)?;
    let m = &e.metrics;
    let figures = |f: crate::train::metrics::FullMetrics| Figures { dice: f.dice, iou: f.iou, fg_iou: f.fg_iou };
    Ok(Reevaluated {
        epoch: e.epoch as i64,
        loss: m.loss,
        dice: m.dice,
        iou: m.iou,
        fg_iou: m.fg_iou,
        full: figures(e.full.metrics()),
        full_mean_per_image: figures(e.full.image_mean()),
    })
}

/// `sweep compare TRIAL TRIAL...`: the settings that differ, then the metrics.
pub fn compare(g: &Global, args: &CompareArgs) -> Result<ExitCode> {
    let store = g.open_store()?;
    let runs: Vec<_> = args
        .trials
        .iter()
        .map(|id| {
            store::validate_trial_id(id)?;
            let mut run = store.trial(id)?;
            run.settings = store::settings_of(&store.trial_config(id)?);
            Ok::<_, store::StoreError>(run)
        })
        .collect::<Result<_, _>>()?;
    if args.json {
        let v = serde_json::json!({"differing": report::differing_settings(&runs), "trials": runs});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", report::compare(&runs));
    Ok(ExitCode::SUCCESS)
}

/// `sweep export`: every trial with its per-epoch metrics, as CSV or JSON, to an MLflow server or
/// as TensorBoard event files.
pub fn export(g: &Global, args: &ExportArgs) -> Result<ExitCode> {
    check_export_flags(args)?;
    match args.format {
        ExportFormat::Csv | ExportFormat::Json => export_file(g, args),
        ExportFormat::Mlflow => export_mlflow(g, args),
        ExportFormat::Tensorboard => export_tensorboard(g, args),
    }
}

/// CSV or JSON, to a file or standard output.
fn export_file(g: &Global, args: &ExportArgs) -> Result<ExitCode> {
    let store = g.open_store()?;
    if let Some(s) = &args.sweep {
        store::find_sweep(store.as_ref(), s)?;
    }
    let trials = store.trial_data(&TrialFilter { sweep: args.sweep.clone(), status: None }, store::Detail::METRICS)?;
    let text = if args.format == ExportFormat::Csv {
        export::table::csv(&trials)
    } else {
        format!("{}\n", serde_json::to_string_pretty(&export::table::json(&trials))?)
    };
    match &args.out {
        Some(path) => {
            crate::util::atomic_write(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} runs to {}", trials.len(), path.display());
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Each export flag with the formats it belongs to.
fn check_export_flags(args: &ExportArgs) -> Result<()> {
    let format = args.format.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
    let mlflow = args.format == ExportFormat::Mlflow;
    for (given, flag) in [(args.to.is_some(), "--to"), (args.experiment.is_some(), "--experiment"), (args.artifacts, "--artifacts")] {
        if given && !mlflow {
            return Err(usage(format!("{flag} is for --format mlflow, not --format {format}")));
        }
    }
    if args.experiment.as_deref().is_some_and(|e| e.trim().is_empty()) {
        return Err(usage("--experiment needs a name (MLflow refuses an empty one); leave it out for one experiment per sweep"));
    }
    if mlflow && args.to.is_none() {
        return Err(usage("--format mlflow needs --to URL, the tracking server (e.g. --to http://127.0.0.1:5000)"));
    }
    if mlflow && args.out.is_some() {
        return Err(usage("--out is not for --format mlflow; the trials go to the server given by --to"));
    }
    if args.format == ExportFormat::Tensorboard && args.out.is_none() {
        return Err(usage("--format tensorboard needs --out DIR, the log directory to point TensorBoard at"));
    }
    // Where the output goes is checked before anything is read (bad input: exit 2).
    if let Some(out) = &args.out {
        if args.format == ExportFormat::Tensorboard {
            if out.exists() && !out.is_dir() {
                return Err(usage(format!("--out {}: a file, not a directory; TensorBoard's log directory must be one", out.display())));
            }
        } else {
            if out.is_dir() {
                return Err(usage(format!(
                    "--out {}: a directory; name the file to write, e.g. {}",
                    out.display(),
                    out.join("trials.csv").display()
                )));
            }
            let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            if !parent.is_dir() {
                return Err(usage(format!("--out {}: no directory {} to write it in; create it first", out.display(), parent.display())));
            }
        }
    }
    Ok(())
}

/// The trials an export sends, and a note on the queued ones it leaves out.
fn export_records(g: &Global, args: &ExportArgs) -> Result<export::Gathered> {
    let store = g.open_store()?;
    let gathered = export::gather(store.as_ref(), &TrialFilter { sweep: args.sweep.clone(), status: None })?;
    let queued = gathered.queued;
    if queued > 0 {
        eprintln!("left out {queued} queued trial{} (nothing recorded yet)", if queued == 1 { "" } else { "s" });
    }
    Ok(gathered)
}

fn export_mlflow(g: &Global, args: &ExportArgs) -> Result<ExitCode> {
    let gathered = export_records(g, args)?;
    let records = &gathered.trials;
    let target = export::mlflow::MlflowTarget {
        url: args.to.clone().unwrap_or_default(),
        experiment: args.experiment.clone(),
        artifacts: args.artifacts,
        runs_dir: g.runs_dir(),
    };
    let report = export::mlflow::export(&target, records, &gathered.groups)?;
    let experiments: Vec<String> = report.experiments.iter().map(|(name, id)| format!("{name:?} (id {id})")).collect();
    println!(
        "exported {} trials to {}, experiment{} {}: {} new, {} updated, {} metric values sent{}",
        records.len(),
        target.url,
        if experiments.len() == 1 { "" } else { "s" },
        if experiments.is_empty() { "none".to_string() } else { experiments.join(", ") },
        report.created.len(),
        report.updated.len(),
        report.metric_values,
        if args.artifacts { format!(", {} artifacts uploaded", report.artifacts) } else { String::new() },
    );
    Ok(ExitCode::SUCCESS)
}

fn export_tensorboard(g: &Global, args: &ExportArgs) -> Result<ExitCode> {
    let gathered = export_records(g, args)?;
    let dir = args.out.clone().unwrap_or_default();
    let report = export::tensorboard::export(&dir, &gathered.trials, &gathered.groups)?;
    println!(
        "wrote {} trials ({} scalars; hparams {}) to {}; view them with: tensorboard --logdir {}",
        report.trials,
        report.scalars,
        if report.hparams.is_empty() { "none".to_string() } else { report.hparams.join(", ") },
        dir.display(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The sweep a command about one sweep means: the one named, else the tracker's only one.
fn the_sweep(store: &dyn store::Store, named: Option<&str>) -> Result<String> {
    if let Some(name) = named {
        return Ok(store::find_sweep(store, name)?.name);
    }
    let names: Vec<String> = store.sweeps()?.into_iter().map(|s| s.name).collect();
    match names.as_slice() {
        [] => Err(crate::Error::Other("the tracker has no sweep yet: start one with `sweep run SWEEP_FILE`".into())),
        [one] => Ok(one.clone()),
        _ => Err(usage(format!("the tracker holds {} sweeps ({}): name one, e.g. `sweep importance {}`", names.len(), names.join(", "), names[0]))),
    }
}

/// `sweep importance`: which swept parameters explain the sweep's objective (each of its
/// objectives, where it has several).
pub fn importance(g: &Global, args: &ImportanceArgs) -> Result<ExitCode> {
    use crate::report::importance;
    let store = g.open_store()?;
    let sweep = the_sweep(store.as_ref(), args.sweep.as_deref())?;
    let objectives = report::sweep_objectives(store.as_ref(), &store::find_sweep(store.as_ref(), &sweep)?)?;
    let runs = report::charts::load_trials(store.as_ref(), &sweep)?;
    let mut results = importance::per_objective(&runs, &objectives);
    // Where no objective has an answer, why the first has none is the command's error.
    if results.iter().all(|(_, r)| r.is_err())
        && let (_, Err(e)) = results.swap_remove(0)
    {
        return Err::<ExitCode, _>(e).with_context(|| format!("sweep {sweep}"));
    }
    const METHOD: &str = "permutation importance over a random forest (out-of-bag error)";
    let judged = |o: &crate::config::Objective| importance::judged(&runs, &o.name, o.goal).len();
    if args.json {
        let each = |o: &crate::config::Objective, r: &std::result::Result<Vec<importance::ParamImportance>, importance::ImportanceError>| {
            let mut v = serde_json::json!({"objective": o.name, "goal": o.goal.as_str(), "trials": judged(o)});
            match r {
                Ok(ranked) => v["importances"] = serde_json::json!(ranked),
                Err(e) => v["unavailable"] = serde_json::json!(e.to_string()),
            }
            v
        };
        let v = match results.as_slice() {
            [(o, r)] => {
                let mut v = each(o, r);
                v["sweep"] = serde_json::json!(sweep);
                v["method"] = serde_json::json!(METHOD);
                v
            }
            several => serde_json::json!({
                "sweep": sweep,
                "method": METHOD,
                "objectives": several.iter().map(|(o, r)| each(o, r)).collect::<Vec<_>>(),
            }),
        };
        crate::outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    for (i, (objective, ranked)) in results.iter().enumerate() {
        if i > 0 {
            crate::outln!();
        }
        crate::outln!(
            "parameter importance for {} ({}) in sweep {sweep}, from {} completed or pruned trials",
            objective.name,
            objective.goal.as_str(),
            judged(objective)
        );
        let ranked = match ranked {
            Ok(ranked) => ranked,
            Err(e) => {
                crate::outln!("none yet: {e}");
                continue;
            }
        };
        if i == 0 {
            crate::outln!("(permutation importance over a random forest: README, Parameter importance)");
        }
        crate::outln!();
        let mut table = report::Table::new(["parameter", "importance", ""]);
        for p in ranked {
            table.row(vec![p.parameter.clone(), format!("{:.1}%", p.importance * 100.0), "#".repeat((p.importance * 40.0).round() as usize)]);
        }
        crate::out!("{}", table.render());
    }
    Ok(ExitCode::SUCCESS)
}
