//! The ranges of the numeric flags, checked by clap as the command line is parsed, so that a
//! value out of range is refused before anything runs (exit 2, naming the flag and the range)
//! instead of hanging (100,000 threads) or doing nothing forever (0 workers, a heartbeat every
//! 0 seconds).

/// Worker processes (or SLURM array tasks) of one sweep.
pub const MAX_WORKERS: usize = 1024;
/// Crashes in a row before a trial fails.
pub const MAX_ATTEMPTS: i64 = 1000;
/// The fewest threads `--threads` may ask for beyond 4 per core: a SLURM submit host can be
/// smaller than the compute nodes that `--threads` sizes.
pub const MIN_THREAD_CAP: usize = 64;
/// Heartbeats: at least every 0.1 s, at most every hour.
pub const HEARTBEAT_RANGE: (f64, f64) = (0.1, 3600.0);
/// A run without a heartbeat for this long is reclaimed: 1 s to a week.
pub const STALE_RANGE: (f64, f64) = (1.0, 7.0 * 86400.0);

/// The most CPU threads `--threads` accepts here: 4 per core, or [`MIN_THREAD_CAP`].
pub fn max_threads() -> usize {
    (4 * crate::util::available_cores()).max(MIN_THREAD_CAP)
}

fn whole_number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(s: &str, min: T, max: T) -> Result<T, String> {
    let range = format!("expected a whole number from {min} to {max}");
    match s.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(range),
    }
}

fn seconds(s: &str, (min, max): (f64, f64)) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= min && v <= max => Ok(v),
        _ => Err(format!("expected seconds from {min} to {max}")),
    }
}

/// `--threads`: 1 to [`max_threads`].
pub fn threads(s: &str) -> Result<usize, String> {
    whole_number(s, 1, max_threads())
}

/// `--workers`: 1 to [`MAX_WORKERS`].
pub fn workers(s: &str) -> Result<usize, String> {
    whole_number(s, 1, MAX_WORKERS)
}

/// `--max-attempts`: 1 to [`MAX_ATTEMPTS`].
pub fn max_attempts(s: &str) -> Result<i64, String> {
    whole_number(s, 1, MAX_ATTEMPTS)
}

/// `--max-trials`: at least 1.
pub fn max_trials(s: &str) -> Result<usize, String> {
    whole_number(s, 1, usize::MAX)
}

/// `--heartbeat-every`, in [`HEARTBEAT_RANGE`].
pub fn heartbeat_every(s: &str) -> Result<f64, String> {
    seconds(s, HEARTBEAT_RANGE)
}

/// `--stale-after`, in [`STALE_RANGE`].
pub fn stale_after(s: &str) -> Result<f64, String> {
    seconds(s, STALE_RANGE)
}

/// A heartbeat must come well within the stale time, or live workers would lose their trials:
/// `--stale-after` must be at least twice `--heartbeat-every`.
pub fn check_heartbeat(stale_after: f64, heartbeat_every: f64) -> Result<(), String> {
    if stale_after < 2.0 * heartbeat_every {
        return Err(format!(
            "--stale-after {stale_after} must be at least twice --heartbeat-every {heartbeat_every}, \
             or trials would be reclaimed from live workers between heartbeats"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_range_pass_and_others_name_the_range() {
        assert_eq!(workers("4"), Ok(4));
        assert_eq!(workers("0").unwrap_err(), "expected a whole number from 1 to 1024");
        assert!(threads("100000").unwrap_err().contains(&max_threads().to_string()));
        assert!(threads("-1").is_err() && threads("1.5").is_err());
        assert_eq!(max_attempts("1000"), Ok(1000));
        assert!(max_attempts("0").is_err());
        assert_eq!(heartbeat_every("0.5"), Ok(0.5));
        assert!(heartbeat_every("0").is_err() && heartbeat_every("NaN").is_err() && heartbeat_every("inf").is_err());
        assert!(stale_after("0").unwrap_err().contains("from 1 to 604800"));
        assert!(check_heartbeat(60.0, 5.0).is_ok());
        assert!(check_heartbeat(3.0, 5.0).unwrap_err().contains("--heartbeat-every 5"));
    }
}
