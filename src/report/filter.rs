//! `--where` filters and `--sort` keys over listed runs, e.g.
//! `train.learning_rate < 0.01 and val_iou > 0.9 and not status = failed`.
//!
//! A field is a run attribute (`id`, `sweep`, `status`, `attempt`, `epochs`, `seed`, `host`), a
//! setting by its key (`augment.hue_delta`: swept or not, read from the run's resolved config;
//! the caller fills [`TrialRow::settings`] for settings that were not swept), or a metric: `val_iou` is the run's best
//! value over its epochs (lowest for losses, highest otherwise), `final_val_iou` its last value,
//! `best_val_iou` the same as `val_iou`, or a tag: `tag.team` is the value of the trial's tag
//! `team` (a trial without it matches no comparison of it). Filters are evaluated in Rust on the listed rows: user
//! text never becomes SQL.

use std::collections::{BTreeMap, HashMap};

use crate::config::Objective;
use crate::config::{COST_METRICS, Goal};
use crate::report::ReportError;
use crate::store::{Detail, Store, TrialFilter, TrialRow, TrialStatus, is_setting, settings_of};

/// What `sweep ls` lists: runs of a sweep and status, kept by a `--where` filter and ordered by
/// a `--sort` key (metrics best first, other fields ascending; runs without the key last).
#[derive(Debug, Clone, Default)]
pub struct Listing<'a> {
    pub sweep: Option<String>,
    pub status: Option<TrialStatus>,
    pub filter: Option<&'a str>,
    pub sort: Option<&'a str>,
}

/// The trials a [`Listing`] selects. A filter that does not parse, or a field that is neither a
/// setting, a metric nor a trial attribute, is a usage error naming the flag and the fix.
pub fn list(store: &dyn Store, listing: &Listing) -> Result<Vec<TrialRow>, ReportError> {
    let trials = TrialFilter { sweep: listing.sweep.clone(), status: listing.status };
    let mut runs = store.trials(&trials)?;
    let keys = crate::report::param_keys(&runs);
    // The metrics recorded are fields too (a program's own `val_accuracy`).
    let recorded: std::collections::BTreeSet<&String> = runs.iter().flat_map(|r| r.metrics.keys()).collect();
    let known: Vec<String> = keys.iter().cloned().chain(recorded.into_iter().cloned()).collect();
    let filter = listing
        .filter
        .map(|text| Filter::parse(text).and_then(|f| f.check_values(text).map(|()| f)).map_err(|e| ReportError::Usage(format!("--where: {e}"))))
        .transpose()?;
    if let Some(f) = filter.iter().flat_map(|f| f.fields()).find(|f| !is_known_field(f, &known)) {
        return Err(ReportError::Usage(format!(
            "--where: unknown field {f:?}; use a setting such as train.learning_rate{}, a metric such as val_iou or final_val_loss, \
             a tag such as tag.team, or one of id, sweep, status, attempt, epochs, seed, host",
            if keys.is_empty() { String::new() } else { format!(" (swept: {})", keys.join(", ")) }
        )));
    }
    if let Some(key) = listing.sort
        && !is_known_field(key, &known)
    {
        return Err(ReportError::Usage(format!(
            "--sort: unknown field {key:?}; use a metric such as val_iou or a setting such as train.learning_rate"
        )));
    }
    // Settings that were not swept are read from the trials' resolved configs (in one read), only
    // when asked for.
    let wanted: Vec<&str> = filter.iter().flat_map(|f| f.fields()).chain(listing.sort).filter(|f| is_setting(f)).collect();
    if runs.iter().any(|run| wanted.iter().any(|k| !run.params.contains_key(*k))) {
        let detail = Detail { settings: true, ..Detail::ROWS };
        let mut settings: HashMap<String, BTreeMap<String, serde_json::Value>> =
            store.trial_data(&trials, detail)?.into_iter().map(|t| (t.row.id, t.row.settings)).collect();
        for run in &mut runs {
            let Some(all) = settings.remove(&run.id) else { continue };
            run.settings.extend(wanted.iter().filter_map(|k| all.get(*k).map(|v| (k.to_string(), v.clone()))));
        }
    }
    if let Some(filter) = &filter {
        runs.retain(|r| filter.matches(r));
    }
    if let Some(key) = listing.sort {
        sort_by_field(&mut runs, key);
    }
    Ok(runs)
}

