//! What `sweep run` shows while workers train: on a terminal, a line per active worker (run id,
//! the parameters that vary, epoch and step, current loss, last val iou, ETA) under an overall
//! bar; otherwise plain log lines, one per event that matters.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::{fmt_num, short_params};
use crate::runner::worker::Event;
use crate::store::TrialStatus;
use crate::util::format_duration;

/// Where one worker's trial stands.
#[derive(Debug, Clone)]
struct SearchState {
    run: String,
    params: String,
    epochs: usize,
    epoch: usize,
    step: usize,
    steps: usize,
    loss: Option<f64>,
    val_iou: Option<f64>,
    /// When the first step of this attempt was seen, and how far the trial was then.
    origin: Option<(Instant, f64)>,
}

impl SearchState {
    fn fraction(&self) -> f64 {
        if self.epochs == 0 || self.steps == 0 {
            return 0.0;
        }
        ((self.epoch.saturating_sub(1)) as f64 + self.step as f64 / self.steps as f64) / self.epochs as f64
    }

    fn eta(&self) -> Option<f64> {
        let (t0, f0) = self.origin?;
        let f = self.fraction();
        let elapsed = t0.elapsed().as_secs_f64();
        (f > f0 && elapsed > 0.5).then(|| (1.0 - f) * elapsed / (f - f0))
    }

    fn line(&self) -> String {
        let mut parts = vec![format!("{} {}", self.run, self.params)];
        if self.steps > 0 {
            parts.push(format!("epoch {}/{} step {}/{}", self.epoch, self.epochs, self.step, self.steps));
        } else {
            parts.push("loading".into());
        }
        if let Some(l) = self.loss {
            parts.push(format!("loss {}", fmt_num(l)));
        }
        if let Some(v) = self.val_iou {
            parts.push(format!("val_iou {}", fmt_num(v)));
        }
        if let Some(eta) = self.eta() {
            parts.push(format!("ETA {}", format_duration(eta)));
        }
        parts.join(" | ")
    }
}

/// The sweep's pace so far, from what the workers reported: how long epochs took, and how many
/// epochs a trial has. Nothing is guessed before an epoch has been timed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pace {
    epoch_seconds: f64,
    epochs_timed: usize,
    trial_epochs: usize,
    trials_seen: usize,
}

impl Pace {
    /// An epoch ended after `seconds`.
    pub fn epoch(&mut self, seconds: f64) {
        if seconds.is_finite() && seconds >= 0.0 {
            self.epoch_seconds += seconds;
            self.epochs_timed += 1;
        }
    }

    /// A trial of `epochs` epochs was claimed.
    pub fn trial(&mut self, epochs: usize) {
        self.trial_epochs += epochs;
        self.trials_seen += 1;
    }

    /// Seconds until the sweep ends: the epochs left (`running` holds each running trial's
    /// epochs left; each of `not_started` trials has as many as the trials seen, on average) at
    /// the mean epoch time, trained `workers` at a time. None until an epoch has been timed.
    pub fn eta(&self, running: &[f64], not_started: usize, workers: usize) -> Option<f64> {
        if self.epochs_timed == 0 || self.trials_seen == 0 {
            return None;
        }
        let mean_epoch = self.epoch_seconds / self.epochs_timed as f64;
        let epochs_per_trial = self.trial_epochs as f64 / self.trials_seen as f64;
        let epochs_left = running.iter().sum::<f64>() + not_started as f64 * epochs_per_trial;
        let parallel = workers.min(running.len() + not_started).max(1);
        Some(epochs_left * mean_epoch / parallel as f64)
    }
}

pub struct Progress {
    bars: Option<(MultiProgress, Vec<ProgressBar>, ProgressBar)>,
    trials: Vec<Option<SearchState>>,
    done: usize,
    total: usize,
    failed: usize,
    pace: Pace,
    started: Instant,
}

