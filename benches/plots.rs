//! Rendering every chart of a 50-run sweep: learning curves, objective against each parameter,
//! parallel coordinates, the best run's panels and prediction grid, and the index page.

#[path = "common.rs"]
mod common;

use std::path::Path;

use sweep::store::{NewTrial, Reclaim, SqliteStore, Store, TrialStatus, WorkerInfo};
use sweep::train::checkpoint::EpochSummary;
use sweep::train::device::DeviceSpec;
use sweep::train::metrics::SplitMetrics;
use sweep::train::{self, Faults, TrialContext};

fn main() {
    common::header("charts");
    let dir = tempfile::tempdir().unwrap();
    let runs_dir = dir.path().join("runs");
    let hues: Vec<String> = (0..50).map(|i| format!("{:.2}", i as f64 * 0.01)).collect();
    let text = format!(
        "name = \"b\"\n[data]\nimage_size = 32\nsynthetic_count = 24\nsynthetic_size = [48, 64]\nval_fraction = 0.25\n[model]\nbase_filters = 4\ndepth = 2\n\
         [train]\nepochs = 20\nbatch_size = 6\n[parameters]\n\"augment.hue_delta\" = {{ values = [{}] }}\n\"train.learning_rate\" = {{ value = 0.003 }}\n",
        hues.join(", ")
    );
    let spec = sweep::study::spec::parse(&text, Path::new("b.toml")).unwrap();
    let mut store = SqliteStore::open(&runs_dir.join("sweep.db")).unwrap();
    store.register_sweep("b", &spec.text).unwrap();
    let trials: Vec<NewTrial> = spec.trials(None).into_iter().map(|t| NewTrial { config: t.config, params: t.params }).collect();
    store.enqueue("b", &trials).unwrap();
    let worker = WorkerInfo { host: "bench".into(), pid: 1 };
    let device = DeviceSpec::Cpu.open().unwrap();
    for i in 0..50 {
        let claim = store.claim(Some("b"), &worker, &Reclaim::after(3600.0)).unwrap().unwrap();
        if i == 0 {
            // One real run, so that the prediction grid has a checkpoint to load.
            let mut config = claim.config.clone();
            config.train.epochs = 20;
            let ctx = TrialContext {
                trial_dir: sweep::train::checkpoint::TrialDir::of(&runs_dir, "b", &claim.lease.trial),
                runs_root: &runs_dir,
                device: device.clone(),
                faults: Faults::default(),
            };
            struct Log<'a>(&'a mut SqliteStore, sweep::store::Lease);
            impl train::Observer for Log<'_> {
                fn on_epoch(&mut self, s: &EpochSummary, c: &[train::SavedCheckpoint]) -> Result<(), String> {
                    self.0.log_epoch(&self.1, &sweep::runner::worker::epoch_log(s, c)).map_err(|e| e.to_string())
                }
            }
            train::train(&config, &ctx, &mut Log(&mut store, claim.lease.clone())).unwrap();
        } else {
            for e in 1..=20usize {
                let v = 0.05 + 0.1 * (i as f64 / 50.0) * e as f64 / 20.0;
                let m = SplitMetrics { loss: 1.0 - v, dice: v, iou: v, fg_iou: v * 0.8 };
                let s = EpochSummary { epoch: e, train: m, val: m, val_full: None, learning_rate: 3e-3, seconds: 1.0, wall: e as f64 };
                store.log_epoch(&claim.lease, &sweep::runner::worker::epoch_log(&s, &[])).unwrap();
            }
        }
        store.finish(&claim.lease, TrialStatus::Completed, None).unwrap();
    }
    let mut files = 0;
    let times = common::time_n(1, 3, || {
        let written = sweep::runner::draw_charts_to(&store, "b", &runs_dir, None, DeviceSpec::Cpu, 4).unwrap();
        assert!(written.errors.is_empty(), "{:?}", written.errors);
        files = written.files.len();
    });
    println!("\n| what | median |");
    println!("|---|--:|");
    println!(
        "| every chart of a 50-run sweep ({files} files: 3 learning-curve charts, 2 scatter, parallel coordinates, best run's panels, prediction grid of 4, index.html) | {:.2} s |",
        common::median(&times).as_secs_f64()
    );
}