/// Orders trials by a field: a metric best first ([`Goal::order`], NaN last), anything else
/// ascending; trials without the field last.
pub fn sort_by_field(runs: &mut [TrialRow], key: &str) {
    let goal = is_metric(key).then(|| Goal::for_metric(key));
    runs.sort_by(|a, b| match (field(a, key), field(b, key)) {
        (Some(Value::Num(x)), Some(Value::Num(y))) => goal.map_or_else(|| x.total_cmp(&y), |g| g.order(x, y)),
        (Some(x), Some(y)) => x.display().cmp(&y.display()),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}

/// A value a field takes on a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(f64),
    Str(String),
    Bool(bool),
}

impl Value {
    pub fn display(&self) -> String {
        match self {
            Value::Num(v) => crate::report::fmt_num(*v),
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
        }
    }
}

/// Looks a field up on a run. None when the run has no such value (yet).
pub fn field(run: &TrialRow, name: &str) -> Option<Value> {
    match name {
        "id" | "run" => return Some(Value::Str(run.id.clone())),
        "sweep" => return Some(Value::Str(run.sweep.clone())),
        "status" => return Some(Value::Str(run.status.as_str().to_string())),
        "attempt" => return Some(Value::Num(run.attempt as f64)),
        "epochs" => return Some(Value::Num(run.epochs() as f64)),
        "seed" => return Some(Value::Num(run.seed as f64)),
        "host" => return run.host.clone().map(Value::Str),
        _ => {}
    }
    if let Some(tag) = tag_name(name) {
        return run.tags.get(tag).map(|v| Value::Str(v.clone()));
    }
    if COST_METRICS.contains(&name) {
        return metric(run, name).map(Value::Num);
    }
    if let Some(v) = run.params.get(name).or_else(|| run.settings.get(name)) {
        return Some(match v {
            serde_json::Value::Number(n) => Value::Num(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::String(s) => Value::Str(s.clone()),
            other => Value::Str(other.to_string()),
        });
    }
    metric(run, name).map(Value::Num)
}

/// A metric field: `val_iou` / `best_val_iou` (best epoch) or `final_val_iou` / `last_val_iou`.
pub fn metric(run: &TrialRow, name: &str) -> Option<f64> {
    if let Some(rest) = name.strip_prefix("final_").or_else(|| name.strip_prefix("last_")) {
        return run.last(rest);
    }
    let base = name.strip_prefix("best_").unwrap_or(name);
    if COST_METRICS.contains(&base) {
        // One value a trial (an extended trial's total grows: its latest is the one).
        return run.last(base);
    }
    run.best(base, Goal::for_metric(base)).map(|(v, _)| v)
}

/// Whether `name` is a metric field (as opposed to a parameter or attribute).
pub fn is_metric(name: &str) -> bool {
    let base = name.strip_prefix("final_").or_else(|| name.strip_prefix("last_")).or_else(|| name.strip_prefix("best_")).unwrap_or(name);
    Objective::parse_name(base).is_some() || base.starts_with("train_") || Objective::parse_reported(base).is_some() || COST_METRICS.contains(&base)
}

/// The tag a field names: `tag.team` -> `team`.
pub fn tag_name(field: &str) -> Option<&str> {
    field.strip_prefix("tag.").filter(|t| !t.is_empty())
}

/// Whether `name` can be a field at all (for error messages before any run is seen).
pub fn is_known_field(name: &str, param_keys: &[String]) -> bool {
    let base = name.strip_prefix("final_").or_else(|| name.strip_prefix("last_")).or_else(|| name.strip_prefix("best_")).unwrap_or(name);
    matches!(name, "id" | "run" | "sweep" | "status" | "attempt" | "epochs" | "seed" | "host")
        || param_keys.iter().any(|k| k == name || k == base)
        || is_setting(name)
        || tag_name(name).is_some()
        || Objective::parse_name(base).is_some()
        || base.starts_with("train_") // extra per-epoch values such as train_lr
        || COST_METRICS.contains(&base)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// A parsed `--where` expression. Chains of `and` and `or` are flat lists, so that the tree is
/// only as deep as the parentheses and `not`s, which [`MAX_NESTING`] bounds: no expression can
/// exhaust the stack, whether parsed, evaluated or dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `field op value`; `at` is the value's offset in the text, for messages.
    Cmp {
        field: String,
        op: OpToken,
        value: Value,
        at: usize,
    },
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
}

/// How deep parentheses and `not` may nest in a `--where` expression.
pub const MAX_NESTING: usize = 64;

/// A comparison operator as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpToken(Op);

impl Filter {
    /// Parses an expression; the error says where and what was expected.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let tokens = tokenize(text)?;
        let mut p = Parser { tokens, pos: 0, text, depth: 0 };
        let f = p.or()?;
        if p.pos < p.tokens.len() {
            return Err(p.error("and, or, or the end of the expression"));
        }
        Ok(f)
    }

    /// The fields the expression mentions.
    pub fn fields(&self) -> Vec<&str> {
        self.comparisons().into_iter().map(|(field, _, _)| field).collect()
    }

    /// Every comparison: its field, its value and the value's offset in the text.
    fn comparisons(&self) -> Vec<(&str, &Value, usize)> {
        match self {
            Filter::Cmp { field, value, at, .. } => vec![(field.as_str(), value, *at)],
            Filter::All(parts) | Filter::Any(parts) => parts.iter().flat_map(Filter::comparisons).collect(),
            Filter::Not(a) => a.comparisons(),
        }
    }

    /// Checks that each comparison's value can be of its field's kind: a number for a metric,
    /// `attempt`, `epochs`, `seed` or a numeric setting, true or false for a yes/no setting, a
    /// status name for `status`. `text` is the expression, for the message's position.
    pub fn check_values(&self, text: &str) -> Result<(), String> {
        for (field, value, at) in self.comparisons() {
            if let Err(why) = value_fits(field, value) {
                return Err(format!("at column {} of {text:?}: {why}", at + 1));
            }
        }
        Ok(())
    }

    pub fn matches(&self, run: &TrialRow) -> bool {
        match self {
            Filter::All(parts) => parts.iter().all(|f| f.matches(run)),
            Filter::Any(parts) => parts.iter().any(|f| f.matches(run)),
            Filter::Not(a) => !a.matches(run),
            Filter::Cmp { field: name, op, value, .. } => match field(run, name) {
                None => false,
                Some(actual) => compare(&actual, op.0, value),
            },
        }
    }
}

/// The kind of value a field takes, as far as it is known before any run is read.
enum Kind {
    Number,
    Bool,
    Status,
    Any,
}

fn kind_of(field: &str) -> Kind {
    match field {
        "attempt" | "epochs" | "seed" => return Kind::Number,
        "status" => return Kind::Status,
        _ if is_metric(field) => return Kind::Number,
        _ => {}
    }
    static DEFAULTS: std::sync::OnceLock<std::collections::BTreeMap<String, serde_json::Value>> = std::sync::OnceLock::new();
    match DEFAULTS.get_or_init(|| settings_of(&crate::config::TrialConfig::default())).get(field) {
        Some(serde_json::Value::Number(_)) => Kind::Number,
        Some(serde_json::Value::Bool(_)) => Kind::Bool,
        _ => Kind::Any,
    }
}

/// Whether `value` can be compared with `field`; the reason and the fix when not.
fn value_fits(field: &str, value: &Value) -> Result<(), String> {
    let fits = match (kind_of(field), value) {
        (Kind::Number, Value::Num(_)) | (Kind::Bool, Value::Bool(_)) | (Kind::Any, _) => true,
        (Kind::Number, Value::Str(s)) => s.trim().parse::<f64>().is_ok(),
        (Kind::Bool, Value::Str(s)) => s.parse::<bool>().is_ok(),
        (Kind::Status, Value::Str(s)) => TrialStatus::parse(s).is_some(),
        _ => false,
    };
    if fits {
        return Ok(());
    }
    let given = value.display();
    Err(match kind_of(field) {
        Kind::Number => format!("{field} is a number and {given:?} is not; compare it with a number, e.g. {field} > 0.5"),
        Kind::Bool => format!("{field} is true or false, not {given:?}; e.g. {field} = true"),
        _ => format!("{given:?} is not a status; use one of {}, e.g. status = completed", TrialStatus::ALL.map(|s| s.as_str()).join(", ")),
    })
}

fn compare(actual: &Value, op: Op, expected: &Value) -> bool {
    let ord = match (actual, expected) {
        (Value::Num(a), Value::Num(b)) => a.partial_cmp(b),
        (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Num(a), Value::Str(b)) => b.parse::<f64>().ok().and_then(|b| a.partial_cmp(&b)),
        // A tag's text against a number: `tag.lr = 0.1` holds for the tag "0.1".
        (Value::Str(a), Value::Num(b)) => a.trim().parse::<f64>().ok().and_then(|a| a.partial_cmp(b)),
        (Value::Bool(a), Value::Str(b)) => b.parse::<bool>().ok().map(|b| a.cmp(&b)),
        _ => None,
    };
    let Some(ord) = ord else { return op == Op::Ne };
    match op {
        Op::Lt => ord.is_lt(),
        Op::Le => ord.is_le(),
        Op::Gt => ord.is_gt(),
        Op::Ge => ord.is_ge(),
        Op::Eq => ord.is_eq(),
        Op::Ne => ord.is_ne(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Num(f64),
    Str(String),
    Op(Op),
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            ' ' | '\t' | '\n' => i += 1,
            '(' => {
                out.push((start, Token::Open));
                i += 1;
            }
            ')' => {
                out.push((start, Token::Close));
                i += 1;
            }
            '<' | '>' | '=' | '!' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('<', Some('=')) => (Op::Le, 2),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('=', Some('=')) => (Op::Eq, 2),
                    ('!', Some('=')) => (Op::Ne, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', _) => (Op::Gt, 1),
                    ('=', _) => (Op::Eq, 1),
                    _ => return Err(format!("at column {}: '!' must be followed by '='", start + 1)),
                };
                out.push((start, Token::Op(op)));
                i += len;
            }
            '\'' | '"' => {
                let end = chars[i + 1..].iter().position(|&d| d == c).ok_or_else(|| format!("at column {}: unterminated string", start + 1))?;
                out.push((start, Token::Str(chars[i + 1..i + 1 + end].iter().collect())));
                i += end + 2;
            }
            _ if c.is_ascii_digit() || ((c == '-' || c == '.') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit() || *d == '.')) => {
                i += 1;
                while i < chars.len() {
                    let d = chars[i];
                    let exponent_sign = matches!(d, '-' | '+') && matches!(chars[i - 1], 'e' | 'E');
                    if !(d.is_ascii_digit() || matches!(d, '.' | 'e' | 'E') || exponent_sign) {
                        break;
                    }
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                let v = s.parse::<f64>().map_err(|_| format!("at column {}: {s:?} is not a number", start + 1))?;
                out.push((start, Token::Num(v)));
            }
            _ if c.is_alphanumeric() || c == '_' => {
                while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '-')) {
                    i += 1;
                }
                out.push((start, Token::Word(chars[start..i].iter().collect())));
            }
            _ => return Err(format!("at column {}: unexpected {c:?}", start + 1)),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    text: &'a str,
    /// Parentheses and `not`s open at this point.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn error(&self, expected: &str) -> String {
        match self.tokens.get(self.pos) {
            Some((col, _)) => format!("at column {} of {:?}: expected {expected}", col + 1, self.text),
            None => format!("at the end of {:?}: expected {expected}", self.text),
        }
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut parts = vec![self.and()?];
        while self.is_word("or") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Filter::Any(parts) })
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut parts = vec![self.unary()?];
        while self.is_word("and") {
            self.pos += 1;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Filter::All(parts) })
    }

    /// Enters a parenthesis or a `not`, refusing to nest deeper than [`MAX_NESTING`].
    fn nest(&mut self) -> Result<(), String> {
        if self.depth == MAX_NESTING {
            let col = self.tokens[self.pos].0 + 1;
            return Err(format!("at column {col}: parentheses and 'not' nest more than {MAX_NESTING} deep; write the condition flatter"));
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    fn unary(&mut self) -> Result<Filter, String> {
        if self.is_word("not") {
            self.nest()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.nest()?;
            let inner = self.or()?;
            if self.peek() != Some(&Token::Close) {
                return Err(self.error("')'"));
            }
            self.pos += 1;
            self.depth -= 1;
            return Ok(inner);
        }
        let field = match self.peek() {
            Some(Token::Word(w)) => w.clone(),
            _ => return Err(self.error("a field name such as val_iou or train.learning_rate")),
        };
        self.pos += 1;
        let op = match self.peek() {
            Some(Token::Op(op)) => *op,
            _ => return Err(self.error("a comparison (<, <=, >, >=, =, !=)")),
        };
        self.pos += 1;
        let at = self.tokens.get(self.pos).map_or(self.text.len(), |(col, _)| *col);
        let value = match self.peek() {
            Some(Token::Num(v)) => Value::Num(*v),
            Some(Token::Str(s)) => Value::Str(s.clone()),
            Some(Token::Word(w)) if w == "true" || w == "false" => Value::Bool(w == "true"),
            Some(Token::Word(w)) => Value::Str(w.clone()),
            _ => return Err(self.error("a value (a number, a word or a quoted string)")),
        };
        self.pos += 1;
        Ok(Filter::Cmp { field, op: OpToken(op), value, at })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::{MetricSummary, TrialStatus};

    fn run(lr: f64, iou: f64, status: TrialStatus) -> TrialRow {
        let mut params = BTreeMap::new();
        params.insert("train.learning_rate".to_string(), serde_json::json!(lr));
        params.insert("train.optimizer".to_string(), serde_json::json!("adam"));
        let mut metrics = BTreeMap::new();
        metrics.insert(
            "val_iou".to_string(),
            MetricSummary { last_epoch: 3, last: iou - 0.1, min: Some(0.1), min_epoch: Some(1), max: Some(iou), max_epoch: Some(2) },
        );
        TrialRow { id: "s-1".into(), sweep: "s".into(), seq: 1, status, attempt: 1, seed: 1, params, metrics, ..TrialRow::default() }
    }

    fn check(expr: &str, lr: f64, iou: f64, expected: bool) {
        let f = Filter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(f.matches(&run(lr, iou, TrialStatus::Completed)), expected, "{expr} with lr {lr} iou {iou}");
    }

    #[test]
    fn filters_evaluate_like_the_issue_example() {
        check("train.learning_rate < 0.01 and val_iou > 0.9", 0.001, 0.95, true);
        check("train.learning_rate < 0.01 and val_iou > 0.9", 0.1, 0.95, false);
        check("train.learning_rate < 0.01 and val_iou > 0.9", 0.001, 0.85, false);
        check("final_val_iou >= 0.85", 0.001, 0.95, true);
        check("not (status = failed or train.optimizer != adam)", 0.1, 0.5, true);
        check("train.learning_rate <= 1e-3", 0.001, 0.5, true);
        check("train.optimizer = 'adam' and epochs = 3", 0.1, 0.5, true);
        check("val_dice > 0", 0.1, 0.5, false); // a metric the run does not have
    }

    #[test]
    fn tags_are_fields_and_an_untagged_trial_matches_no_comparison_of_them() {
        let mut tagged = run(0.1, 0.5, TrialStatus::Completed);
        tagged.tags.insert("team".into(), "vision".into());
        tagged.tags.insert("lr-note".into(), "0.1".into());
        let untagged = run(0.1, 0.5, TrialStatus::Completed);
        let holds = |expr: &str, r: &TrialRow| Filter::parse(expr).unwrap().matches(r);
        assert!(holds(r#"tag.team = "vision""#, &tagged));
        assert!(holds("tag.team = vision and val_iou > 0.4", &tagged));
        assert!(!holds("tag.team = audio", &tagged));
        assert!(holds("tag.lr-note = 0.1", &tagged), "a tag's text compares with a number");
        assert!(!holds("tag.team = vision", &untagged));
        assert!(!holds("tag.team != vision", &untagged), "a trial without the tag matches no comparison of it");
        assert!(holds("not tag.team = vision", &untagged));
        assert!(is_known_field("tag.team", &[]) && !is_known_field("tag.", &[]));
    }

    #[test]
    fn parse_errors_say_where() {
        let e = Filter::parse("val_iou >").unwrap_err();
        assert!(e.contains("expected a value"), "{e}");
        let e = Filter::parse("val_iou 0.9").unwrap_err();
        assert!(e.contains("column 9") && e.contains("comparison"), "{e}");
        assert!(Filter::parse("(val_iou > 1").unwrap_err().contains("')'"));
    }

    /// Issue 15, item 16: 20,000 nested parentheses overflowed the stack.
    #[test]
    fn deep_nesting_is_refused_with_its_position_and_long_chains_are_fine() {
        let deep = format!("{}val_iou > 0.5{}", "(".repeat(20_000), ")".repeat(20_000));
        let e = Filter::parse(&deep).unwrap_err();
        assert!(e.contains("at column 65") && e.contains("nest more than 64 deep"), "{}", &e[..e.len().min(200)]);
        let nots = format!("{}val_iou > 0.5", "not ".repeat(20_000));
        assert!(Filter::parse(&nots).unwrap_err().contains("nest more than 64 deep"));
        let ok = format!("{}val_iou > 0.5{}", "(".repeat(64), ")".repeat(64));
        check(&ok, 0.1, 0.95, true);
        // A chain of 20,000 comparisons is flat: parsed, evaluated and dropped without recursion.
        let chain = vec!["val_iou > 0.5"; 20_000].join(" and ");
        check(&chain, 0.1, 0.95, true);
        check(&vec!["val_iou > 0.99"; 20_000].join(" or "), 0.1, 0.95, false);
    }

    /// Issue 15, item 16: `val_iou > abc` matched nothing, silently.
    #[test]
    fn a_value_of_the_wrong_kind_is_an_error_naming_its_position_and_the_fix() {
        let checked = |text: &str| Filter::parse(text).unwrap().check_values(text);
        let e = checked("val_iou > abc").unwrap_err();
        assert!(e.contains("at column 11") && e.contains("val_iou is a number and \"abc\" is not") && e.contains("val_iou > 0.5"), "{e}");
        let e = checked("train.learning_rate < 0.01 and epochs >= many").unwrap_err();
        assert!(e.contains("at column 42") && e.contains("epochs is a number"), "{e}");
        assert!(checked("augment.horizontal_flip = yes").unwrap_err().contains("true or false"));
        assert!(checked("status = done").unwrap_err().contains("use one of queued"));
        for fine in ["val_iou > '0.5'", "augment.horizontal_flip = true", "train.optimizer = adam", "status = failed", "host = node1"] {
            assert_eq!(checked(fine), Ok(()), "{fine}");
        }
    }
}
