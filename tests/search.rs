//! Smart sweeps in the sweep file: `method = "bayes"`, `[early_terminate]` and conditional
//! parameters (`when`), each validated like every other key with its file, line and column.

mod common;

use std::path::Path;

use sweep::config::Goal;
use sweep::study::history::History;
use sweep::study::spec::{self, EarlyTerminate, Method};

const BAYES: &str = r#"name = "b"
method = "bayes"
run_cap = 20
seed = 4
[train]
epochs = 12
[bayes]
startup_trials = 6
[early_terminate]
type = "hyperband"
min_iter = 2
eta = 3
[parameters]
"train.optimizer" = { values = ["adam", "sgd", "rmsprop"] }
"train.momentum" = { distribution = "uniform", min = 0.0, max = 0.95, when = { "train.optimizer" = ["sgd", "rmsprop"] } }
"train.learning_rate" = { distribution = "log_uniform_values", min = 0.0003, max = 0.03 }
"#;

#[test]
fn a_bayes_sweep_reads_its_settings_pruner_and_conditions() {
    let s = spec::parse(BAYES, Path::new("sweeps/b.toml")).unwrap();
    assert_eq!(s.method, Method::Bayes);
    assert!(s.is_lazy(), "TPE asks for trials one at a time");
    assert!(s.trials(None).is_empty(), "nothing is enqueued up front");
    assert_eq!(s.bayes.startup_trials, 6);
    assert_eq!(s.bayes.candidates, 24, "Optuna's default");
    assert_eq!(
        s.early_terminate,
        Some(EarlyTerminate::Hyperband { min_iter: 2, max_iter: 12, eta: 3, bootstrap_count: 0, best_so_far: false }),
        "max_iter defaults to train.epochs"
    );
    assert_eq!(s.conditions["train.momentum"].key, "train.optimizer");
}

#[test]
fn a_conditional_parameter_is_left_out_where_its_condition_fails() {
    let s = spec::parse(BAYES, Path::new("sweeps/b.toml")).unwrap();
    let sampler = s.sampler();
    let mut history = History::new("val_iou", s.metric.goal, Vec::new());
    let mut seen_adam = false;
    for number in 1..=6 {
        let point = sampler.ask(&history).expect("the startup points");
        let optimizer = point["train.optimizer"].as_str().unwrap().to_string();
        assert_eq!(point.contains_key("train.momentum"), optimizer != "adam", "{point:?}");
        seen_adam |= optimizer == "adam";
        let trial = s.trial_of(&point).unwrap();
        assert_eq!(serde_json::to_value(trial.config.train.optimizer).unwrap(), serde_json::json!(optimizer));
        history.trials.push(sweep::study::history::TrialRecord {
            number,
            point: point.into(),
            state: sweep::study::history::SearchState::Queued,
            values: Default::default(),
            scores: Vec::new(),
            violation: 0.0,
        });
    }
    assert!(seen_adam, "six draws over three optimisers include adam (seeded)");
}

#[test]
fn every_pruner_type_is_read_with_its_defaults() {
    let with = |rule: &str| spec::parse(&format!("[train]\nepochs = 9\n[early_terminate]\n{rule}\n"), Path::new("s.toml")).unwrap().early_terminate;
    let median = EarlyTerminate::Percentile { median: true, percentile: 50.0, warmup: 2, startup_trials: 5, n_min_trials: 1, interval: 1 };
    assert_eq!(with("type = \"median\"\nwarmup = 2"), Some(median));
    assert_eq!(
        with("type = \"percentile\"\npercentile = 25\nn_min_trials = 3\ninterval = 2\nstartup_trials = 2"),
        Some(EarlyTerminate::Percentile { median: false, percentile: 25.0, warmup: 0, startup_trials: 2, n_min_trials: 3, interval: 2 })
    );
    assert_eq!(with("type = \"patient\"\npatience = 3"), Some(EarlyTerminate::Patient { patience: 3, min_delta: 0.0 }));
    assert_eq!(with("type = \"threshold\"\nlower = 0.05\nwarmup = 1"), Some(EarlyTerminate::Threshold { lower: Some(0.05), upper: None, warmup: 1 }));
    assert_eq!(with("type = \"asha\""), Some(EarlyTerminate::Asha { min_iter: 1, max_iter: 9, eta: 3, bootstrap_count: 0, best_so_far: false }));
    assert_eq!(
        with("type = \"hyperband\"\nmin_iter = 3\nmax_iter = 9\neta = 2\nbest_so_far = true"),
        Some(EarlyTerminate::Hyperband { min_iter: 3, max_iter: 9, eta: 2, bootstrap_count: 0, best_so_far: true })
    );
    let bayes = |body: &str| spec::parse(&format!("method = \"bayes\"\nrun_cap = 4\n[bayes]\n{body}\n"), Path::new("s.toml")).unwrap().bayes;
    let optuna5 = bayes("");
    assert!(optuna5.multivariate && optuna5.constant_liar, "Optuna 5's defaults: {optuna5:?}");
    let old = bayes("multivariate = false\nconstant_liar = false");
    assert!(!old.multivariate && !old.constant_liar, "{old:?}");
}