impl Progress {
    /// `total` trials in the sweep, `done` of them already finished, `workers` worker slots.
    pub fn new(sweep: &str, workers: usize, total: usize, done: usize, force_plain: bool) -> Self {
        let bars = (!force_plain && std::io::stdout().is_terminal()).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(5));
            let style = ProgressStyle::with_template("{prefix:.dim} {msg}").expect("valid template");
            let worker_bars: Vec<ProgressBar> = (0..workers)
                .map(|i| {
                    let bar = multi.add(ProgressBar::new(1).with_style(style.clone()).with_prefix(format!("w{}", i + 1)));
                    bar.set_message("starting");
                    bar
                })
                .collect();
            let overall = multi.add(
                ProgressBar::new(total as u64).with_style(
                    ProgressStyle::with_template("{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} trials ({elapsed}) {msg}")
                        .expect("valid template")
                        .progress_chars("=> "),
                ),
            );
            overall.set_prefix(format!("sweep {sweep}"));
            overall.set_position(done as u64);
            overall.enable_steady_tick(Duration::from_millis(500));
            (multi, worker_bars, overall)
        });
        Self { bars, trials: vec![None; workers], done, total, failed: 0, pace: Pace::default(), started: Instant::now() }
    }

    /// Prints a line above the bars (or plainly).
    pub fn println(&self, line: &str) {
        match &self.bars {
            Some((multi, _, _)) => {
                let _ = multi.println(line);
            }
            None => crate::outln!("{line}"),
        }
    }

    fn ensure_slot(&mut self, worker: usize) {
        if worker >= self.trials.len() {
            self.trials.resize(worker + 1, None);
            if let Some((multi, bars, _)) = &mut self.bars {
                let style = ProgressStyle::with_template("{prefix:.dim} {msg}").expect("valid template");
                while bars.len() <= worker {
                    let bar = multi.insert(bars.len(), ProgressBar::new(1).with_style(style.clone()).with_prefix(format!("w{}", bars.len() + 1)));
                    bars.push(bar);
                }
            }
        }
    }

    pub fn event(&mut self, worker: usize, event: &Event) {
        self.ensure_slot(worker);
        match event {
            Event::Claimed { run, params, resumed, epochs, attempt } => {
                self.pace.trial(*epochs);
                self.trials[worker] = Some(SearchState {
                    run: run.clone(),
                    params: short_params(params),
                    epochs: *epochs,
                    epoch: 0,
                    step: 0,
                    steps: 0,
                    loss: None,
                    val_iou: None,
                    origin: None,
                });
                if self.bars.is_none() {
                    let how = if *resumed { format!("resumed (attempt {attempt})") } else { "started".into() };
                    crate::outln!("[{run}] {how} on worker {} {}", worker + 1, short_params(params));
                }
            }
            Event::Step { epoch, epochs, step, steps, loss, .. } => {
                if let Some(t) = &mut self.trials[worker] {
                    (t.epoch, t.epochs, t.step, t.steps, t.loss) = (*epoch, *epochs, *step, *steps, Some(*loss));
                    if t.origin.is_none() {
                        t.origin = Some((Instant::now(), t.fraction()));
                    }
                }
            }
            Event::Epoch { run, epoch, epochs, train_loss, val_loss, val_dice, val_iou, seconds } => {
                self.pace.epoch(*seconds);
                if let Some(t) = &mut self.trials[worker] {
                    t.val_iou = Some(*val_iou);
                }
                if self.bars.is_none() {
                    crate::outln!(
                        "[{run}] epoch {epoch}/{epochs}  train loss {}  val loss {}  dice {}  iou {}  ({})",
                        fmt_num(*train_loss),
                        fmt_num(*val_loss),
                        fmt_num(*val_dice),
                        fmt_num(*val_iou),
                        format_duration(*seconds)
                    );
                }
            }
            Event::Finished { run, status, error, seconds } => {
                self.trials[worker] = None;
                self.done += 1;
                if matches!(status, TrialStatus::Failed | TrialStatus::Diverged) {
                    self.failed += 1;
                }
                let line = match error {
                    Some(e) => format!("[{run}] {} after {}: {e}", status.as_str(), format_duration(*seconds)),
                    None => format!("[{run}] {} in {}", status.as_str(), format_duration(*seconds)),
                };
                self.println(&line);
            }
            Event::Released { run } => {
                self.trials[worker] = None;
                self.println(&format!("[{run}] stopped at its last checkpoint; run the same command to resume"));
            }
            Event::Idle { .. } => self.trials[worker] = None,
        }
        self.redraw();
    }

    /// A worker process ended (its bar goes idle).
    pub fn worker_exited(&mut self, worker: usize) {
        self.ensure_slot(worker);
        self.trials[worker] = None;
        self.redraw();
    }

    /// A run was given back to the queue by the supervisor (its worker died).
    pub fn requeued(&mut self, line: &str) {
        self.println(line);
    }

    /// A run was marked failed by the supervisor (its worker died too often).
    pub fn failed_by_supervisor(&mut self, line: &str) {
        self.done += 1;
        self.failed += 1;
        self.println(line);
        self.redraw();
    }

    fn redraw(&self) {
        if let Some((_, bars, overall)) = &self.bars {
            for (bar, trial) in bars.iter().zip(&self.trials) {
                bar.set_message(trial.as_ref().map_or_else(|| "idle".to_string(), SearchState::line));
            }
            overall.set_position(self.done.min(self.total) as u64);
            overall.set_message(self.overall_message());
        }
    }

    /// After the overall bar: failures, and the ETA once the pace is known.
    fn overall_message(&self) -> String {
        let running: Vec<f64> = self.trials.iter().flatten().map(|t| t.epochs as f64 * (1.0 - t.fraction())).collect();
        let not_started = self.total.saturating_sub(self.done + running.len());
        let mut parts = Vec::new();
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        if let Some(eta) = self.pace.eta(&running, not_started, self.trials.len()) {
            parts.push(format!("ETA {}", format_duration(eta)));
        }
        parts.join(", ")
    }

    /// Removes the bars.
    pub fn finish(self) -> Duration {
        if let Some((multi, bars, overall)) = self.bars {
            for bar in bars {
                bar.finish_and_clear();
            }
            overall.finish_and_clear();
            let _ = multi.clear();
        }
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15, item 22: the bar said `ETA 0s` at 0/4 trials and `ETA 3w` at 2/4.
    #[test]
    fn the_eta_is_hidden_until_an_epoch_is_timed_then_follows_the_epochs_left() {
        let mut pace = Pace::default();
        assert_eq!(pace.eta(&[], 4, 2), None, "nothing known at 0/4");
        pace.trial(3);
        pace.trial(3);
        assert_eq!(pace.eta(&[3.0, 3.0], 2, 2), None, "no epoch timed yet");
        pace.epoch(10.0);
        pace.epoch(10.0);
        // Two trials at 2 of 3 epochs left each, two of 3 epochs to start: 10 epochs of 10 s, two at a time.
        assert_eq!(pace.eta(&[2.0, 2.0], 2, 2), Some(50.0));
        // At 2/4 done, the two left running on two workers with one epoch each to go: 10 s.
        assert_eq!(pace.eta(&[1.0, 1.0], 0, 2), Some(10.0));
        // The last trial alone: one worker works, whatever the slots.
        assert_eq!(pace.eta(&[1.5], 0, 4), Some(15.0));
        pace.epoch(f64::NAN);
        assert_eq!(pace.eta(&[1.0], 0, 1), Some(10.0), "a bad duration is not counted");
    }
}
