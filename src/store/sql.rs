//! What the tracker's policy ([`super::policy`]) and its backends share: the values bound to
//! statements and read back from rows, the few places where the two SQL dialects differ
//! ([`Dialect`]), and the transaction handle ([`Tx`]) each backend implements.
//!
//! The policy writes each statement once, in the SQL both engines read: PostgreSQL's `$1`
//! placeholders (the SQLite backend renumbers them as `?1`), `CAST(x AS ...)` rather than `::`,
//! and `INSERT ... ON CONFLICT`. What cannot be written once is a named field of [`Dialect`].

use std::path::Path;

use super::StoreError;

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One row of a query's answer, read by column position.
#[derive(Debug)]
pub(crate) struct Row(pub Vec<Value>);

impl Row {
    fn get(&self, i: usize) -> &Value {
        self.0.get(i).unwrap_or(&Value::Null)
    }

    fn unexpected<T>(&self, i: usize, wanted: &str) -> Result<T, Failure> {
        Err(Failure::Invalid(format!("column {i} holds {:?} where {wanted} was expected", self.get(i))))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, Failure> {
        match self.get(i) {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            _ => self.unexpected(i, "text"),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, Failure> {
        self.opt_text(i)?.map_or_else(|| self.unexpected(i, "text"), Ok)
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, Failure> {
        match self.get(i) {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            _ => self.unexpected(i, "an integer"),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, Failure> {
        self.opt_int(i)?.map_or_else(|| self.unexpected(i, "an integer"), Ok)
    }

    /// A real number; an integer reads as one too (SQLite may hand back a whole REAL as INTEGER).
    pub fn opt_real(&self, i: usize) -> Result<Option<f64>, Failure> {
        match self.get(i) {
            Value::Null => Ok(None),
            Value::Real(v) => Ok(Some(*v)),
            Value::Int(v) => Ok(Some(*v as f64)),
            _ => self.unexpected(i, "a number"),
        }
    }

    pub fn real(&self, i: usize) -> Result<f64, Failure> {
        self.opt_real(i)?.map_or_else(|| self.unexpected(i, "a number"), Ok)
    }
}

/// Where the two dialects' SQL texts differ.
pub(crate) struct Dialect {
    /// The 64-bit integer column type.
    pub integer: &'static str,
    /// The double-precision column type.
    pub real: &'static str,
    /// Ends the definition of a table looked up by its primary key only (SQLite then stores it
    /// as a b-tree on that key instead of on a hidden rowid).
    pub without_rowid: &'static str,
    /// Ends a SELECT whose rows stay locked until the transaction ends. SQLite needs none: a
    /// write transaction there holds the whole file.
    pub lock_rows: &'static str,
    /// Ends the SELECT that picks a run to claim: a row another claim holds is passed over, not
    /// waited for.
    pub skip_locked: &'static str,
}

impl Dialect {
    /// `ddl` with its `{integer}`, `{real}` and `{without_rowid}` marks in this dialect.
    pub fn render(&self, ddl: &str) -> String {
        ddl.replace("{integer}", self.integer).replace("{real}", self.real).replace("{without_rowid}", self.without_rowid)
    }
}

/// Why an operation did not complete.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An error to report as it is.
    Store(StoreError),
    /// Something unreadable in the store; the backend adds where the store is.
    Invalid(String),
    /// The connection to the server went away: the operation may be run again on a new one
    /// (every operation is one transaction, which the server rolled back).
    ConnectionLost(String),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl Failure {
    /// The error to report for the store at `location`.
    pub fn into_store_error(self, location: &Path) -> StoreError {
        match self {
            Failure::Store(e) => e,
            Failure::Invalid(detail) | Failure::ConnectionLost(detail) => StoreError::Backend { path: location.to_path_buf(), detail },
        }
    }
}

/// A connection inside one of its backend's transactions (or in autocommit, where one statement
/// is the whole operation). Statements are written with `$1` placeholders.
pub(crate) trait Tx {
    fn dialect(&self) -> &'static Dialect;

    /// Runs a statement; returns how many rows it changed.
    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, Failure>;

    /// Runs a query; returns its rows.
    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, Failure>;

    /// Runs schema statements (no values, no rows).
    fn batch(&mut self, sql: &str) -> Result<(), Failure>;

    /// The first row of a query, if any.
    fn query_opt(&mut self, sql: &str, values: &[Value]) -> Result<Option<Row>, Failure> {
        Ok(self.query(sql, values)?.into_iter().next())
    }

    /// The first row of a query that always answers one (an aggregate).
    fn query_one(&mut self, sql: &str, values: &[Value]) -> Result<Row, Failure> {
        self.query_opt(sql, values)?.ok_or_else(|| Failure::Invalid(format!("no row from {sql}")))
    }
}

/// A WHERE clause ANDed together from fixed fragments (never from user text), so that each shape
/// of a query gets its own plan and index; the values are bound after any already in `values`.
pub(crate) struct Conditions {
    clauses: Vec<String>,
    pub values: Vec<Value>,
}

impl Conditions {
    /// Conditions whose placeholders follow `values`.
    pub fn after(values: Vec<Value>) -> Self {
        Self { clauses: Vec::new(), values }
    }

    /// Binds `value`; returns its placeholder.
    pub fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("${}", self.values.len())
    }

    pub fn and(&mut self, clause: impl Into<String>) {
        self.clauses.push(clause.into());
    }

    /// `AND <column> = <value>` where a value is given; nothing otherwise.
    pub fn equal(&mut self, column: &str, value: Option<impl Into<Value>>) {
        if let Some(v) = value {
            let p = self.bind(v);
            self.and(format!("{column} = {p}"));
        }
    }

    /// `WHERE ...`, or nothing when there is no condition.
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() { String::new() } else { format!("WHERE {}", self.clauses.join(" AND ")) }
    }
}

/// Splits a metric value into (value, kind) for storage: NaN and infinities are stored as NULL
/// plus a kind, because SQLite turns NaN into NULL (PostgreSQL does the same for the contract).
pub(crate) fn encode_value(v: f64) -> (Option<f64>, &'static str) {
    match crate::config::nonfinite::kind_name(v) {
        None => (Some(v), "finite"),
        Some("NaN") => (None, "nan"),
        Some(k) => (None, k),
    }
}

/// The inverse of [`encode_value`].
pub(crate) fn decode_value(v: Option<f64>, kind: &str) -> f64 {
    match kind {
        "finite" => v.unwrap_or(f64::NAN),
        "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        _ => f64::NAN,
    }
}
