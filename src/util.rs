//! Small shared helpers: crash-safe file writes, stable hashing, wall-clock time.
//!
//! The hashes here are part of the on-disk contract (config hashes name trials in the store, split
//! and augmentation seeds are derived from them), so they must never depend on the Rust version or
//! on `std`'s randomised hasher: they are written out explicitly.
//!
//! ```
//! // Text from the tracker reaches a terminal with its control characters shown, not run.
//! assert_eq!(sweep::util::terminal_safe("team=\u{1b}[31mred", false), "team=\\e[31mred");
//! ```

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// Writes `bytes` to `path` so that a reader (or a process killed half-way) only ever sees the old
/// file or the complete new one: the data goes to a temporary sibling, is flushed to disk, and is
/// renamed over the target; then the directory entry itself is flushed. The sibling is named
/// `.<name>.tmp-<pid>-<host>`, so that [`remove_stale_temp_files`] can tell whose it is.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp-{}-{}", name.to_string_lossy(), std::process::id(), hostname()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes the temporary files of [`atomic_write`] in `dir` whose writer is gone: a process
/// killed in the middle of a write leaves one behind. A file is removed when its name says it
/// is this host's and its process is this one (which is not writing while it asks) or no longer
/// alive; a file of another host is left alone, since its pid says nothing here. Returns the
/// files removed.
pub fn remove_stale_temp_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let (me, host) = (std::process::id(), hostname());
    let mut removed = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some((pid, owner_host)) = path.file_name().and_then(|n| n.to_str()).and_then(temp_file_owner) else { continue };
        let ours = owner_host.is_none_or(|h| h == host);
        if ours && (pid == me || !process_alive(pid)) && path.is_file() {
            fs::remove_file(&path)?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// The writer of an [`atomic_write`] temporary file, from its name `.<name>.tmp-<pid>-<host>`:
/// its pid and host (None in names written before the host was added). None if the name is not
/// one of these files.
fn temp_file_owner(file_name: &str) -> Option<(u32, Option<&str>)> {
    let (target, owner) = file_name.strip_prefix('.')?.rsplit_once(".tmp-")?;
    if target.is_empty() {
        return None;
    }
    let (pid, host) = match owner.split_once('-') {
        Some((pid, host)) => (pid, Some(host)),
        None => (owner, None),
    };
    let pid = pid.parse().ok().filter(|&p| p > 0)?;
    Some((pid, host))
}

/// Whether process `pid` exists on this machine (signal 0 checks without sending anything).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Writes to standard output (or error), ignoring failure. For what `sweep run` and `sweep worker`
/// print: a sweep must go on when the reader of its output goes away (`sweep run | head -2`), so
/// these commands keep SIGPIPE ignored and drop what cannot be written, where `println!` would
/// panic. Used through [`out!`](crate::out), [`outln!`](crate::outln) and [`errln!`](crate::errln).
pub fn write_ignoring_errors(stderr: bool, args: std::fmt::Arguments) {
    let _ = if stderr { io::stderr().lock().write_fmt(args) } else { io::stdout().lock().write_fmt(args) };
}

/// Lets SIGPIPE end the process, as it ends `cat` or `ls`: for commands that only print, whose
/// reader going away (`sweep ls | head -1`) means the rest is not wanted. The shell sees status
/// 141 (128 + SIGPIPE), no message, where Rust's default (SIGPIPE ignored) would make the next
/// `println!` panic with exit code 101.
pub fn end_on_broken_pipe() {
    // SAFETY: setting a signal's disposition to its default has no memory effects.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// `print!` that ignores a closed output (see [`write_ignoring_errors`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::util::write_ignoring_errors(false, format_args!($($arg)*)) };
}

/// An error and its causes as one line, "outer: cause: root cause", each cause left out when the
/// text before it already says it (an error whose message quotes its source, as `path: {source}`
/// does, would otherwise print "Not a directory (os error 20): Not a directory (os error 20)").
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        cause = e.source();
        let text = e.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// `text` as it may reach a terminal: every control character (C0, DEL, C1) and every Unicode
/// bidirectional control written as a visible escape (`\e`, `\r`, `\u{9b}`, `\u{202e}`;
/// `\n` and `\t` too unless `keep_newlines`, which keeps line breaks and tabs). Text from the
/// tracker or the command line (tags, notes, errors, ids) goes through it on its way to a table
/// or a message: raw, an escape sequence in a tag retitles or recolours the reader's terminal and a
/// newline breaks a table's rows. JSON and CSV outputs keep the real text (they escape or quote
/// it themselves).
pub fn terminal_safe(text: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        let kept = keep_newlines && (c == '\n' || c == '\t');
        (c.is_control() && !kept) || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !unsafe_char(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `println!` that ignores a closed output (see [`write_ignoring_errors`]).
#[macro_export]
macro_rules! outln {
    () => { $crate::util::write_ignoring_errors(false, format_args!("\n")) };
    ($($arg:tt)*) => { $crate::util::write_ignoring_errors(false, format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that ignores a closed output (see [`write_ignoring_errors`]).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::util::write_ignoring_errors(true, format_args!("{}\n", format_args!($($arg)*))) };
}

/// Flushes a directory's entries (a rename is only durable once its directory is).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A temporary directory next to `target` that becomes `target` with [`TempDir::commit`], or is
/// removed when dropped: how multi-file outputs (a generated dataset) appear whole or not at all.
pub struct TempDir {
    path: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl TempDir {
    pub fn new(target: &Path) -> io::Result<Self> {
        let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::create_dir_all(parent)?;
        let name = target.file_name().ok_or_else(|| io::Error::other("path has no file name"))?;
        let path = parent.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
        fs::create_dir_all(&path)?;
        Ok(Self { path, target: target.to_path_buf(), committed: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the directory into place. Fails if `target` exists by then (another process won
    /// the race), leaving the existing directory untouched.
    pub fn commit(mut self) -> io::Result<()> {
        if self.target.exists() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "target exists"));
        }
        match fs::rename(&self.path, &self.target) {
            Ok(()) => {}
            // Another process renamed its copy into place between the check above and this
            // rename: the rename then fails on a non-empty directory (ENOTEMPTY), and that is the
            // same lost race.
            Err(e) if self.target.exists() => return Err(io::Error::new(io::ErrorKind::AlreadyExists, e)),
            Err(e) => return Err(e),
        }
        self.committed = true;
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// FNV-1a over `bytes`, finished with a SplitMix64 round: a fast, stable 64-bit hash.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(h)
}

/// One SplitMix64 step: a bijective mixer used to derive independent seeds from a seed.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Derives a seed for a sub-stream (`parts` name it, e.g. `[epoch, sample]`) of `seed`.
pub fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(splitmix64(seed), |acc, &p| splitmix64(acc ^ splitmix64(p.wrapping_add(0x632b_e59b_d9b4_e019))))
}

/// Seconds since the Unix epoch, as stored in the tracker.
pub fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn format_utc(ts: f64) -> String {
    let secs = ts.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats a duration in seconds the way a person reads it: `850ms`, `42s`, `3m05s`, `1h02m`.
pub fn format_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    if secs < 1.0 {
        return format!("{:.0}ms", secs * 1000.0);
    }
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The number of CPU cores this process may use.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// This machine's host name (for the tracker's `host` column).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The `did you mean` candidate for a misspelt `word` among `options` (edit distance <= 3).
pub fn did_you_mean<'a>(word: &str, options: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    options
        .into_iter()
        .map(|o| (edit_distance(word, o), o))
        .filter(|(d, o)| *d <= 3.min(o.len().max(word.len()) / 2 + 1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_says_each_cause_once() {
        let io = std::io::Error::from_raw_os_error(20);
        let text = io.to_string();
        // An error whose message quotes its source (`path: {source}`) says it once.
        let quoting: Result<(), _> = Err(crate::Error::io("runs/data", io));
        let err = crate::error::Context::context(quoting, "preparing the dataset").unwrap_err();
        assert_eq!(error_chain(&err), format!("preparing the dataset: runs/data: {text}"));
        let root: Result<(), _> = Err(crate::Error::Other("root".into()));
        let plain = crate::error::Context::context(crate::error::Context::context(root, "middle"), "outer").unwrap_err();
        assert_eq!(error_chain(&plain), "outer: middle: root");
        assert_eq!(plain.exit_code(), 1);
        let usage: Result<(), _> = Err(crate::Error::Usage("--sweep: no such sweep".into()));
        assert_eq!(crate::error::Context::context(usage, "reading the tracker").unwrap_err().exit_code(), 2, "context keeps the code");
    }

    #[test]
    fn utc_formatting_matches_known_dates() {
        assert_eq!(format_utc(0.0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(951_782_400.0), "2000-02-29 00:00:00");
        assert_eq!(format_utc(1_795_000_000.5), "2026-11-18 11:06:40");
    }

    #[test]
    fn hashes_are_stable_across_builds() {
        // Pinned values: changing them changes every stored config hash and data split.
        assert_eq!(hash64(b""), splitmix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_ne!(derive_seed(1, &[0]), derive_seed(1, &[1]));
        assert_ne!(derive_seed(1, &[0, 1]), derive_seed(1, &[1, 0]));
    }

    #[test]
    fn did_you_mean_finds_close_keys_only() {
        let keys = ["hue_delta", "horizontal_flip", "rescale"];
        assert_eq!(did_you_mean("hue_delt", keys), Some("hue_delta"));
        assert_eq!(did_you_mean("horizontal_flips", keys), Some("horizontal_flip"));
        assert_eq!(did_you_mean("optimizer", keys), None);
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        atomic_write(&p, b"first").unwrap();
        atomic_write(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn temp_file_names_say_whose_they_are() {
        assert_eq!(temp_file_owner(".last.ckpt.tmp-123-node-7.local"), Some((123, Some("node-7.local"))));
        assert_eq!(temp_file_owner(".last.ckpt.tmp-123"), Some((123, None)));
        for not_ours in ["last.ckpt", ".last.ckpt", ".last.ckpt.tmp-x-host", ".last.ckpt.tmp-0-host", "..tmp-5", ".a.tmp--host"] {
            assert_eq!(temp_file_owner(not_ours), None, "{not_ours}");
        }
    }
}