#[test]
fn bad_early_termination_settings_are_reported_at_their_key() {
    common::check_errors(
        "[early_terminate]\ntype = \"hyperbnd\"\n",
        &[(2, 8, "not a pruner; use one of median, percentile, patient, threshold, asha, hyperband (did you mean hyperband?)")],
    );
    // Issue 25: the new rules' keys, each at its line and column.
    common::check_errors("[early_terminate]\ntype = \"percentile\"\n", &[(2, 8, "needs percentile = a number from 0 to 100")]);
    common::check_errors("[early_terminate]\ntype = \"percentile\"\npercentile = 120\n", &[(3, 14, "percentile = 120 must be at most 100")]);
    common::check_errors("[early_terminate]\ntype = \"percentile\"\npercentile = -1\n", &[(3, 14, "percentile = -1 must be at least 0")]);
    common::check_errors("[early_terminate]\ntype = \"median\"\ninterval = 0\n", &[(3, 12, "early_terminate.interval must be at least 1")]);
    common::check_errors("[early_terminate]\ntype = \"median\"\nn_min_trials = 0\n", &[(3, 16, "early_terminate.n_min_trials must be at least 1")]);
    common::check_errors("[early_terminate]\ntype = \"median\"\npercentile = 30\n", &[(3, 1, "unknown key early_terminate.percentile")]);
    common::check_errors("[early_terminate]\ntype = \"patient\"\n", &[(2, 8, "needs patience = the epochs without improvement")]);
    common::check_errors(
        "[train]\nepochs = 4\n[early_terminate]\ntype = \"patient\"\npatience = 3\n",
        &[(5, 12, "patience = 3 needs more than 4 epochs to judge anything, and train.epochs = 4")],
    );
    common::check_errors(
        "[early_terminate]\ntype = \"patient\"\npatience = 2\nmin_delta = -0.1\n",
        &[(4, 13, "min_delta = -0.1 must be at least 0")],
    );
    common::check_errors("[early_terminate]\ntype = \"threshold\"\n", &[(2, 8, "needs lower = ..., upper = ..., or both")]);
    common::check_errors("[early_terminate]\ntype = \"threshold\"\nlower = 2\nupper = 1\n", &[(4, 9, "upper = 1 must be above lower = 2")]);
    common::check_errors("[early_terminate]\ntype = \"threshold\"\nupper = \"high\"\n", &[(3, 9, "early_terminate.upper must be a finite number")]);
    common::check_errors("[early_terminate]\ntype = \"asha\"\nbest_so_far = 1\n", &[(3, 15, "early_terminate.best_so_far must be true or false")]);
    common::check_errors(
        "method = \"bayes\"\nrun_cap = 4\n[bayes]\nmultivariate = \"yes\"\n",
        &[(4, 16, "bayes.multivariate must be true or false")],
    );
    common::check_errors("method = \"bayes\"\nrun_cap = 4\n[bayes]\nconstant_lair = true\n", &[(4, 1, "unknown key bayes.constant_lair")]);
    common::check_errors("[early_terminate]\ntype = \"asha\"\neta = 1\n", &[(3, 7, "eta = 1 must be at least 2")]);
    common::check_errors("[early_terminate]\ntype = \"asha\"\nmin_iter = 6\nmax_iter = 4\n", &[(4, 12, "min_iter = 6 must not exceed max_iter = 4")]);
    common::check_errors("[train]\nepochs = 5\n[early_terminate]\ntype = \"asha\"\nmin_iter = 6\n", &[(4, 8, "(max_iter defaults to train.epochs)")]);
    common::check_errors("[train]\nepochs = 5\n[early_terminate]\ntype = \"asha\"\nmax_iter = 8\n", &[(5, 12, "more than train.epochs = 5")]);
    common::check_errors("[early_terminate]\ntype = \"median\"\nmin_iter = 2\n", &[(3, 1, "unknown key early_terminate.min_iter")]);
    common::check_errors("[early_terminate]\nmin_iter = 2\n", &[(1, 1, "needs type")]);
    // Issue 27, item 15: a non-integer eta said "whole number >= 0".
    common::check_errors("[early_terminate]\ntype = \"asha\"\neta = 2.5\n", &[(3, 7, "early_terminate.eta must be a whole number >= 2")]);
    // Issue 27, item 11: settings under which pruning means nothing were accepted.
    let grid = "[parameters]\n\"augment.hue_delta\" = { values = [0.0, 0.1, 0.2] }\n";
    common::check_errors(
        &format!("[early_terminate]\ntype = \"asha\"\nbootstrap_count = 1000000000000\n{grid}"),
        &[(3, 19, "bootstrap_count = 1000000000000 stops the first 1000000000000 trials at each rung, and the sweep has 3")],
    );
    common::check_errors(
        "method = \"random\"\nrun_cap = 4\n[early_terminate]\ntype = \"hyperband\"\nbootstrap_count = 4\n",
        &[(5, 19, "use a count below 4 (0: none)")],
    );
    common::check_errors(
        "[train]\nepochs = 3\n[early_terminate]\ntype = \"median\"\nwarmup = 100\n",
        &[(5, 10, "warmup = 100 is not below train.epochs = 3")],
    );
    common::check_errors(
        "method = \"random\"\nrun_cap = 2\n[parameters]\n\"train.learning_rate\" = { distribution = \"log_uniform_values\", min = 0.0001, max = 0.01 }\n\"augment.hue_delta\" = { values = [0.1], when = { \"train.learning_rate\" = [0.001] } }\n",
        &[(5, 1, "when names \"train.learning_rate\", a continuous parameter, which never takes one exact value")],
    );
    // What still holds: a bootstrap below the trial count, a warmup below the epochs, a discrete condition.
    spec::parse(&format!("[early_terminate]\ntype = \"asha\"\nbootstrap_count = 2\n{grid}"), Path::new("ok.toml")).unwrap();
    spec::parse("[train]\nepochs = 3\n[early_terminate]\ntype = \"median\"\nwarmup = 2\n", Path::new("ok.toml")).unwrap();
}

#[test]
fn bad_methods_and_bayes_settings_are_reported() {
    common::check_errors("method = \"baye\"\n", &[(1, 10, "use \"grid\", \"random\", \"bayes\" or \"nsga2\" (did you mean bayes?)")]);
    common::check_errors("method = \"bayes\"\n", &[(1, 10, "method = \"bayes\" needs run_cap")]);
    common::check_errors("[bayes]\nstartup_trials = 3\n", &[(1, 1, "only applies to method = \"bayes\"")]);
    common::check_errors(
        "method = \"bayes\"\nrun_cap = 4\n[bayes]\ncandidates = 0\nstartups = 2\n",
        &[(4, 14, "at least 1"), (5, 1, "unknown key bayes.startups")],
    );
}

#[test]
fn bad_nsga2_settings_are_each_located() {
    common::check_errors("method = \"nsga\"\n", &[(1, 10, "(did you mean nsga2?)")]);
    common::check_errors("method = \"nsga2\"\n", &[(1, 10, "method = \"nsga2\" needs run_cap")]);
    common::check_errors("method = \"bayes\"\nrun_cap = 4\n[nsga2]\npopulation = 4\n", &[(3, 1, "[nsga2] only applies to method = \"nsga2\"")]);
    common::check_errors("method = \"nsga2\"\nrun_cap = 4\n[bayes]\nstartup_trials = 4\n", &[(3, 1, "[bayes] only applies to method = \"bayes\"")]);
    common::check_errors(
        "method = \"nsga2\"\nrun_cap = 4\n[nsga2]\npopulation = 1\ncrossover_prob = 1.5\nmutation_prob = 0\npopsize = 3\n",
        &[
            (4, 14, "nsga2.population = 1: a generation needs at least 2 trials"),
            (5, 18, "nsga2.crossover_prob = 1.5 is a probability: 0 to 1"),
            (6, 17, "nsga2.mutation_prob = 0 is a probability: above 0, at most 1"),
            (7, 1, "unknown key nsga2.popsize"),
        ],
    );
    common::check_errors(
        "method = \"nsga2\"\nrun_cap = 4\nrepeats = 2\n",
        &[(3, 11, "repeats needs method = \"grid\" or \"random\": NSGA-II draws")],
    );
    let s = spec::parse("method = \"nsga2\"\nrun_cap = 4\n[nsga2]\npopulation = 3\nmutation_prob = 0.5\n", Path::new("ok.toml")).unwrap();
    assert_eq!((s.nsga2.population, s.nsga2.crossover_prob, s.nsga2.mutation_prob), (3, 0.9, Some(0.5)));
    assert!(s.is_lazy() && s.startup_trials() == 3);
}

