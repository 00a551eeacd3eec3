//! `ninedoor`: serves the Cohesix hive over Secure9P on TCP (and optionally
//! a Unix socket) until Ctrl-C or SIGTERM.
//!
//! The first stdout line is `ninedoor listening on tcp <addr>` with the
//! address really bound (scripts and tests start it with `--listen
//! 127.0.0.1:0` and read the port from there); then where the Queen's
//! ticket file is. Exit status: 0 after a clean stop, 1 for a usage or
//! config error, 2 when it could not start (address in use, unwritable
//! ticket file, unusable key or GPU bridge settings). GPU bridges are
//! connected in the background; their state goes to stderr.
//!
//! With `--tls-cert/--tls-key/--tls-ca` the TCP listener and the links to
//! GPU bridges speak mutual TLS; a listener on a non-loopback address
//! without them refuses to start unless `--insecure-plain-tcp` is given.
//! `ninedoor cert ca|server|client` makes those files.

// jemalloc, giving freed memory back to the OS (host-alloc's README); the
// runtime's thread hands its cache back when it goes idle.
use clap::{Parser, Subcommand};
use ninedoor::host::cert_files::{make_ca, make_leaf};
use ninedoor::host::{Host, HostConfig, TlsArgs};
use secure9p_transport::tls::certs::{DEFAULT_CA_DAYS, DEFAULT_LEAF_DAYS, Usage};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Serve the Cohesix hive (/proc, /queen/ctl, /log/queen.log, /worker, /gpu)
/// over Secure9P.
#[derive(Debug, Parser)]
#[command(
    name = "ninedoor",
    version,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// TOML config file (flags given here override it).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// TCP address to serve on; port 0 picks a free one [default: 127.0.0.1:5640].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Also serve on this Unix socket (mode 0600, removed at exit).
    #[arg(long, value_name = "PATH")]
    unix: Option<PathBuf>,
    /// Where to write the Queen's ticket (mode 0600)
    /// [default: $XDG_RUNTIME_DIR/cohesix/queen.ticket, else ~/.cohesix/queen.ticket].
    #[arg(long, value_name = "PATH")]
    ticket_file: Option<PathBuf>,
    /// The hive key: 32 bytes or 64 hex digits, mode 0600 [default: 32 random bytes].
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Keep the audit log and the hive's state in this directory so they
    /// survive restarts (created mode 0700; its hive.key is used unless
    /// --key-file is given).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Lifetime of spawned workers' tickets, seconds (the Queen's `budget`
    /// command changes it later).
    #[arg(long, value_name = "SECONDS")]
    ticket_ttl_s: Option<u64>,
    /// Mirror this GPU bridge's GPUs under /gpu (repeatable; replaces the
    /// config file's list). PREFIX=HOST:PORT installs its GPU <id> as
    /// PREFIX-<id>.
    #[arg(long = "gpu-bridge", value_name = "[PREFIX=]HOST:PORT")]
    gpu_bridge: Vec<String>,
    /// The key shared with the GPU bridges (their --ticket-key-file): 32
    /// bytes or 64 hex digits, mode 0600. Not the hive key.
    #[arg(long, value_name = "FILE")]
    gpu_bridge_key: Option<PathBuf>,
    /// Mutual TLS on the TCP listener and the bridge links.
    #[command(flatten)]
    tls: TlsArgs,
    /// Serve plain TCP on a non-loopback --listen anyway: tickets cross the
    /// network in clear (only on a network you trust).
    #[arg(long)]
    insecure_plain_tcp: bool,
    /// Print the configuration in force as TOML and exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make TLS certificates: a hive CA, then server and client
    /// certificates it signs (PEM, every file mode 0600, never overwritten).
    Cert {
        #[command(subcommand)]
        kind: CertKind,
    },
}

#[derive(Debug, Subcommand)]
enum CertKind {
    /// A new CA: DIR/ca.pem (every host's --tls-ca) and DIR/ca.key (keep it
    /// off the hosts).
    Ca {
        /// Where to write (created mode 0700).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Days it is valid.
        #[arg(long, default_value_t = DEFAULT_CA_DAYS)]
        days: u32,
    },
    /// A listener's certificate (ninedoor, gpu-bridge-host), signed by
    /// DIR/ca.*: DIR/NAME.pem and DIR/NAME.key. Clients must dial NAME or
    /// one of the --also names. It is also good for dialling out (NineDoor's
    /// bridge links).
    Server {
        /// The host's DNS name or IP address (and the files' name).
        name: String,
        /// More DNS names or IP addresses the host is dialled by (repeatable).
        #[arg(long, value_name = "NAME")]
        also: Vec<String>,
        /// The CA's directory, where the files go too.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Days it is valid.
        #[arg(long, default_value_t = DEFAULT_LEAF_DAYS)]
        days: u32,
    },
    /// A client's certificate (cohsh, worker-heartbeat), signed by
    /// DIR/ca.*: DIR/NAME.pem and DIR/NAME.key.
    Client {
        /// Who it is for (a DNS-style name: the files' name too).
        name: String,
        /// The CA's directory, where the files go too.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Days it is valid.
        #[arg(long, default_value_t = DEFAULT_LEAF_DAYS)]
        days: u32,
    },
}

