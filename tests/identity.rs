//! The identity of recorded trials. A trial is the SHA-256 of its resolved config's canonical
//! JSON; a sweep run twice never trains a config twice because of it. A new setting, a renamed
//! field or a changed default would silently give every recorded trial a new identity (and
//! retrain it), so the identities of the shipped sweeps are pinned here: if this test fails, the
//! change renames trials, and needs a migration or a setting left out of the JSON at its default.

use std::path::Path;

use sweep::study::spec;

/// The first 16 hex digits of each trial's config hash, in expansion order.
fn identities(file: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps").join(file);
    let spec = spec::load(&path, &[]).unwrap_or_else(|e| panic!("{file}: {e}"));
    spec.trials(None).iter().map(|t| t.config.hash()[..16].to_string()).collect()
}

#[test]
fn the_trials_of_the_shipped_grid_sweep_keep_their_identities() {
    assert_eq!(identities("hue.toml"), GOLDEN_HUE);
}

#[test]
fn the_trials_of_the_shipped_random_sweep_keep_their_identities() {
    assert_eq!(identities("optimizer.toml"), GOLDEN_OPTIMIZER);
}

/// `sweeps/hue.toml`: the grid over `augment.hue_delta`, in file order.
const GOLDEN_HUE: [&str; 4] = ["7326060d881faa78", "68f8abfb18a1d069", "930f162dbcc09e19", "17388c9bb199bd97"];
/// `sweeps/optimizer.toml`: the random draws from the sweep's seed, in draw order.
const GOLDEN_OPTIMIZER: [&str; 8] = [
    "abaa13c94d3159c1",
    "419649f733434638",
    "a74437ab9d855f07",
    "c43b174973ada725",
    "ce0be16e35239bb2",
    "b58a801975ad15d4",
    "eb5bb2f361750ecd",
    "2c8594613dd08c9c",
];
