//! `sweep ui`: the read-only web dashboard.

use std::io::Write as _;
use std::process::ExitCode;

use crate::Result;
use clap::Args;

use super::Global;

#[derive(Debug, Args)]
pub struct UiArgs {
    /// The port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The address to listen on. The default is this machine only; 0.0.0.0 makes the tracker
    /// readable by anyone who can reach this machine.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// A host name the dashboard answers to besides IP addresses and localhost (repeatable), e.g.
    /// the machine's name when it listens on 0.0.0.0. Requests naming any other host are refused
    /// (403), so that a web page cannot read the tracker through DNS rebinding.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<String>,
    /// Let the trial pages edit a trial's tags and note. Each edit is a POST that carries a token
    /// drawn at start (in the pages) and must come from the dashboard's own pages (its Origin):
    /// another site's page cannot act. GET requests stay read-only.
    #[arg(long)]
    pub allow_actions: bool,
}

/// A token of 128 random bits, in hex, from the system's random source.
fn action_token() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `sweep ui`: serves the tracker's sweeps and trials read-only until Ctrl-C. The tracker must
/// exist (a missing SQLite file is an error, never a new empty tracker).
pub fn ui(g: &Global, args: &UiArgs) -> Result<ExitCode> {
    let store = g.open_store()?;
    let location = store.location();
    let mut dashboard = crate::ui::Dashboard::new(store, &g.runs_dir());
    if args.allow_actions {
        dashboard = dashboard.with_actions(action_token().map_err(|e| crate::Error::io("/dev/urandom", e))?);
    }
    crate::ui::serve(dashboard, &args.host, args.port, args.allow_hosts.clone(), |addr| {
        if crate::ui::is_exposed(&addr) {
            eprintln!(
                "warning: --host {}: the dashboard, and with it everything in the tracker, is readable by anyone who can reach \
                 this machine on port {}; use --host 127.0.0.1 to keep it local",
                args.host,
                addr.port()
            );
        }
        let mode = if args.allow_actions { "with actions (tags, notes)" } else { "read-only" };
        println!("sweep ui: {location} {mode} at http://{addr}/ (Ctrl-C to stop)");
        let _ = std::io::stdout().flush();
    })?;
    Ok(ExitCode::SUCCESS)
}