#[test]
fn an_nsga2_sweep_breeds_each_trial_from_the_tracker_s_history_and_ends_with_its_front() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("ga.toml");
    let text = format!(
        r#"name = "ga"
method = "nsga2"
run_cap = 7
seed = 4
[[objectives]]
name = "val_iou"
goal = "maximize"
[[objectives]]
name = "params"
goal = "minimize"
{data_and_model}[train]
epochs = 2
batch_size = 6
[nsga2]
population = 3
[parameters]
"model.base_filters" = {{ values = [2, 4, 8] }}
"train.learning_rate" = {{ distribution = "log_uniform_values", min = 0.0001, max = 0.05 }}
"#,
        data_and_model = common::TINY_DATA_AND_MODEL
    );
    std::fs::write(&file, text).unwrap();
    common::sweep(runs.path())
        .args(["run", file.to_str().unwrap(), "--dry-run"])
        .assert()
        .success()
        .stdout(contains("sweep ga (nsga2, ").and(contains("each asked from NSGA-II when a worker frees up; the first 3 are drawn at random")));
    common::sweep(runs.path())
        .args(["run", file.to_str().unwrap(), "--workers", "1", "--plain", "--no-plot"])
        .assert()
        .success()
        .stdout(contains("nsga2 search of up to 7 trials").and(contains("Pareto front")));
    let mut store = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
    let trials = store.trials(&TrialFilter { sweep: Some("ga".into()), status: None }).unwrap();
    assert_eq!(trials.len(), 7);
    assert!(trials.iter().all(|t| t.status == TrialStatus::Completed), "{trials:?}");
    // One worker asks after each trial ends: trial k is what NSGA-II breeds from the first k,
    // read back from the tracker (the first generation is the random stream's).
    let study = sweep::runner::study::Study::load(&store, "ga").unwrap().unwrap();
    let history = study.sampled_history(&mut store).unwrap();
    let sampler = study.spec().sampler();
    let random = sweep::study::sampler::Random::new(study.spec().space(), 4);
    for k in 0..7 {
        let mut before = history.clone();
        before.trials.retain(|t| t.number < history.trials[k].number);
        let point = sampler.ask(&before).unwrap();
        assert_eq!(*history.trials[k].point, point, "trial {k}");
        if k < 3 {
            assert_eq!(sweep::study::sampler::Sampler::ask(&random, &before), Some(point), "trial {k} is random search's");
        }
    }
    let parents = sweep::study::nsga2::Nsga2::new(study.spec().space(), 4, study.spec().nsga2.clone());
    assert_eq!(parents.parents(&history).len(), 3, "two generations done: three parents for the third");
}

#[test]
fn a_parameter_given_twice_in_two_spellings_is_an_error_at_the_second_not_a_panic() {
    let head = "method = \"random\"\nrun_cap = 2\n[parameters]\n";
    let fix = "is given twice: `augment.hue_delta`, `\"augment.hue_delta\"` and a nested table name the same setting; keep one";
    // A dotted key and a quoted one.
    common::check_errors(&format!("{head}augment.hue_delta = {{ values = [0.1] }}\n\"augment.hue_delta\" = {{ values = [0.2] }}\n"), &[(5, 1, fix)]);
    // A nested table and a quoted key.
    common::check_errors(
        &format!("{head}\"augment.hue_delta\" = {{ values = [0.2] }}\naugment = {{ hue_delta = {{ values = [0.1] }} }}\n"),
        &[(5, 13, fix)],
    );
    // The command says so with exit 2 (it panicked with 101) and registers nothing.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twice.toml");
    std::fs::write(
        &file,
        format!("name = \"twice\"\n{head}augment.hue_delta = {{ values = [0.1] }}\n\"augment.hue_delta\" = {{ values = [0.2] }}\n"),
    )
    .unwrap();
    common::sweep(&dir.path().join("runs")).args(["run"]).arg(&file).assert().code(2).stderr(predicates::str::contains("twice.toml:6:1"));
    assert!(!dir.path().join("runs/sweep.db").exists());
}

#[test]
fn a_condition_must_name_an_earlier_parameter_and_values_it_takes() {
    let head = "method = \"random\"\nrun_cap = 2\n[parameters]\n\"train.optimizer\" = { values = [\"adam\", \"sgd\"] }\n";
    common::check_errors(
        &format!("{head}\"train.momentum\" = {{ values = [0.0, 0.9], when = {{ \"train.optimiser\" = [\"sgd\"] }} }}\n"),
        &[(5, 1, "when names \"train.optimiser\", which is not a parameter listed before it (did you mean train.optimizer?)")],
    );
    common::check_errors(
        &format!("{head}\"train.momentum\" = {{ values = [0.0, 0.9], when = {{ \"train.optimizer\" = [\"sgdd\"] }} }}\n"),
        &[(5, 1, "lists \"sgdd\", a value \"train.optimizer\" never takes")],
    );
}

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use sweep::store::{SqliteStore, Store, TrialFilter, TrialStatus};

/// A tiny TPE sweep with the median pruner: 6 trials of 4 epochs over a wide learning rate, so
/// that some trials fall behind the others and stop early.
fn tiny_bayes(name: &str) -> String {
    format!(
        r#"name = "{name}"
method = "bayes"
run_cap = 6
seed = 2
{data_and_model}[train]
epochs = 4
batch_size = 6
[bayes]
startup_trials = 3
[early_terminate]
type = "median"
startup_trials = 1
[parameters]
"train.learning_rate" = {{ distribution = "log_uniform_values", min = 0.00001, max = 0.05 }}
"augment.hue_delta" = {{ distribution = "uniform", min = 0.0, max = 0.3 }}
"#,
        data_and_model = common::TINY_DATA_AND_MODEL
    )
}

