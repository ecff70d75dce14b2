//! Helpers shared by the integration tests: tiny configs, dataset fixtures, the CLI binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use image::{GrayImage, Rgb, RgbImage};
use sweep::config::TrialConfig;

/// A config that trains in a fraction of a second: 32x32 inputs, a 2-level U-Net with 4 filters.
pub fn tiny_config() -> TrialConfig {
    let mut c = TrialConfig::default();
    c.data.image_size = [32, 32];
    c.data.synthetic_count = 24;
    c.data.synthetic_size = [48, 64];
    c.data.val_fraction = 0.25;
    c.model.base_filters = 4;
    c.model.depth = 2;
    c.train.epochs = 3;
    c.train.batch_size = 6;
    c.train.learning_rate = 3e-3;
    c
}

/// `n` tiny trials that differ by their training seed.
pub fn trials(n: usize) -> Vec<sweep::store::NewTrial> {
    (0..n)
        .map(|i| {
            let mut config = tiny_config();
            config.train.seed = i as u64;
            sweep::store::NewTrial { config, params: Default::default() }
        })
        .collect()
}

/// The `sweep` binary under test.
pub fn sweep_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sweep"))
}

/// `sweep --runs-dir <runs> <args>` as an assert_cmd command.
pub fn sweep(runs: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(sweep_bin());
    cmd.arg("--runs-dir").arg(runs).env_remove("SWEEP_STORE").env_remove("SWEEP_RUNS").env_remove("SWEEP_FAULT");
    cmd
}

/// The sweep-file sections of the tiny model on a tiny synthetic set (trains in a second).
pub const TINY_DATA_AND_MODEL: &str = r#"[data]
source = "synthetic"
image_size = 32
val_fraction = 0.25
synthetic_count = 24
synthetic_size = [48, 64]
[model]
base_filters = 4
depth = 2
"#;

/// Checks that parsing sweep-file `text` fails with exactly the given (line, column, fragment)
/// problems, named after `sweeps/bad.toml`.
pub fn check_errors(text: &str, expected: &[(usize, usize, &str)]) {
    let err = sweep::study::spec::parse(text, Path::new("sweeps/bad.toml")).unwrap_err();
    let got: Vec<(usize, usize, String)> = err.problems.iter().map(|p| (p.line, p.column, p.message.clone())).collect();
    assert_eq!(got.len(), expected.len(), "{err}");
    for ((line, col, msg), (el, ec, fragment)) in got.iter().zip(expected) {
        assert_eq!((line, col), (el, ec), "{msg}");
        assert!(msg.contains(fragment), "{msg:?} should mention {fragment:?}");
    }
    assert!(err.to_string().starts_with("sweeps/bad.toml:"), "{err}");
}

/// A sweep file for tests: the tiny model over `grid` values of `augment.hue_delta`.
pub fn tiny_sweep(name: &str, epochs: usize, hue_values: &[f64]) -> String {
    let values: Vec<String> = hue_values.iter().map(|v| format!("{v:?}")).collect();
    format!(
        r#"name = "{name}"
method = "grid"
seed = 3
[metric]
name = "val_iou"
goal = "maximize"
{TINY_DATA_AND_MODEL}[train]
epochs = {epochs}
batch_size = 6
learning_rate = 0.003
[parameters]
"augment.hue_delta" = {{ values = [{}] }}
"#,
        values.join(", ")
    )
}

/// Writes a Carvana-layout dataset of `n` images of `w` x `h`: a car-ish rectangle on a gradient,
/// with palette-GIF masks whose indices are 0/1.
pub fn write_carvana(dir: &Path, n: usize, w: u32, h: u32) -> Vec<(RgbImage, GrayImage)> {
    std::fs::create_dir_all(dir.join("train")).unwrap();
    std::fs::create_dir_all(dir.join("train_masks")).unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let (x0, y0) = ((i as u32 * 7) % (w / 2), (i as u32 * 5) % (h / 2));
        let inside = |x: u32, y: u32| x >= x0 && x < x0 + w / 3 && y >= y0 && y < y0 + h / 3;
        let img = RgbImage::from_fn(w, h, |x, y| if inside(x, y) { Rgb([200, 30, 40]) } else { Rgb([(x * 3) as u8, (y * 3) as u8, 90]) });
        let mask = GrayImage::from_fn(w, h, |x, y| image::Luma([u8::from(inside(x, y))]));
        let id = format!("car{i:03}_01");
        img.save(dir.join("train").join(format!("{id}.jpg"))).unwrap();
        std::fs::write(dir.join("train_masks").join(format!("{id}_mask.gif")), sweep::data::synth::encode_palette_gif(&mask)).unwrap();
        out.push((img, mask));
    }
    out
}

/// The trial a deterministic sampler derives from a history of `n` trials: the tiny config with
/// training seed `n`, swept as `train.seed`.
pub fn seeded_trial(n: usize) -> sweep::store::NewTrial {
    let mut config = tiny_config();
    config.train.seed = n as u64;
    let params = [("train.seed".to_string(), serde_json::json!(n))].into();
    sweep::store::NewTrial { config, params }
}

/// A smart-sweep worker of sweep `s`: asks for a trial up to `cap`, claims the next queued one,
/// records an epoch of `val_iou` and completes it, until there is neither a trial to add nor one
/// to claim. Returns the ids it claimed. Its sampler is a deterministic function of the history's
/// length and of `worker_index`: two askers that saw the same history would both add a config
/// (a different one each) as the same run number, which only the sweep's lock prevents.
pub fn ask_and_train(store: &mut dyn sweep::store::Store, worker: &sweep::store::WorkerInfo, worker_index: usize, cap: usize) -> Vec<String> {
    use sweep::store::{EpochLog, MetricValue, Reclaim, TrialStatus};
    let mut claimed = Vec::new();
    loop {
        let asked = store.ask("s", "val_iou", &[], Some(cap), &mut |h| Some(seeded_trial(h.len() * 100 + worker_index))).unwrap();
        let Some(claim) = store.claim(Some("s"), worker, &Reclaim::after(600.0)).unwrap() else {
            if asked.is_none() {
                return claimed;
            }
            continue;
        };
        let iou = MetricValue { split: sweep::config::Split::Val, name: "iou".into(), value: claim.config.train.seed as f64 / 100.0 };
        store.log_epoch(&claim.lease, &EpochLog { epoch: 1, wall: 1.0, metrics: vec![iou], checkpoints: Vec::new() }).unwrap();
        store.finish(&claim.lease, TrialStatus::Completed, None).unwrap();
        claimed.push(claim.lease.trial);
    }
}

/// The test virtual environment: `$SWEEP_TEST_VENV`, or `<target dir>/test-venv` where
/// `tests/python-deps.sh` puts it (with MLflow, TensorBoard, scikit-learn and PyTorch).
pub fn venv() -> PathBuf {
    let dir = std::env::var_os("SWEEP_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("test-venv"));
    assert!(
        dir.join("bin/python").is_file() && dir.join("bin/mlflow").is_file(),
        "{}: no test virtual environment with mlflow, tensorboard and scikit-learn; run tests/python-deps.sh \
         (with the same CARGO_TARGET_DIR), or point SWEEP_TEST_VENV at one",
        dir.display()
    );
    dir
}

/// Runs a Python script in the test venv with `args`; returns its standard output as JSON.
pub fn python(script: &str, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(venv().join("bin/python")).arg("-c").arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}
