//! Property tests of the two parsers that read user text: sweep files (TOML, then validation)
//! and `--where` filters. Whatever the input, they never panic, never hang, and answer with a
//! value or with errors that each say where. Cases are drawn both from arbitrary text and from
//! the files' own vocabulary (keys, sections, operators), so that validation is reached, not
//! only the tokenizer. `cargo test` runs proptest's default 256 cases per property (a few
//! seconds); `PROPTEST_CASES=100000 cargo test --test properties` is the long run
//! recorded in BENCHMARKS.md.

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sweep::report::filter::Filter;

/// Far more than any parse takes; a case over it is a hang.
const LIMIT: Duration = Duration::from_secs(2);

fn value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}").replace("NaN", "nan")),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("1e308".to_string()),
        Just("nan".to_string()),
        Just("true".to_string()),
        prop::sample::select(vec!["grid", "random", "bayes", "val_iou", "train_loss", "maximize", "median", "asha", "hyperband", "adam", "synthetic", "log_uniform_values", "int_uniform", "q_uniform", "categorical", "uniform", ""])
            .prop_map(|s| format!("{s:?}")),
        "\\PC{0,12}".prop_map(|s| format!("{s:?}")),
    ];
    scalar.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|kv| format!("{{ {} }}", kv.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", "))),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "name", "description", "method", "seed", "run_cap", "goal", "source", "image_size", "val_fraction", "split_by", "base_filters",
            "depth", "epochs", "batch_size", "learning_rate", "optimizer", "hue_delta", "horizontal_flip", "values", "value", "distribution",
            "min", "max", "q", "probabilities", "when", "type", "min_iter", "max_iter", "eta", "warmup", "startup_trials", "candidates",
        ])
        .prop_map(str::to_string),
        prop::sample::select(vec![
            "\"augment.hue_delta\"", "\"train.learning_rate\"", "\"train.optimizer\"", "\"train.momentum\"", "\"model.depth\"",
            "\"data.image_size\"", "\"train.seed\"", "\"augment.nope\"",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,8}",
    ]
}

fn section() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "[metric]", "[data]", "[model]", "[train]", "[augment]", "[parameters]", "[bayes]", "[early_terminate]", "[x]", "[[train]]"])
        .prop_map(str::to_string)
}

/// A sweep file from the vocabulary, sometimes with a stray character dropped in.
fn sweep_file() -> impl Strategy<Value = String> {
    let body = prop::collection::vec((section(), prop::collection::vec((key(), value()), 0..6)), 0..6).prop_map(|sections| {
        sections
            .iter()
            .map(|(header, pairs)| {
                let lines: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{header}\n{}\n", lines.join("\n"))
            })
            .collect::<String>()
    });
    (body, prop::option::of((any::<prop::sample::Index>(), any::<char>()))).prop_map(|(mut text, stray)| {
        if let Some((at, c)) = stray {
            let boundaries: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
            text.insert(boundaries[at.index(boundaries.len())], c);
        }
        text
    })
}

fn check_sweep_file(text: &str) -> Result<(), TestCaseError> {
    let started = Instant::now();
    let result = sweep::study::spec::parse(text, Path::new("prop.toml"));
    prop_assert!(started.elapsed() < LIMIT, "took {:?}", started.elapsed());
    if let Err(e) = result {
        prop_assert!(!e.problems.is_empty(), "an error names at least one problem");
        let lines = text.split('\n').count();
        for p in &e.problems {
            prop_assert!(p.line >= 1 && p.line <= lines && p.column >= 1, "{}:{}: {} ({lines} lines)", p.line, p.column, p.message);
            prop_assert!(!p.message.is_empty());
        }
    }
    Ok(())
}