#[test]
fn a_bayes_sweep_asks_trials_up_to_its_cap_and_prunes_with_a_reason() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("b.toml");
    std::fs::write(&file, tiny_bayes("tpe")).unwrap();
    common::sweep(runs.path())
        .args(["run", file.to_str().unwrap(), "--workers", "1", "--plain", "--no-plot"])
        .assert()
        .success()
        .stdout(contains("bayes search of up to 6 trials"));
    let store = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
    let trials = store.trials(&TrialFilter { sweep: Some("tpe".into()), status: None }).unwrap();
    assert_eq!(trials.len(), 6, "exactly run_cap trials were asked for");
    assert!(trials.iter().all(|t| matches!(t.status, TrialStatus::Completed | TrialStatus::Pruned)), "{trials:?}");
    let pruned: Vec<_> = trials.iter().filter(|t| t.status == TrialStatus::Pruned).collect();
    assert!(!pruned.is_empty(), "a learning rate 5000x too small falls below the median");
    for t in &pruned {
        let reason = t.error.as_deref().unwrap_or_default();
        assert!(reason.contains("val_iou") && reason.contains("below the median"), "{reason}");
        assert!(t.epochs() < 4, "{} stopped early", t.id);
    }
    // Issue 29: the reason was labelled `error`.
    common::sweep(runs.path())
        .args(["show", &pruned[0].id])
        .assert()
        .success()
        .stdout(contains("below the median").and(contains("pruned       because ")).and(contains("error ").not()));
    common::sweep(runs.path()).args(["status", "tpe"]).assert().success().stdout(contains("pruned"));
    // A rerun of a finished bayes sweep asks for nothing more.
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--plain", "--no-plot"]).assert().success().stdout(contains("nothing to run"));
    assert_eq!(store.trials(&TrialFilter { sweep: Some("tpe".into()), status: None }).unwrap().len(), 6);

    // One more epoch (issue 16, item 4): the completed trials continue, at their points; the
    // pruned ones stay pruned; nothing is asked for anew.
    std::fs::write(&file, tiny_bayes("tpe").replace("epochs = 4", "epochs = 5")).unwrap();
    let completed: Vec<_> = trials.iter().filter(|t| t.status == TrialStatus::Completed).collect();
    let note = format!("note: {} was pruned: it would stay as it is", pruned[0].id);
    let continues = format!("{} trial(s) would continue from their last checkpoint", completed.len());
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--dry-run"]).assert().success().stdout(contains(continues).and(contains(note)));
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--plain", "--no-plot"]).assert().success();
    let after = store.trials(&TrialFilter { sweep: Some("tpe".into()), status: None }).unwrap();
    assert_eq!(after.len(), 6);
    for (before, after) in trials.iter().zip(&after) {
        assert_eq!((&after.id, &after.params), (&before.id, &before.params));
        let expected = match before.status {
            TrialStatus::Completed => (before.attempt + 1, 5),
            _ => (before.attempt, before.epochs()),
        };
        assert_eq!((after.attempt, after.epochs()), expected, "{}", after.id);
    }
    assert!(after.iter().filter(|t| pruned.iter().any(|p| p.id == t.id)).all(|t| t.status == TrialStatus::Pruned));
}

#[test]
fn the_same_bayes_sweep_with_one_worker_gives_the_same_trials_and_decisions() {
    let outcome = |dir: &std::path::Path| {
        let file = dir.join("b.toml");
        std::fs::write(&file, tiny_bayes("same")).unwrap();
        common::sweep(dir).args(["run", file.to_str().unwrap(), "--workers", "1", "--plain", "--no-plot"]).assert().success();
        let store = SqliteStore::open(&dir.join("sweep.db")).unwrap();
        let trials = store.trials(&TrialFilter { sweep: Some("same".into()), status: None }).unwrap();
        trials.iter().map(|t| (t.config_hash.clone(), t.status, t.epochs(), t.best("val_iou", sweep::config::Goal::Maximize))).collect::<Vec<_>>()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    assert_eq!(outcome(a.path()), outcome(b.path()));
}

#[test]
fn a_bayes_dry_run_says_how_trials_are_asked() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("b.toml");
    std::fs::write(&file, tiny_bayes("dry")).unwrap();
    common::sweep(runs.path())
        .args(["run", file.to_str().unwrap(), "--dry-run"])
        .assert()
        .success()
        .stdout(contains("up to 6 trials").and(contains("the first 3 are drawn at random")));
    assert!(!runs.path().join("sweep.db").exists(), "a dry run registers nothing");
    // Issue 27, item 15: with run_cap below bayes.startup_trials it said "the first 10 are drawn at random" of 6.
    std::fs::write(&file, tiny_bayes("dry").replace("startup_trials = 3", "startup_trials = 10")).unwrap();
    common::sweep(runs.path())
        .args(["run", file.to_str().unwrap(), "--dry-run"])
        .assert()
        .success()
        .stdout(contains("up to 6 trials").and(contains("all 6 are drawn at random (bayes.startup_trials = 10 is not below run_cap)")));
}

/// A tiny TPE sweep with ASHA: rungs at epochs 2 and 4 of 6, half the trials promoted at each.
fn tiny_asha(name: &str) -> String {
    format!(
        r#"name = "{name}"
method = "bayes"
run_cap = 4
seed = 5
{data_and_model}[train]
epochs = 6
batch_size = 6
[bayes]
startup_trials = 2
[early_terminate]
type = "asha"
min_iter = 2
eta = 2
[parameters]
"train.learning_rate" = {{ distribution = "log_uniform_values", min = 0.00001, max = 0.05 }}
"#,
        data_and_model = common::TINY_DATA_AND_MODEL
    )
}

/// What a sweep decided, trial by trial: identity, status, epochs, best value and pruning reason.
type Outcome = Vec<(String, TrialStatus, i64, Option<(f64, i64)>, Option<String>)>;

fn outcome_of(runs: &Path, name: &str) -> Outcome {
    let store = SqliteStore::open(&runs.join("sweep.db")).unwrap();
    let trials = store.trials(&TrialFilter { sweep: Some(name.into()), status: None }).unwrap();
    trials.iter().map(|t| (t.config_hash.clone(), t.status, t.epochs(), t.best("val_iou", sweep::config::Goal::Maximize), t.error.clone())).collect()
}

#[test]
fn a_worker_killed_between_rungs_resumes_its_trial_and_the_sweep_decides_as_if_it_never_died() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    // The reference: the same sweep, never interrupted.
    let straight = tempfile::tempdir().unwrap();
    let file = straight.path().join("a.toml");
    std::fs::write(&file, tiny_asha("rung")).unwrap();
    common::sweep(straight.path()).args(["run", file.to_str().unwrap(), "--workers", "1", "--plain", "--no-plot"]).assert().success();
    let expected = outcome_of(straight.path(), "rung");
    assert_eq!(expected.len(), 4);
    assert!(expected.iter().any(|t| t.1 == TrialStatus::Pruned), "ASHA stops some trial at a rung: {expected:?}");

    // Again, with the worker SIGKILLed while the first trial is past its first rung (epoch 2)
    // and short of its second (epoch 4).
    let killed = tempfile::tempdir().unwrap();
    let file = killed.path().join("a.toml");
    std::fs::write(&file, tiny_asha("rung")).unwrap();
    let mut supervisor = Command::new(common::sweep_bin())
        .arg("--runs-dir")
        .arg(killed.path())
        .args(["run", file.to_str().unwrap(), "--workers", "1", "--plain", "--no-plot", "--stale-after", "2", "--heartbeat-every", "0.5"])
        .env_remove("SWEEP_FAULT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let victim = loop {
        assert!(Instant::now() < deadline, "the first trial never reached epoch 3");
        std::thread::sleep(Duration::from_millis(20));
        let Ok(store) = SqliteStore::open(&killed.path().join("sweep.db")) else { continue };
        let Ok(first) = store.trial("rung-1") else { continue };
        if first.epochs() == 3 {
            break first;
        }
    };
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", supervisor.id())).unwrap();
    let workers: Vec<i32> = children.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(workers.len(), 1);
    assert_eq!(victim.pid, Some(workers[0] as i64), "the worker training rung-1 is the one killed");
    unsafe { libc::kill(workers[0], libc::SIGKILL) };
    // The supervisor starts a new worker, which reclaims rung-1 once it is stale and resumes it
    // from its last checkpoint.
    assert!(supervisor.wait().unwrap().success(), "the supervisor finished the sweep after the kill");
    common::sweep(killed.path()).args(["run", file.to_str().unwrap(), "--plain", "--no-plot"]).assert().success().stdout(contains("nothing to run"));

    let resumed = SqliteStore::open(&killed.path().join("sweep.db")).unwrap().trial("rung-1").unwrap();
    assert!(resumed.attempt >= 2, "rung-1 was resumed, not restarted under a new id");
    assert_eq!(outcome_of(killed.path(), "rung"), expected, "the kill changed no trial, decision or metric");
}

