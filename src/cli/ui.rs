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
}

/// `sweep ui`: serves the tracker's sweeps and trials read-only until Ctrl-C. The tracker must
/// exist (a missing SQLite file is an error, never a new empty tracker).
pub fn ui(g: &Global, args: &UiArgs) -> Result<ExitCode> {
    let store = g.open_store()?;
    let location = store.location();
    let dashboard = crate::ui::Dashboard::new(store, &g.runs_dir());
    crate::ui::serve(dashboard, &args.host, args.port, args.allow_hosts.clone(), |addr| {
        if crate::ui::is_exposed(&addr) {
            eprintln!(
                "warning: --host {}: the dashboard, and with it everything in the tracker, is readable by anyone who can reach \
                 this machine on port {}; use --host 127.0.0.1 to keep it local",
                args.host,
                addr.port()
            );
        }
        println!("sweep ui: {location} read-only at http://{addr}/ (Ctrl-C to stop)");
        let _ = std::io::stdout().flush();
    })?;
    Ok(ExitCode::SUCCESS)
}