fn where_expression() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        prop::sample::select(vec![
            "val_iou", "final_val_loss", "best_train_dice", "train.learning_rate", "augment.horizontal_flip", "status", "epochs", "host",
            "seed", "and", "or", "not", "AND", "(", ")", "(", ")", "<", "<=", ">", ">=", "=", "==", "!=", "!", "0.5", "-1e-3", "1e", ".5",
            "-", "true", "false", "abc", "'adam'", "\"x y\"", "'", "\"", "completed", "failed",
        ])
        .prop_map(str::to_string),
        "\\PC{0,4}",
    ];
    let soup = (prop::collection::vec(token, 0..24), any::<bool>()).prop_map(|(tokens, spaced)| tokens.join(if spaced { " " } else { "" }));
    let well_formed = (comparison_field(), prop::sample::select(vec!["<", "<=", ">", ">=", "=", "!="]), comparison_value())
        .prop_map(|(f, op, v)| format!("{f} {op} {v}"))
        .prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                (inner.clone(), prop::sample::select(vec!["and", "or"]), inner.clone()).prop_map(|(a, j, b)| format!("{a} {j} {b}")),
                inner.clone().prop_map(|a| format!("not {a}")),
                inner.prop_map(|a| format!("({a})")),
            ]
        });
    // A well-formed expression with one token dropped, as a typo would.
    let broken = (well_formed.clone(), any::<prop::sample::Index>()).prop_map(|(text, at)| {
        let words: Vec<&str> = text.split(' ').collect();
        let drop = at.index(words.len());
        words.iter().enumerate().filter(|(i, _)| *i != drop).map(|(_, w)| *w).collect::<Vec<_>>().join(" ")
    });
    prop_oneof![soup, well_formed, broken]
}

fn comparison_field() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "val_iou", "final_val_loss", "best_train_dice", "train_lr", "train.learning_rate", "train.optimizer", "augment.horizontal_flip",
        "augment.hue_delta", "status", "epochs", "attempt", "host", "seed", "sweep", "id", "colour",
    ])
    .prop_map(str::to_string)
}

fn comparison_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        prop::sample::select(vec!["true", "false", "adam", "'sgd'", "\"a b\"", "completed", "failed", "abc", "1e-3", "'0.5'"]).prop_map(str::to_string),
    ]
}

fn check_where(text: &str) -> Result<(), TestCaseError> {
    let started = Instant::now();
    let result = Filter::parse(text).and_then(|f| f.check_values(text).map(|()| f));
    prop_assert!(started.elapsed() < LIMIT, "took {:?}", started.elapsed());
    if let Err(e) = result {
        let column = e.strip_prefix("at column ").and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<usize>().ok());
        match column {
            Some(col) => prop_assert!(col >= 1 && col <= text.chars().count() + 1, "{e}"),
            None => prop_assert!(e.starts_with("at the end of"), "an error says where: {e}"),
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn any_text_as_a_sweep_file_is_a_spec_or_located_errors(text in "\\PC{0,300}") {
        check_sweep_file(&text)?;
    }

    #[test]
    fn sweep_files_from_the_vocabulary_are_a_spec_or_located_errors(text in sweep_file()) {
        check_sweep_file(&text)?;
    }

    #[test]
    fn any_text_as_a_where_filter_is_a_filter_or_an_error_that_says_where(text in "\\PC{0,200}") {
        check_where(&text)?;
    }

    #[test]
    fn where_filters_from_the_vocabulary_are_a_filter_or_an_error_that_says_where(text in where_expression()) {
        check_where(&text)?;
    }
}

#[test]
fn the_deepest_inputs_are_answered_at_once() {
    let deep_toml = format!("x = {}{}", "[".repeat(50_000), "]".repeat(50_000));
    check_sweep_file(&deep_toml).unwrap();
    let deep_inline = format!("x = {}1{}", "{ a = ".repeat(20_000), " }".repeat(20_000));
    check_sweep_file(&deep_inline).unwrap();
    check_where(&"(".repeat(100_000)).unwrap();
    check_where(&"not ".repeat(100_000)).unwrap();
}