/// Issue 27, item 2: a bayes sweep whose sampler ran out of new configs stopped short of its
/// run_cap without a word.
#[test]
fn a_bayes_sweep_that_ends_short_of_its_cap_says_why() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("short.toml");
    let text = format!(
        "name = \"short\"\nmethod = \"bayes\"\nrun_cap = 5\nseed = 3\n{}[train]\nepochs = 1\nbatch_size = 6\n[bayes]\nstartup_trials = 1\n[parameters]\n\"augment.hue_delta\" = {{ values = [0.0, 0.1] }}\n",
        common::TINY_DATA_AND_MODEL
    );
    std::fs::write(&file, text).unwrap();
    common::sweep(runs.path())
        .args(["run", file.to_str().unwrap(), "--plain", "--no-plot", "--workers", "1"])
        .assert()
        .success()
        .stdout(contains("note: sweep short ended with 2 of its run_cap = 5 trials: the sampler proposed nothing new it could add"));
    let log = std::fs::read_to_string(runs.path().join("short/logs/worker-1.log")).unwrap();
    assert!(log.contains("sweep short: no more trials are asked below run_cap = 5: the sampler has no new point left"), "{log}");
    assert!(log.contains("the space holds fewer configs than run_cap"), "{log}");
}

/// Issue 27, item 15: raising train.epochs under a pruner can turn a completed trial into a
/// pruned one; the plan says so, trial by trial.
#[test]
fn continuing_trials_under_a_pruner_are_told_they_may_end_pruned() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("more.toml");
    let sweep = |epochs: usize| {
        format!(
            "name = \"more\"\nmethod = \"grid\"\n{}[train]\nepochs = {epochs}\nbatch_size = 6\n[early_terminate]\ntype = \"asha\"\nmin_iter = 1\neta = 2\n[parameters]\n\"train.learning_rate\" = {{ values = [0.003, 0.001] }}\n",
            common::TINY_DATA_AND_MODEL
        )
    };
    std::fs::write(&file, sweep(1)).unwrap();
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--plain", "--no-plot"]).assert().success();
    std::fs::write(&file, sweep(3)).unwrap();
    let note = |id: &str, verb: &str| {
        format!("note: {id} {verb} judged by the asha pruner at each epoch past 1 on its way to 3, and may end pruned, not completed")
    };
    common::sweep(runs.path())
        .args(["run", file.to_str().unwrap(), "--dry-run"])
        .assert()
        .success()
        .stdout(contains(note("more-1", "would be")).and(contains(note("more-2", "would be"))));
    common::sweep(runs.path())
        .args(["run", file.to_str().unwrap(), "--plain", "--no-plot"])
        .assert()
        .success()
        .stdout(contains(note("more-1", "is")).and(contains(note("more-2", "is"))));
}

/// Issue 27, item 1: a worker killed between recording a rung epoch and saving the pruner's
/// decision on it (the window holds the `best` checkpoint's write) resumed the trial and trained
/// it to the end: the decision was never asked again. Each trial's worker here dies right after
/// its epoch-1 `best` checkpoint; the sweep must end as it does with no death.
#[test]
fn a_pruning_decision_the_worker_died_before_saving_is_taken_again_on_resume() {
    let sweep = format!(
        r#"name = "lost"
method = "grid"
seed = 5
{data_and_model}[train]
epochs = 4
batch_size = 6
[early_terminate]
type = "asha"
min_iter = 1
eta = 4
[parameters]
"train.learning_rate" = {{ values = [0.003, 0.00001] }}
"#,
        data_and_model = common::TINY_DATA_AND_MODEL
    );
    let run = |fault: Option<&str>| {
        let runs = tempfile::tempdir().unwrap();
        let file = runs.path().join("lost.toml");
        std::fs::write(&file, &sweep).unwrap();
        let mut cmd = common::sweep(runs.path());
        cmd.args(["run", file.to_str().unwrap(), "--workers", "1", "--plain", "--no-plot", "--stale-after", "2", "--heartbeat-every", "0.5"]);
        match fault {
            Some(f) => cmd.env("SWEEP_FAULT", f),
            None => cmd.env_remove("SWEEP_FAULT"),
        };
        cmd.timeout(std::time::Duration::from_secs(300)).assert().success();
        runs
    };
    let straight = run(None);
    let expected = outcome_of(straight.path(), "lost");
    assert_eq!(expected.iter().map(|t| (t.1, t.2)).collect::<Vec<_>>(), [(TrialStatus::Completed, 4), (TrialStatus::Pruned, 1)], "{expected:?}");
    let killed = run(Some("killwrite@1:2"));
    let store = SqliteStore::open(&killed.path().join("sweep.db")).unwrap();
    assert!(store.trial("lost-2").unwrap().attempt >= 2, "lost-2's worker died after its first epoch and the trial was resumed");
    assert_eq!(outcome_of(killed.path(), "lost"), expected, "lost-2 is pruned at epoch 1 as if its worker never died");
}

/// Issue 25, item 3: `[[enqueue]]` tables are checked like every other key.
#[test]
fn enqueued_configurations_are_checked_against_the_space() {
    let with = |tables: &str| format!("{BAYES}{tables}");
    let ok = spec::parse(
        &with("[[enqueue]]\n\"train.optimizer\" = \"sgd\"\n\"train.momentum\" = 0.9\n[[enqueue]]\n\"train.learning_rate\" = 0.001\n"),
        Path::new("ok.toml"),
    )
    .unwrap();
    assert_eq!(ok.enqueue.len(), 2);
    assert_eq!(ok.enqueue[1]["train.learning_rate"], serde_json::json!(0.001));
    common::check_errors(
        &with("[[enqueue]]\n\"train.learning_rat\" = 0.001\n"),
        &[(18, 1, "is not a parameter of this sweep (did you mean train.learning_rate?)")],
    );
    common::check_errors(
        &with("[[enqueue]]\n\"train.learning_rate\" = 0.5\n"),
        &[(18, 1, "= 0.5 is not a number from 0.0003 to 0.03; widen the parameter's range")],
    );
    common::check_errors(
        &with("[[enqueue]]\n\"train.optimizer\" = \"adamw\"\n"),
        &[(18, 1, "is not one of its values [\"adam\",\"sgd\",\"rmsprop\"]")],
    );
    common::check_errors(
        &with("[[enqueue]]\n\"train.momentum\" = 0.9\n"),
        &[(18, 1, "applies only when \"train.optimizer\" is one of [\"sgd\",\"rmsprop\"]: name \"train.optimizer\" in the same configuration")],
    );
    common::check_errors(
        &with("[[enqueue]]\n\"train.optimizer\" = \"adam\"\n\"train.momentum\" = 0.9\n"),
        &[(19, 1, "this configuration gives \"train.optimizer\" = \"adam\"")],
    );
    common::check_errors(&format!("enqueue = 3\n{BAYES}"), &[(1, 11, "enqueue must be tables: [[enqueue]]")]);
}

