//! Where a PostgreSQL password comes from, and URLs that never show one.
//!
//! A password must not travel where other users or files can read it: a process's command line
//! (`ps`, `/proc/<pid>/cmdline`), an sbatch script, a log or an error message. So a URL is split
//! into its public part, which may go anywhere, and its password, which goes to child processes
//! only through their environment (`PGPASSWORD`, readable by the same user alone). A URL without
//! a password finds one as libpq does (the `postgres` crate reads neither): `PGPASSWORD`, then
//! the password file (`PGPASSFILE`, default `~/.pgpass`), which is ignored unless only its owner
//! can read it.

use std::path::{Path, PathBuf};

use ::postgres::config::Host;

/// The environment variable that carries a password to a child process, as libpq reads it.
pub const PASSWORD_ENV: &str = "PGPASSWORD";

/// `url` without its password (none in the user part, no `password=` parameter), and the
/// password, percent-decoded. Follows the `postgres` crate's reading: the user part ends at the
/// first `@`, the password at the first `:` of it.
pub fn split_password(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return (url.to_string(), None) };
    let (scheme, rest) = url.split_at(scheme_end);
    let mut password = None;
    let rest = match rest.split_once('@') {
        Some((creds, after)) => match creds.split_once(':') {
            Some((user, pw)) => {
                password = Some(percent_decode(pw));
                format!("{user}@{after}")
            }
            None => rest.to_string(),
        },
        None => rest.to_string(),
    };
    let public = match rest.split_once('?') {
        Some((base, query)) => {
            let mut kept = Vec::new();
            for pair in query.split('&') {
                match pair.split_once('=') {
                    Some((key, value)) if percent_decode(key) == "password" => password = Some(percent_decode(value)),
                    _ => kept.push(pair),
                }
            }
            if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) }
        }
        None => rest,
    };
    (format!("{scheme}{public}"), password)
}

/// `url` as it may appear in a message, a log or on a command line.
pub fn redact(url: &str) -> String {
    split_password(url).0
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A connection configuration with its password found, and why a password file was passed
/// over, if one was (to add to a failed login's message).
pub struct Resolved {
    pub config: ::postgres::Config,
    pub note: Option<String>,
}

/// Parses `url` (an error message never repeats it) and, when it has no password, takes one
/// from `PGPASSWORD` or the password file.
pub fn resolve(url: &str) -> Result<Resolved, String> {
    let mut config: ::postgres::Config = url.parse().map_err(|e| format!("{e} in {}", redact(url)))?;
    let mut note = None;
    if config.get_password().is_none() {
        if let Some(pw) = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()) {
            config.password(pw);
        } else if let Some(path) = password_file() {
            match read_password_file(&path) {
                Ok(Some(text)) => {
                    if let Some(pw) = lookup(&text, &Target::of(&config)) {
                        config.password(pw);
                    }
                }
                Ok(None) => {}
                Err(why) => note = Some(why),
            }
        }
    }
    Ok(Resolved { config, note })
}

/// `PGPASSFILE`, or `~/.pgpass`.
fn password_file() -> Option<PathBuf> {
    match std::env::var_os("PGPASSFILE") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")),
    }
}

/// The password file's text; None when there is none; an error (why it was ignored) when others
/// than its owner may read or write it, as libpq refuses it then.
fn read_password_file(path: &Path) -> Result<Option<String>, String> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else { return Ok(None) };
    if !meta.is_file() {
        return Ok(None);
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the password file {} was ignored: its mode is {mode:04o}, and it must be readable by its owner only (chmod 600 {})",
            path.display(),
            path.display()
        ));
    }
    Ok(std::fs::read_to_string(path).ok())
}

/// What a password-file line must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
}

impl Target {
    /// The first host of `config` (a Unix socket counts as `localhost`, as in libpq), its port
    /// (5432 by default), the database (the user's name by default) and the user.
    fn of(config: &::postgres::Config) -> Self {
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            _ => "localhost".to_string(),
        };
        let user = config.get_user().unwrap_or_default().to_string();
        Target {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            database: config.get_dbname().map_or_else(|| user.clone(), str::to_string),
            user,
        }
    }
}

/// The password of the first line of a password file that matches `target`: lines are
/// `host:port:database:user:password`, `*` matches anything in the first four fields, `\`
/// escapes `:` and `\`, and lines starting with `#` are comments.
pub fn lookup(text: &str, target: &Target) -> Option<String> {
    let port = target.port.to_string();
    let wanted = [target.host.as_str(), port.as_str(), target.database.as_str(), target.user.as_str()];
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).find_map(|line| {
        let fields = split_fields(line);
        let [host, port, db, user, password] = fields.as_slice() else { return None };
        let matches = [host, port, db, user].iter().zip(wanted).all(|(field, want)| field.as_str() == "*" || field.as_str() == want);
        matches.then(|| password.clone())
    })
}

/// A password-file line's fields, unescaped; the fifth takes the rest of the line.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().expect("one field").extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_wherever_it_is_written() {
        assert_eq!(split_password("postgres://u:s%40cret@h:5432/db"), ("postgres://u@h:5432/db".into(), Some("s@cret".into())));
        assert_eq!(split_password("postgresql://u@h/db?password=pw&sslmode=disable"), ("postgresql://u@h/db?sslmode=disable".into(), Some("pw".into())));
        assert_eq!(split_password("postgres://u@h/db?password=pw"), ("postgres://u@h/db".into(), Some("pw".into())));
        assert_eq!(split_password("postgres://u@h/db"), ("postgres://u@h/db".into(), None));
        assert_eq!(split_password("postgres://h/db"), ("postgres://h/db".into(), None));
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u@h/db");
        assert_eq!(redact("/runs/sweep.db"), "/runs/sweep.db");
    }

    fn target(host: &str, port: u16, database: &str, user: &str) -> Target {
        Target { host: host.into(), port, database: database.into(), user: user.into() }
    }

    #[test]
    fn a_password_file_matches_like_libpqs() {
        let text = "# comment\n\
                    db.example:5432:other:alice:wrong\n\
                    db.example:5432:sweeps:alice:a\\:b\\\\c\n\
                    *:*:*:bob:bobs:with:colons\n\
                    localhost:6543:*:*:local\n";
        assert_eq!(lookup(text, &target("db.example", 5432, "sweeps", "alice")).as_deref(), Some("a:b\\c"));
        assert_eq!(lookup(text, &target("anywhere", 1, "x", "bob")).as_deref(), Some("bobs:with:colons"));
        assert_eq!(lookup(text, &target("localhost", 6543, "d", "carol")).as_deref(), Some("local"));
        assert_eq!(lookup(text, &target("localhost", 5432, "d", "carol")), None);
        assert_eq!(lookup(text, &target("db.example", 5433, "sweeps", "alice")), None);
        assert_eq!(lookup("short:line\n", &target("short", 5432, "d", "u")), None);
    }

    #[test]
    fn the_target_of_a_url_has_libpqs_defaults() {
        let config: postgres::Config = "postgres://alice@db.example/sweeps".parse().unwrap();
        assert_eq!(Target::of(&config), target("db.example", 5432, "sweeps", "alice"));
        let config: postgres::Config = "postgres://alice@db.example:6000".parse().unwrap();
        assert_eq!(Target::of(&config), target("db.example", 6000, "alice", "alice"));
    }
}