fn cert(kind: &CertKind) -> ExitCode {
    let written = match kind {
        CertKind::Ca { dir, days } => make_ca(dir, *days),
        CertKind::Server {
            name,
            also,
            dir,
            days,
        } => make_leaf(dir, Usage::Server, name, also, *days),
        CertKind::Client { name, dir, days } => make_leaf(dir, Usage::Client, name, &[], *days),
    };
    match written {
        Ok(files) => {
            for f in files {
                println!("ninedoor cert: wrote {} (mode 0600)", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ninedoor cert: {e}");
            ExitCode::from(EXIT_START)
        }
    }
}

const AFTER_HELP: &str = "\
Examples:
  ninedoor                                  # 127.0.0.1:5640, ticket in $XDG_RUNTIME_DIR/cohesix/
  ninedoor --listen 127.0.0.1:0 --ticket-file ./queen.ticket
  ninedoor --config /etc/cohesix/ninedoor.toml --unix /run/cohesix/ninedoor.sock
  ninedoor --gpu-bridge 127.0.0.1:5650 --gpu-bridge-key /etc/cohesix/bridge.key
  ninedoor cert ca --dir ./pki && ninedoor cert server queen.example --dir ./pki
  ninedoor --listen 0.0.0.0:5640 --tls-cert pki/queen.example.pem --tls-key pki/queen.example.key --tls-ca pki/ca.pem
Then drive it with cohsh, e.g. `cohsh ls /`, `cohsh spawn heartbeat w1` or `cohsh gpu list`.";

/// Usage or config errors.
const EXIT_USAGE: u8 = 1;
/// The host could not start.
const EXIT_START: u8 = 2;

fn config(cli: &Cli) -> Result<HostConfig, String> {
    let mut config = match &cli.config {
        Some(path) => HostConfig::load(path).map_err(|e| e.to_string())?,
        None => HostConfig::default(),
    };
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    if let Some(unix) = &cli.unix {
        config.unix = Some(unix.clone());
    }
    if let Some(path) = &cli.ticket_file {
        config.ticket_file = Some(path.clone());
    }
    if let Some(path) = &cli.key_file {
        config.key_file = Some(path.clone());
    }
    if let Some(dir) = &cli.state_dir {
        config.state.dir = Some(dir.clone());
    }
    if let Some(ttl) = cli.ticket_ttl_s {
        config.hive.ticket_ttl_s = ttl;
    }
    if !cli.gpu_bridge.is_empty() {
        config.gpu.bridges = cli.gpu_bridge.clone();
    }
    if let Some(path) = &cli.gpu_bridge_key {
        config.gpu.key_file = Some(path.clone());
    }
    if let Some(files) = cli.tls.files()? {
        config.tls = Some(files.into());
    }
    if cli.insecure_plain_tcp {
        config.insecure_plain_tcp = true;
    }
    Ok(config)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    if let Some(Command::Cert { kind }) = &cli.command {
        return cert(kind);
    }
    let config = match config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ninedoor: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if cli.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(|| {
            cohesix_host_alloc::idle();
        })
        .build()
    {
        Ok(r) => {
            cohesix_host_alloc::wake_when_idle(&r, 1);
            r
        }
        Err(e) => {
            eprintln!("ninedoor: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    runtime.block_on(async {
        let host = match Host::start(&config).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("ninedoor: {e}");
                return ExitCode::from(EXIT_START);
            }
        };
        let stop = ninedoor::host::stop_signal();
        println!("ninedoor listening on tcp {}", host.tcp_addr());
        if let Some(tls) = config.tls.as_ref().filter(|_| host.tls()) {
            println!(
                "ninedoor tls: mutual TLS 1.3 on tcp and the bridge links, peers' certificates from {}",
                tls.ca.display()
            );
        }
        if let Some(path) = host.unix_path() {
            println!("ninedoor listening on unix {}", path.display());
        }
        println!(
            "ninedoor queen ticket in {} (mode 0600, expires {}, renewed at half-life)",
            host.ticket_path().display(),
            host.queen_ticket_expires()
        );
        println!("ninedoor serving until Ctrl-C or SIGTERM");
        stop.await;
        println!("ninedoor stopping");
        host.shutdown().await;
        ExitCode::SUCCESS
    })
}
