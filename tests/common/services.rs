//! Real servers for the cluster tests: a private PostgreSQL and a one-node SLURM cluster, each
//! in a temporary directory on free loopback ports, stopped by pid when dropped.
//!
//! They need Debian's `postgresql` (server binaries under /usr/lib/postgresql/<v>/bin) and
//! `slurm-wlm`; `tests/install-deps.sh` installs them. As root, PostgreSQL runs as the `postgres` user
//! (initdb refuses root); SLURM uses `auth/none`, so munge is not needed.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Waits up to `limit` for `ready`, panicking with `what` if it never is.
pub fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.lines().next()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Stops a daemon by pid: `signal`, then SIGKILL if it has not gone within 10 s.
fn stop(pid: i32, signal: i32) {
    // SAFETY: kill has no memory effects; the pid is the daemon we started.
    unsafe { libc::kill(pid, signal) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        // Reap it if it is our child (a daemon that did not detach).
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// A private PostgreSQL server.
pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    pid: i32,
    bin: PathBuf,
}

fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries are needed: run tests/install-deps.sh")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().expect("no /usr/lib/postgresql/<version>/bin/initdb: run tests/install-deps.sh")
}

impl Postgres {
    pub fn start() -> Self {
        let bin = postgres_bin();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let as_owner = |program: &Path| -> Command {
            if is_root() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                Command::new(program)
            }
        };
        if is_root() {
            let status = Command::new("chown").args(["postgres:"]).arg(dir.path()).status().unwrap();
            assert!(status.success());
        }
        let out = as_owner(&bin.join("initdb")).arg("-D").arg(&data).args(["--auth=trust", "-U", "postgres", "-E", "UTF8"]).output().unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let options = format!("-h 127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off -c max_connections=200", dir.path().display());
        let out = as_owner(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(dir.path().join("server.log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
        let pid = read_pid(&data.join("postmaster.pid")).expect("postmaster.pid");
        Postgres { dir, port, pid, bin }
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database.
    pub fn create_db(&self, name: &str) -> String {
        let mut c = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        self.url(name)
    }

    /// A new database `db` owned by a new role `user` that must log in with `password` over TCP
    /// (scram-sha-256), unlike the trusted superuser; returns its URL without the password.
    pub fn create_db_with_password(&self, db: &str, user: &str, password: &str) -> String {
        let mut c = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
        c.batch_execute(&format!("CREATE ROLE {user} LOGIN PASSWORD '{password}'")).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {db} OWNER {user}")).unwrap();
        let hba = self.dir.path().join("data/pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(&hba, format!("host all {user} 127.0.0.1/32 scram-sha-256\n{rules}")).unwrap();
        c.batch_execute("SELECT pg_reload_conf()").unwrap();
        let url = format!("postgres://{user}@127.0.0.1:{}/{db}", self.port);
        wait_until(Duration::from_secs(10), "the server to ask for the password", || postgres::Client::connect(&url, postgres::NoTls).is_err());
        url
    }

    /// Closes every client connection to `db` from the server side (what a restart or a network
    /// cut does to a worker).
    pub fn terminate_connections(&self, db: &str) -> u64 {
        let mut c = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
        c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", &[&db]).unwrap().len() as u64
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown.
        stop(self.pid, libc::SIGINT);
        let _ = &self.bin;
    }
}

/// A one-node SLURM cluster (slurmctld + slurmd) on this machine.
pub struct Slurm {
    dir: tempfile::TempDir,
    pub conf: PathBuf,
    pids: Vec<i32>,
}

impl Slurm {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["state", "spool"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let host = sweep::util::hostname();
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let user = if is_root() { "root".to_string() } else { std::env::var("USER").unwrap_or_else(|_| "root".into()) };
        let conf = d.join("slurm.conf");
        let text = format!(
            "ClusterName=sweeptest\nSlurmctldHost={host}(127.0.0.1)\nSlurmctldPort={ctld}\nSlurmdPort={slurmd}\n\
             SlurmUser={user}\nSlurmdUser={user}\nAuthType=auth/none\nCredType=cred/none\n\
             StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd.log\n\
             ProctrackType=proctrack/pgid\nTaskPlugin=task/none\nSchedulerType=sched/builtin\n\
             SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nReturnToService=2\nMpiDefault=none\n\
             JobCompType=jobcomp/none\nAccountingStorageType=accounting_storage/none\nKillWait=5\nInactiveLimit=0\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN\n\
             PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            ctld = free_port(),
            slurmd = free_port(),
            d = d.display(),
        );
        std::fs::write(&conf, text).unwrap();
        for (daemon, args) in [("slurmctld", vec!["-i"]), ("slurmd", vec![])] {
            let status = Command::new(daemon)
                .args(&args)
                .env("SLURM_CONF", &conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("{daemon}: {e}; run tests/install-deps.sh"));
            assert!(status.success(), "{daemon} did not start: {}", std::fs::read_to_string(d.join(format!("{daemon}.log"))).unwrap_or_default());
        }
        let mut slurm = Slurm { conf: conf.clone(), pids: Vec::new(), dir };
        for pid_file in ["slurmctld.pid", "slurmd.pid"] {
            let path = slurm.dir.path().join(pid_file);
            wait_until(Duration::from_secs(20), pid_file, || read_pid(&path).is_some());
            slurm.pids.push(read_pid(&path).unwrap());
        }
        wait_until(Duration::from_secs(30), "the SLURM node to be idle", || {
            let out = slurm.command("sinfo").args(["--noheader", "--format=%T"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim() == "idle"
        });
        slurm
    }

    /// A SLURM client command pointed at this cluster.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// States of a job's array tasks still in the queue.
    pub fn states(&self, job: &str) -> Vec<String> {
        let out = self.command("squeue").args(["--noheader", "--array", "--jobs", job, "--format=%i %T"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    }

    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let _ = self.command("scancel").args(["--full", "--user", &std::env::var("USER").unwrap_or_else(|_| "root".into())]).status();
        for &pid in self.pids.iter().rev() {
            stop(pid, libc::SIGTERM);
        }
    }
}
