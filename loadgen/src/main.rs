//! The `s9p-load` command line: parse, raise the fd limit, run, print.

use clap::Parser;
use s9p_load::cli::{Target, seconds};
use s9p_load::config::{
    DEFAULT_CONNECT_BATCH, DEFAULT_MSIZE, DEFAULT_REPLY_TIMEOUT, DEFAULT_SMALL_READ, LoadConfig,
};
use s9p_load::mix::Mix;
use s9p_load::{fdlimit, run};
use secure9p_transport::tls::{Identity, TlsClient};
use std::path::PathBuf;
use std::process::ExitCode;

/// Load generator for any 9P2000.L server: N connections, each keeping D
/// requests in flight (small reads, getattr, large sequential reads) for a
/// fixed time; reports req/s, MB/s, latency percentiles, errors and the
/// server's peak memory.
#[derive(Debug, Parser)]
#[command(name = "s9p-load", version)]
struct Cli {
    #[command(flatten)]
    target: Target,
    /// Numeric user id in Tattach (4294967295: none).
    #[arg(long, default_value_t = 0)]
    n_uname: u32,
    /// Concurrent connections.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Requests kept in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// msize proposed in Tversion (the server may grant less).
    #[arg(long, default_value_t = DEFAULT_MSIZE)]
    msize: u32,
    /// Operations and their weights.
    #[arg(long, default_value_t = Mix::default())]
    mix: Mix,
    /// Small file, relative to the attach root (for small-read).
    #[arg(long)]
    small_file: Option<String>,
    /// Large file, relative to the attach root (for large-read).
    #[arg(long)]
    large_file: Option<String>,
    /// Bytes per small read, at offset 0.
    #[arg(long, default_value_t = DEFAULT_SMALL_READ)]
    small_read: u32,
    /// Bytes per large read [default: msize - 24, what the Linux client asks
    /// and the most diod serves; capped at msize - 11].
    #[arg(long)]
    large_chunk: Option<u32>,
    /// Seconds a connection waits for a reply before giving up.
    #[arg(long, default_value_t = DEFAULT_REPLY_TIMEOUT.as_secs_f64())]
    reply_timeout: f64,
    /// Connections set up at once.
    #[arg(long, default_value_t = DEFAULT_CONNECT_BATCH)]
    connect_batch: usize,
    /// Worker threads of the runtime [default: one per CPU].
    #[arg(long)]
    threads: Option<usize>,
    /// Sample this process's VmRSS/VmHWM during the run (the server).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print the report as one line of JSON.
    #[arg(long)]
    json: bool,
    /// Mutual TLS: this client's certificate, PEM (with --tls-key, --tls-ca).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Its private key, PEM, mode 0600.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// The CA the server's certificate must chain to.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry [default: the IP of --addr].
    #[arg(long, value_name = "NAME")]
    tls_server_name: Option<String>,
}

/// The TLS connector and server name of `--tls-*`, if given.
fn tls(cli: &Cli) -> Result<Option<(TlsClient, String)>, String> {
    let flags = (
        cli.tls_cert.as_deref(),
        cli.tls_key.as_deref(),
        cli.tls_ca.as_deref(),
    );
    let Some(identity) = Identity::from_flags(flags.0, flags.1, flags.2)? else {
        return Ok(None);
    };
    let client = TlsClient::new(&identity).map_err(|e| e.to_string())?;
    let name = cli
        .tls_server_name
        .clone()
        .unwrap_or_else(|| cli.target.addr.ip().to_string());
    Ok(Some((client, name)))
}

fn config(cli: Cli) -> Result<(LoadConfig, Option<usize>, bool), String> {
    let tls = tls(&cli)?;
    let cfg = LoadConfig {
        tls,
        duration: seconds("--duration", cli.duration)?,
        reply_timeout: seconds("--reply-timeout", cli.reply_timeout)?,
        uname: cli.target.uname,
        n_uname: cli.n_uname,
        msize: cli.msize,
        connections: cli.connections,
        pipeline: cli.pipeline,
        mix: cli.mix,
        small_file: cli.small_file,
        large_file: cli.large_file,
        small_read: cli.small_read,
        large_chunk: cli.large_chunk,
        connect_batch: cli.connect_batch,
        server_pid: cli.server_pid,
        ..LoadConfig::new(cli.target.addr, cli.target.aname)
    };
    cfg.validate().map_err(|e| e.to_string())?;
    Ok((cfg, cli.threads, cli.json))
}

fn main() -> ExitCode {
    let (cfg, threads, json) = match config(Cli::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("s9p-load: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = fdlimit::ensure(cfg.connections) {
        eprintln!("s9p-load: {e}");
        return ExitCode::from(2);
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("s9p-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = rt.block_on(run(cfg));
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    if report.connected == 0 || report.requests == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
