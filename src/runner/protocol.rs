//! What a training program reports: one JSON object per epoch on a line of its own, on its
//! standard output or appended to `$SWEEP_METRICS`:
//!
//! ```text
//! {"epoch": 3, "train_loss": 0.31, "val_loss": 0.28, "val_iou": 0.91}
//! ```
//!
//! `epoch` counts from 1; every other key is a metric named `<split>_<name>` (split `train` or
//! `val`) with a number for value. Python's `json.dumps` writes a NaN or an infinity as the bare
//! words `NaN`, `Infinity` and `-Infinity`, which JSON has not: they are read as those numbers.
//! On standard output, a line that does not mention `"epoch"` in an object is the program's log.

use crate::config::Objective;
use crate::store::MetricValue;

/// One epoch a program reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub epoch: usize,
    pub metrics: Vec<MetricValue>,
}

impl Report {
    /// The value of metric `key` (`val_iou`), if reported.
    pub fn value(&self, key: &str) -> Option<f64> {
        self.metrics.iter().find(|m| format!("{}_{}", m.split.as_str(), m.name) == key).map(|m| m.value)
    }
}

/// A line of a program's standard output.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Report(Report),
    Log,
}

/// Reads one line of standard output: a report, the program's log, or a report that is not one
/// (an error saying what is wrong with it).
pub fn stdout_line(line: &str) -> Result<Line, String> {
    let trimmed = line.trim();
    if !(trimmed.starts_with('{') && trimmed.contains("\"epoch\"")) {
        return Ok(Line::Log);
    }
    report(trimmed).map(Line::Report)
}

/// Reads one line of `$SWEEP_METRICS`, where every line is a report.
pub fn metrics_line(line: &str) -> Result<Report, String> {
    report(line.trim())
}

fn report(text: &str) -> Result<Report, String> {
    let value: serde_json::Value = serde_json::from_str(&with_nonfinite_as_strings(text)).map_err(|e| format!("not a JSON object ({e})"))?;
    let serde_json::Value::Object(object) = value else { return Err("not a JSON object".into()) };
    let epoch = match object.get("epoch") {
        None => return Err("no \"epoch\": each line reports one epoch, e.g. {\"epoch\": 1, \"val_iou\": 0.9}".into()),
        Some(e) => e.as_u64().or_else(|| e.as_f64().filter(|x| x.fract() == 0.0 && *x >= 0.0).map(|x| x as u64)),
    };
    let epoch = match epoch {
        Some(e) if e >= 1 => e as usize,
        _ => return Err(format!("\"epoch\": {} is not an epoch number: epochs count from 1", object["epoch"])),
    };
    let mut metrics = Vec::new();
    for (key, value) in &object {
        if key == "epoch" {
            continue;
        }
        let Some((split, name)) = Objective::parse_reported(key) else {
            return Err(format!(
                "{key:?} is not a metric name: name each <split>_<name>, split train or val, the name letters, digits, _, - and . (e.g. train_loss, val_iou)"
            ));
        };
        let value = match value {
            serde_json::Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            serde_json::Value::String(s) if s == NAN => f64::NAN,
            serde_json::Value::String(s) if s == INF => f64::INFINITY,
            serde_json::Value::String(s) if s == NEG_INF => f64::NEG_INFINITY,
            serde_json::Value::Null => return Err(format!("{key:?} is null: leave out a metric the epoch has no value of")),
            other => return Err(format!("{key:?} is {other}, not a number")),
        };
        metrics.push(MetricValue { split, name: name.to_string(), value });
    }
    if metrics.is_empty() {
        return Err("reports no metric: add the epoch's values, e.g. \"val_iou\": 0.9".into());
    }
    Ok(Report { epoch, metrics })
}

// Strings no metric value is, standing for Python's bare words.
const NAN: &str = "\u{0}NaN";
const INF: &str = "\u{0}Infinity";
const NEG_INF: &str = "\u{0}-Infinity";

