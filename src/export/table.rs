//! `sweep export --format csv|json` (and `sweep show --json`): every trial with its attributes,
//! parameters and per-epoch metrics, as one file. Pure functions from the read model to text.

use std::collections::BTreeSet;

use crate::report::{annotation_cells, annotation_columns, annotation_header, csv_line, epochs_of, fmt_param_exact, json_number, param_keys};
use crate::store::TrialData;

/// One CSV row per trial and epoch: attributes, parameters, the epoch, one column per metric,
/// then the tags and the note.
pub fn csv(trials: &[TrialData]) -> String {
    let keys = param_keys(trials);
    let metric_keys: BTreeSet<String> = trials.iter().flat_map(|t| t.metrics.iter().map(|m| m.key())).collect();
    let groups = crate::report::group_ids(trials);
    let mut header = vec!["run".to_string(), "sweep".into(), "status".into(), "seed".into()];
    if !groups.is_empty() {
        header.push("group".into());
    }
    header.extend(keys.iter().cloned());
    header.push("epoch".into());
    header.extend(metric_keys.iter().cloned());
    let annotations = annotation_header(trials);
    header.extend(annotation_columns(&annotations));
    let mut out = csv_line(&header);
    for t in trials {
        let r = &t.row;
        for (epoch, values) in epochs_of(&t.metrics) {
            let mut row = vec![r.id.clone(), r.sweep.clone(), r.status.as_str().into(), r.seed.to_string()];
            if !groups.is_empty() {
                row.push(groups.get(&r.id).cloned().unwrap_or_default());
            }
            row.extend(keys.iter().map(|k| r.params.get(k).map(fmt_param_exact).unwrap_or_default()));
            row.push(epoch.to_string());
            row.extend(metric_keys.iter().map(|k| values.get(k).map(|v| v.to_string()).unwrap_or_default()));
            row.extend(annotation_cells(r, &annotations));
            out.push_str(&csv_line(&row));
        }
    }
    out
}

/// Every trial as its row (attributes, parameters, summaries) with an `epochs` array.
pub fn json(trials: &[TrialData]) -> serde_json::Value {
    let groups = crate::report::group_ids(trials);
    let items = trials.iter().map(|t| {
        let mut v = serde_json::to_value(&t.row).expect("trial rows serialise");
        if let Some(group) = groups.get(&t.row.id) {
            v["group"] = group.clone().into();
        }
        let epochs = epochs_of(&t.metrics).into_iter().map(|(epoch, values)| {
            let mut obj = serde_json::Map::new();
            obj.insert("epoch".into(), epoch.into());
            obj.extend(values.into_iter().map(|(k, val)| (k, json_number(val))));
            serde_json::Value::Object(obj)
        });
        v["epochs"] = serde_json::Value::Array(epochs.collect());
        v
    });
    serde_json::Value::Array(items.collect())
}