/// Issue 25, item 3: configurations put first run first, once, whatever the number of workers;
/// eight processes enqueueing the same configuration at once add one trial.
#[test]
fn enqueued_configurations_run_first_and_exactly_once() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("b.toml");
    let text = tiny_bayes("enq").replace("run_cap = 6", "run_cap = 5") + "[[enqueue]]\n\"train.learning_rate\" = 0.003\n";
    std::fs::write(&file, text).unwrap();
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--workers", "3", "--plain", "--no-plot"]).assert().success();
    let store = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
    let trials = store.trials(&TrialFilter { sweep: Some("enq".into()), status: None }).unwrap();
    assert_eq!(trials.len(), 5, "the enqueued configuration counts toward run_cap");
    let first = &trials[0];
    assert_eq!((first.id.as_str(), &first.params["train.learning_rate"]), ("enq-1", &serde_json::json!(0.003)), "{first:?}");
    assert!(first.params.contains_key("augment.hue_delta"), "the unnamed parameter is drawn: {first:?}");
    assert_eq!(first.tags.get("enqueued").map(String::as_str), Some("[[enqueue]] 1"));
    assert_eq!(trials.iter().filter(|t| t.params["train.learning_rate"] == serde_json::json!(0.003)).count(), 1);
    assert_eq!(first.attempt, 1, "trained once");

    // Eight processes at once, the same configuration: one trial.
    let children: Vec<_> = (0..8)
        .map(|_| {
            std::process::Command::new(common::sweep_bin())
                .args(["--runs-dir", runs.path().to_str().unwrap(), "enqueue", "enq", "train.learning_rate=0.004", "augment.hue_delta=0.1"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<std::process::Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    assert!(outputs.iter().all(|o| o.status.success()), "{outputs:?}");
    let said: Vec<String> = outputs.iter().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).collect();
    assert_eq!(said.iter().filter(|s| s.contains("enqueued")).count(), 1, "{said:?}");
    assert_eq!(said.iter().filter(|s| s.contains("already has these values")).count(), 7, "{said:?}");
    let trials = store.trials(&TrialFilter { sweep: Some("enq".into()), status: None }).unwrap();
    let added: Vec<_> = trials.iter().filter(|t| t.params["train.learning_rate"] == serde_json::json!(0.004)).collect();
    assert_eq!((added.len(), added[0].status), (1, TrialStatus::Queued), "{added:?}");
    // The next run trains it (past run_cap: it was asked for by name) and asks for nothing else.
    common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--workers", "2", "--plain", "--no-plot"]).assert().success();
    let after = store.trials(&TrialFilter { sweep: Some("enq".into()), status: None }).unwrap();
    assert_eq!(after.len(), 6);
    let trained = after.iter().find(|t| t.id == added[0].id).unwrap();
    assert!(matches!(trained.status, TrialStatus::Completed | TrialStatus::Pruned) && trained.attempt == 1, "{trained:?}");

    // Bad values: exit 2, naming the key and the fix; nothing added.
    common::sweep(runs.path())
        .args(["enqueue", "enq", "train.learning_rat=0.001"])
        .assert()
        .code(2)
        .stderr(contains("train.learning_rat is not a parameter of this sweep (did you mean train.learning_rate?)"));
    common::sweep(runs.path())
        .args(["enqueue", "enq", "train.learning_rate=1"])
        .assert()
        .code(2)
        .stderr(contains("is not a number from 0.00001 to 0.05"));
    common::sweep(runs.path()).args(["enqueue", "enq", "learning_rate"]).assert().code(2).stderr(contains("is not key=value"));
    common::sweep(runs.path()).args(["enqueue", "nope", "train.learning_rate=0.001"]).assert().code(2).stderr(contains("nope"));
    assert_eq!(store.trials(&TrialFilter { sweep: Some("enq".into()), status: None }).unwrap().len(), 6);
}

/// Issue 25, item 3: a trial put first is claimed before the sweep's other queued trials.
#[test]
fn workers_claim_an_enqueued_trial_before_the_others() {
    use sweep::store::{Reclaim, WorkerInfo};
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("sweep.db")).unwrap();
    store.register_sweep("g", "grid").unwrap();
    let added = store.enqueue("g", &common::trials(4)).unwrap().added;
    store.tag(&added[2], &[("enqueued".into(), Some("sweep enqueue".into()))]).unwrap();
    let worker = WorkerInfo::this_process();
    let order: Vec<String> = (0..4).map(|_| store.claim(Some("g"), &worker, &Reclaim::after(3600.0)).unwrap().unwrap().lease.trial).collect();
    assert_eq!(order, [added[2].clone(), added[0].clone(), added[1].clone(), added[3].clone()]);
}

/// Issue 25, item 3: `[bayes] warm_start` lets TPE learn from another sweep's trials, over the
/// parameters both have, and leaves out trials whose fixed settings differ, with a note.
#[test]
fn a_warm_started_sweep_learns_from_another_sweeps_compatible_trials() {
    let runs = tempfile::tempdir().unwrap();
    let run = |name: &str, text: String| {
        let file = runs.path().join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--workers", "1", "--plain", "--no-plot"]).assert()
    };
    let small = |name: &str, warm: &str| {
        let text = tiny_bayes(name).replace("run_cap = 6", "run_cap = 4").replace("epochs = 4", "epochs = 2");
        text.replace("[bayes]\nstartup_trials = 3", &format!("[bayes]\nstartup_trials = 3\n{warm}"))
    };
    run("wa", small("wa", "")).success();
    let first_point = |sweep: &str| {
        let store = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
        store.trials(&TrialFilter { sweep: Some(sweep.into()), status: None }).unwrap()[0].params.clone()
    };
    let one = |name: &str, warm: &str| small(name, warm).replace("run_cap = 4", "run_cap = 1");
    // Without warm start the first trial is the random stream's first point; with it, TPE's.
    run("cold", one("cold", "")).success();
    run("warm", one("warm", "warm_start = [\"wa\"]")).success().stderr(contains("warm start: TPE also learns from 4 trial(s) of wa"));
    assert_ne!(first_point("warm"), first_point("cold"), "four finished trials of wa are past startup_trials = 3");
    // Shown as such: the trial's tag (show, ls, the UI), the sweep's page and its charts.
    let id = |sweep: &str| {
        let store = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
        store.trials(&TrialFilter { sweep: Some(sweep.into()), status: None }).unwrap()[0].id.clone()
    };
    common::sweep(runs.path()).args(["show", &id("warm")]).assert().success().stdout(contains("warm_start=wa"));
    common::sweep(runs.path()).args(["show", &id("cold")]).assert().success().stdout(contains("warm_start").not());
    // A configuration enqueued by hand draws the parameters it leaves out as `run` asks: TPE
    // over the lent trials too (before, the random stream's, as in the cold sweep), and says so.
    for sweep in ["warm", "cold"] {
        common::sweep(runs.path()).args(["enqueue", sweep, "augment.hue_delta=0.05"]).assert().success();
    }
    let enqueued = |sweep: &str| {
        let store = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
        store.trials(&TrialFilter { sweep: Some(sweep.into()), status: None }).unwrap().pop().unwrap()
    };
    let (warm_enqueued, cold_enqueued) = (enqueued("warm"), enqueued("cold"));
    assert_eq!(warm_enqueued.params["augment.hue_delta"], serde_json::json!(0.05));
    assert_ne!(warm_enqueued.params["train.learning_rate"], cold_enqueued.params["train.learning_rate"], "TPE's draw, not the random stream's");
    common::sweep(runs.path()).args(["show", &warm_enqueued.id]).assert().success().stdout(contains("warm_start=wa"));
    common::sweep(runs.path()).args(["show", &cold_enqueued.id]).assert().success().stdout(contains("warm_start").not());
    common::sweep(runs.path()).args(["plot", "warm", "--samples", "1"]).assert().success();
    let page = std::fs::read_to_string(runs.path().join("warm/plots/index.html")).unwrap();
    assert!(page.contains("warm start: TPE also learns from 4 trial(s) of wa"), "{page}");
    // Another image size: every trial of wa measures something else, so none is used.
    let other_size = one("other", "warm_start = [\"wa\"]").replace("image_size = 32", "image_size = 24");
    run("other", other_size).success().stderr(contains("0 trial(s) of wa (4 left out: 4 because data.image_size is [32,32] there, [24,24] here)"));
    assert_eq!(first_point("other"), first_point("cold"));
    // A sweep the tracker does not have: exit 2, nothing registered.
    run("lost", one("lost", "warm_start = [\"nope\"]")).code(2).stderr(contains("warm_start names \"nope\", which this tracker"));
    let store = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
    assert!(store.sweeps().unwrap().iter().all(|s| s.name != "lost"));
    common::check_errors(
        "method = \"bayes\"\nrun_cap = 2\n[bayes]\nwarm_start = \"wa\"\n",
        &[(4, 14, "bayes.warm_start must be a list of sweep names")],
    );
}

/// Issue 26: a sweep of several objectives learns from another sweep's trials by every objective,
/// and a lent trial that breaks this sweep's constraints is infeasible here, by how far.
#[test]
fn a_warm_start_lends_every_objective_and_is_judged_by_this_sweeps_constraints() {
    use sweep::study::history::SearchState;
    let runs = tempfile::tempdir().unwrap();
    let sweep_file = |name: &str, extra: &str, bayes: &str| {
        let objectives = "[[objectives]]\nname = \"val_iou\"\ngoal = \"maximize\"\n[[objectives]]\nname = \"params\"\ngoal = \"minimize\"\n";
        let text = tiny_bayes(name).replace("run_cap = 6", "run_cap = 4").replace("epochs = 4", "epochs = 2");
        let text = text.replace("[bayes]\nstartup_trials = 3", &format!("{objectives}{extra}[bayes]\nstartup_trials = 3\n{bayes}"));
        let file = runs.path().join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        common::sweep(runs.path()).args(["run", file.to_str().unwrap(), "--workers", "1", "--plain", "--no-plot"]).assert().success();
    };
    sweep_file("lender", "", "");
    sweep_file("free", "", "warm_start = [\"lender\"]");
    sweep_file("bound", "[[constraints]]\nmetric = \"val_iou\"\nmin = 0.999\n", "warm_start = [\"lender\"]");
    sweep_file("tiny", "[[constraints]]\nmetric = \"params\"\nmax = 1000\n", "warm_start = [\"lender\"]");
    let mut store = SqliteStore::open(&runs.path().join("sweep.db")).unwrap();
    let completed = store.trials(&TrialFilter { sweep: Some("lender".into()), status: Some(TrialStatus::Completed) }).unwrap();
    assert!(!completed.is_empty());
    let lent = |store: &mut SqliteStore, sweep: &str| {
        let study = sweep::runner::study::Study::load(store, sweep).unwrap().unwrap();
        let history = study.sampled_history(store).unwrap();
        history.trials.into_iter().filter(|t| t.number == 0).collect::<Vec<_>>()
    };
    // Every lent completed trial carries its value of both objectives, as the lender recorded them.
    let free = lent(&mut store, "free");
    let free_completed: Vec<_> = free.iter().filter(|t| t.state == SearchState::Completed).collect();
    assert_eq!(free_completed.len(), completed.len());
    for t in &free_completed {
        let row = completed.iter().find(|r| r.params == *t.point).expect("a lender's trial");
        assert_eq!(t.scores, [row.best("val_iou", sweep::config::Goal::Maximize).unwrap().0, row.last("params").unwrap()]);
    }
    // Under a bound none of them meets, each is infeasible here, by its last IoU's shortfall.
    let bound = lent(&mut store, "bound");
    let judged: Vec<_> = bound.iter().filter(|t| t.state == SearchState::Infeasible).collect();
    assert_eq!(judged.len(), completed.len(), "{bound:?}");
    for t in judged {
        let last = t.last().unwrap().1;
        assert!((t.violation - (0.999 - last) / 0.999).abs() < 1e-12, "{} at {last}", t.violation);
    }
    // A bound known before training holds for every lent trial, pruned ones too, as it would
    // have stopped each at its claim here.
    let lender = store.trials(&TrialFilter { sweep: Some("lender".into()), status: None }).unwrap();
    let params = lender[0].last("params").unwrap();
    let tiny = lent(&mut store, "tiny");
    assert_eq!(tiny.len(), lender.iter().filter(|t| t.status != TrialStatus::Infeasible).count());
    for t in &tiny {
        assert_eq!(t.state, SearchState::Infeasible, "{t:?}");
        assert!((t.violation - (params - 1000.0) / 1000.0).abs() < 1e-9, "{}", t.violation);
    }
}

#[test]
fn several_objectives_are_read_and_each_bad_one_is_located() {
    let two = "[[objectives]]\nname = \"infer_ms\"\ngoal = \"minimize\"\n[[objectives]]\nname = \"val_iou\"\ngoal = \"maximize\"\n";
    let s = spec::parse(two, Path::new("mo.toml")).unwrap();
    let names: Vec<(&str, Goal)> = s.objectives.iter().map(|o| (o.name.as_str(), o.goal)).collect();
    assert_eq!(names, [("infer_ms", Goal::Minimize), ("val_iou", Goal::Maximize)]);
    // The epochs (the best checkpoint, the pruner) follow the first objective recorded every epoch.
    assert_eq!((s.metric.name.as_str(), s.metric.goal), ("val_iou", Goal::Maximize));
    assert_eq!(s.base.metric, s.metric);
    // Inline tables say the same; one [metric] is one objective.
    let inline = "objectives = [{ name = \"val_loss\", goal = \"min\" }, { name = \"params\", goal = \"min\" }]\n";
    assert_eq!(spec::parse(inline, Path::new("mo.toml")).unwrap().objectives.len(), 2);
    assert_eq!(spec::parse("[metric]\nname = \"val_dice\"\n", Path::new("one.toml")).unwrap().objectives.len(), 1);

    common::check_errors(&format!("[metric]\nname = \"val_iou\"\n{two}"), &[(1, 2, "[metric] and [[objectives]] both say what the sweep optimises")]);
    common::check_errors(
        "[[objectives]]\nname = \"val_iou\"\ngoal = \"max\"\n",
        &[(1, 1, "[[objectives]] names one objective; for one, write [metric]")],
    );
    let four: String =
        ["val_iou", "val_loss", "params", "gflops"].iter().map(|n| format!("[[objectives]]\nname = \"{n}\"\ngoal = \"min\"\n")).collect();
    common::check_errors(&four, &[(1, 1, "names 4 objectives; at most 3")]);
    common::check_errors(
        "[[objectives]]\nname = \"val_iou\"\n[[objectives]]\nname = \"infer_ms\"\ngoal = \"minimize\"\n",
        &[(
            1,
            1,
            "objectives[0].goal is missing: with several objectives each says its direction, goal = \"maximize\" or \"minimize\" (for val_iou most likely \"maximize\")",
        )],
    );
    common::check_errors(
        "[[objectives]]\nname = \"val_iuo\"\ngoal = \"max\"\n[[objectives]]\nname = \"latency\"\ngoal = \"min\"\nfoo = 1\n",
        &[
            (2, 8, "objectives[0].name = \"val_iuo\" is not a metric; use <split>_<metric>"),
            (5, 8, "or a cost: params, gflops, infer_ms, train_seconds"),
            (7, 1, "unknown key objectives[1].foo"),
        ],
    );
    common::check_errors(
        "[[objectives]]\nname = \"val_iou\"\ngoal = \"max\"\n[[objectives]]\nname = \"val_iou\"\ngoal = \"up\"\n",
        &[(6, 8, "objectives[1].goal must be \"maximize\" or \"minimize\"")],
    );
    common::check_errors(
        "[[objectives]]\nname = \"val_iou\"\ngoal = \"max\"\n[[objectives]]\nname = \"val_iou\"\ngoal = \"min\"\n",
        &[(5, 8, "objectives[1].name = \"val_iou\" is named twice")],
    );
    common::check_errors(
        "[[objectives]]\nname = \"params\"\ngoal = \"min\"\n[[objectives]]\nname = \"infer_ms\"\ngoal = \"min\"\n",
        &[(1, 1, "[[objectives]] needs a metric recorded every epoch")],
    );
    // TPE searches several objectives, and learns from other sweeps' trials by every one.
    assert_eq!(spec::parse(&format!("method = \"bayes\"\nrun_cap = 4\n{two}"), Path::new("mo.toml")).unwrap().method, Method::Bayes);
    let warm = spec::parse(&format!("method = \"bayes\"\nrun_cap = 4\n{two}[bayes]\nwarm_start = [\"other\"]\n"), Path::new("mo.toml")).unwrap();
    assert_eq!(warm.warm_start, ["other"]);
    assert!(spec::parse(&format!("{two}[early_terminate]\ntype = \"median\"\n"), Path::new("mo.toml")).unwrap().early_terminate.is_some());
    // A program's trials record no cost of our model, only their epochs' time.
    let program = |cost: &str| {
        format!(
            "[program]\ncommand = [\"python3\", \"train.py\"]\n[[objectives]]\nname = \"val_acc\"\ngoal = \"max\"\n[[objectives]]\nname = \"{cost}\"\ngoal = \"min\"\n[parameters]\nx = {{ values = [1] }}\n"
        )
    };
    common::check_errors(&program("infer_ms"), &[(7, 8, "a [program] trial records what its program reports and its train_seconds")]);
    let timed = spec::parse(&program("train_seconds"), Path::new("p.toml")).unwrap();
    assert_eq!(timed.objectives[1].name, "train_seconds");
}

#[test]
fn constraints_are_read_and_each_bad_one_is_located() {
    let ok = "[[constraints]]\nmetric = \"params\"\nmax = 2e6\n[[constraints]]\nmetric = \"val_iou\"\nmin = 0.5\nmax = 1\n";
    let s = spec::parse(ok, Path::new("c.toml")).unwrap();
    assert_eq!(s.constraints.len(), 2);
    assert!(s.constraints[0].before_training() && !s.constraints[1].before_training());
    assert_eq!(s.constraints[0].broken(3e6).as_deref(), Some("params 3000000 is above max = 2000000"));
    assert_eq!(s.constraints[1].broken(0.25).as_deref(), Some("val_iou 0.25 is below min = 0.5"));
    assert_eq!(s.constraints[1].broken(0.75), None);
    assert!(s.constraints[1].broken(f64::NAN).is_some(), "NaN breaks every bound");
    // How far off, relative to the bound, so that bounds of different scales add up.
    assert_eq!(s.constraints[0].excess(3e6), 0.5);
    assert_eq!(s.constraints[0].excess(2e6), 0.0);
    assert_eq!(s.constraints[1].excess(0.25), 0.5);
    assert_eq!(s.constraints[1].excess(0.75), 0.0);
    assert_eq!(s.constraints[1].excess(f64::NAN), f64::INFINITY);
    common::check_errors("[[constraints]]\nmetric = \"params\"\n", &[(1, 1, "constraints[0] needs min = x, max = x or both")]);
    common::check_errors("[[constraints]]\nmetric = \"latency\"\nmax = 5\n", &[(2, 10, "constraints[0].metric = \"latency\" is not a metric")]);
    common::check_errors("[[constraints]]\nmax = 5\n", &[(1, 1, "constraints[0].metric is missing")]);
    common::check_errors(
        "[[constraints]]\nmetric = \"gflops\"\nmin = 3\nmax = 1\n",
        &[(3, 7, "constraints[0].min = 3 is above max = 1: no trial could hold it")],
    );
    common::check_errors(
        "[[constraints]]\nmetric = \"gflops\"\nmax = \"big\"\nbound = 1\n",
        &[(3, 7, "constraints[0].max must be a finite number"), (4, 1, "unknown key constraints[0].bound")],
    );
    common::check_errors("constraints = 3\n", &[(1, 15, "constraints must be tables")]);
}