/// `text` with the bare words `NaN`, `Infinity` and `-Infinity` outside strings written as
/// strings that JSON can hold (and no program writes: they start with a NUL, escaped).
fn with_nonfinite_as_strings(text: &str) -> std::borrow::Cow<'_, str> {
    if !(text.contains("NaN") || text.contains("Infinity")) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else {
            let word = [("-Infinity", NEG_INF), ("Infinity", INF), ("NaN", NAN)].into_iter().find(|(w, _)| rest.starts_with(w));
            if let Some((word, stands)) = word {
                out.push_str(&serde_json::to_string(stands).expect("a string serialises"));
                rest = &rest[word.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Split;

    fn values(r: &Report) -> Vec<(Split, &str, f64)> {
        r.metrics.iter().map(|m| (m.split, m.name.as_str(), m.value)).collect()
    }

    #[test]
    fn a_report_line_gives_its_epoch_and_metrics_by_split() {
        let Line::Report(r) = stdout_line(r#"  {"epoch": 3, "val_iou": 0.91, "train_loss": 0.2, "val_acc.top-1": 1}"#).unwrap() else { panic!() };
        assert_eq!(r.epoch, 3);
        assert_eq!(values(&r), [(Split::Train, "loss", 0.2), (Split::Val, "acc.top-1", 1.0), (Split::Val, "iou", 0.91)]);
        assert_eq!(r.value("val_iou"), Some(0.91));
        assert_eq!(stdout_line(r#"{"epoch": 2.0, "val_iou": 1}"#).map(|l| matches!(l, Line::Report(Report { epoch: 2, .. }))), Ok(true));
    }

    #[test]
    fn other_lines_are_the_programs_log() {
        for line in ["epoch 3: loss 0.2", "", "{'epoch': 3}", r#"{"lr": 0.1}"#, "[1, 2]", "Traceback (most recent call last):"] {
            assert_eq!(stdout_line(line), Ok(Line::Log), "{line}");
        }
    }

    #[test]
    fn pythons_nan_and_infinities_are_read_as_numbers_outside_strings_only() {
        let r = metrics_line(r#"{"epoch": 1, "train_loss": NaN, "val_loss": Infinity, "val_x": -Infinity}"#).unwrap();
        let v = values(&r);
        assert!(v[0].2.is_nan() && v[1].2 == f64::INFINITY && v[2].2 == f64::NEG_INFINITY, "{v:?}");
        let err = metrics_line(r#"{"epoch": 1, "val_note": "NaN here"}"#).unwrap_err();
        assert!(err.contains("\"NaN here\", not a number"), "{err}");
        let err = metrics_line(r#"{"epoch": 1, "val_x": "NaN"}"#).unwrap_err();
        assert!(err.contains("not a number"), "a string is not a number even when it reads NaN: {err}");
    }

    #[test]
    fn a_line_that_means_to_report_but_does_not_says_what_is_wrong() {
        let cases = [
            (r#"{"epoch": 3, "val_iou": 0.9"#, "not a JSON object"),
            (r#"{"epoch": 0, "val_iou": 0.9}"#, "epochs count from 1"),
            (r#"{"epoch": -1, "val_iou": 0.9}"#, "epochs count from 1"),
            (r#"{"epoch": "3", "val_iou": 0.9}"#, "epochs count from 1"),
            (r#"{"epoch": 3, "loss": 0.9}"#, "\"loss\" is not a metric name"),
            (r#"{"epoch": 3, "val_iou": null}"#, "is null"),
            (r#"{"epoch": 3, "val_iou": true}"#, "is true, not a number"),
            (r#"{"epoch": 3}"#, "reports no metric"),
        ];
        for (line, says) in cases {
            let err = stdout_line(line).unwrap_err();
            assert!(err.contains(says), "{line}: {err}");
        }
        assert!(metrics_line("epoch 3").unwrap_err().contains("not a JSON object"));
        assert!(metrics_line(r#"{"val_iou": 0.9}"#).unwrap_err().contains("no \"epoch\""));
    }
}
