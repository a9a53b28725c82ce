//! `provii-load`: N concurrent Issuing-Party clients, each on one keep-alive
//! connection, doing attestation + blind issuance against a running
//! appliance on loopback. Prints throughput and latency percentiles, how
//! busy the machine's CPUs were and how much the hypervisor stole, its own
//! CPU time per iteration, and with `--daemon-pid` the daemon's.
//!
//!   provii-load --addr 127.0.0.1:8080 --client-id demo-bank \
//!       --secret-file state/demo-client.secret --connections 32 --seconds 20
//!
//! By default each connection starts its next iteration as soon as the last
//! one ends (a closed loop: it measures the most the appliance can serve, and
//! its latency is then set by the queue, `connections / throughput`). With
//! `--rate R` the connections together start `R` iterations per second on a
//! fixed schedule (an open loop), and an iteration's latency counts from its
//! scheduled start, so time spent behind schedule is not hidden: the latency
//! an integrator sees at that load. `--samples FILE` keeps every iteration
//! (CSV), to see when the slow ones happened, not only how many there were.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use provii_circuits::encoding::{b64url_encode, hex_decode};
use provii_e2e::cpu::{MachineTimes, process_cpu};
use provii_e2e::world::{IssuingParty, good_r_bits, now, random_hex32};

#[derive(Parser)]
#[command(about = "Load an appliance with attestation + blind issuance")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    #[arg(long)]
    client_id: String,
    /// File holding the client's 32-byte secret as hex
    #[arg(long)]
    secret_file: PathBuf,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Stop after this long (seconds)
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Dates of birth are drawn around this day count
    #[arg(long, default_value_t = 7300)]
    dob_days: i32,
    /// The daemon's process id: reports its CPU time per iteration
    #[arg(long)]
    daemon_pid: Option<u32>,
    /// Offer this many iterations per second in total, on a fixed schedule,
    /// instead of as many as the connections can complete
    #[arg(long)]
    rate: Option<f64>,
    /// Also write every iteration as a CSV line to this file: connection,
    /// start (µs from the run's start), attestation and issuance latency (µs)
    #[arg(long)]
    samples: Option<PathBuf>,
}

/// When a connection starts its iterations.
#[derive(Clone, Copy)]
enum Schedule {
    /// Each as soon as the previous one ends.
    Closed,
    /// Every `period`, the next at `next`; connections are offset so that
    /// the starts spread evenly over the period.
    Fixed { next: Instant, period: Duration },
}

impl Schedule {
    fn for_connection(rate: Option<f64>, connections: usize, index: usize, start: Instant) -> Self {
        match rate {
            None => Schedule::Closed,
            Some(rate) => Schedule::Fixed {
                next: start + Duration::from_secs_f64(index as f64 / rate),
                period: Duration::from_secs_f64(connections as f64 / rate),
            },
        }
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
    addr: String,
}

impl Conn {
    fn open(addr: &str) -> std::io::Result<Self> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            reader: BufReader::new(s),
            addr: addr.to_owned(),
        })
    }

    /// One POST on the kept-alive connection; returns status and body.
    fn post(&mut self, path: &str, body: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.reader.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("bad status line"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v
                    .trim()
                    .parse()
                    .map_err(|_| std::io::Error::other("bad length"))?;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

/// One completed iteration.
#[derive(Clone, Copy)]
struct Sample {
    /// When it began (with `--rate`, when it was scheduled to), from the
    /// run's start.
    began: Duration,
    /// Attestation + issuance, counted from `began`.
    iteration: Duration,
    attestation: Duration,
    issuance: Duration,
}

/// What one connection did.
#[derive(Default)]
struct Tally {
    samples: Vec<Sample>,
    failures: u64,
}

/// One attestation + issuance; returns each request's own latency, or
/// `Ok(None)` when either was refused.
fn iteration(
    conn: &mut Conn,
    party: &IssuingParty,
    dob: i32,
) -> std::io::Result<Option<(Duration, Duration)>> {
    let start = Instant::now();
    let (status, body) = conn.post(
        "/v1/attestation/create",
        &party.request(dob, now(), &random_hex32()).to_string(),
    )?;
    if status != 201 {
        return Ok(None);
    }
    let attested = Instant::now();
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(std::io::Error::other)?;
    let req = serde_json::json!({"attestation": v["attestation"], "r_bits": b64url_encode(&good_r_bits())});
    let issuing = Instant::now();
    let (status, _) = conn.post("/v1/issuance/blind", &req.to_string())?;
    Ok((status == 200).then(|| (attested - start, issuing.elapsed())))
}

fn worker(
    args: &Args,
    party: &IssuingParty,
    mut schedule: Schedule,
    start: Instant,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let Ok(mut conn) = Conn::open(&args.addr) else {
        tally.failures += 1;
        return tally;
    };
    loop {
        let began = match &mut schedule {
            Schedule::Fixed { next, period } => {
                let at = *next;
                if at >= deadline {
                    break;
                }
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                *next += *period;
                at
            }
            Schedule::Closed => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                now
            }
        };
        let dob = args.dob_days + (rand::random::<u16>() % 1000) as i32;
        match iteration(&mut conn, party, dob) {
            Ok(Some((attestation, issuance))) => {
                tally.samples.push(Sample {
                    began: began - start,
                    iteration: began.elapsed(),
                    attestation,
                    issuance,
                });
            }
            Ok(None) => tally.failures += 1,
            Err(_) => {
                tally.failures += 1;
                match Conn::open(&args.addr) {
                    Ok(c) => conn = c,
                    Err(_) => return tally,
                }
            }
        }
    }
    tally
}

fn write_samples(file: std::fs::File, tallies: &[Tally]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "connection,start_us,attestation_us,issuance_us")?;
    for (connection, t) in tallies.iter().enumerate() {
        for s in &t.samples {
            writeln!(
                out,
                "{connection},{},{},{}",
                s.began.as_micros(),
                s.attestation.as_micros(),
                s.issuance.as_micros()
            )?;
        }
    }
    out.flush()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> ExitCode {
    let args = Args::parse();
    let secret =
        match std::fs::read_to_string(&args.secret_file).map(|s| hex_decode(s.trim(), "secret")) {
            Ok(Ok(s)) => s,
            _ => {
                eprintln!(
                    "provii-load: error: cannot read a hex secret from {}",
                    args.secret_file.display()
                );
                return ExitCode::from(2);
            }
        };
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) || args.connections == 0 {
        eprintln!(
            "provii-load: error: --rate must be a positive number and --connections at least 1"
        );
        return ExitCode::from(2);
    }
    // Created before the run, so that a path it cannot write is refused
    // before any request is sent.
    let samples = match &args.samples {
        None => None,
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Some((file, path)),
            Err(e) => {
                eprintln!("provii-load: error: cannot create {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let party = IssuingParty {
        id: args.client_id.clone(),
        secret,
    };
    let machine_before = MachineTimes::now();
    let daemon_before = args.daemon_pid.and_then(process_cpu);
    if let (Some(pid), None) = (args.daemon_pid, daemon_before) {
        eprintln!(
            "provii-load: error: cannot read /proc/{pid}/stat; is {pid} the daemon's process id?"
        );
        return ExitCode::from(2);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let load_before = process_cpu(std::process::id());
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.connections)
            .map(|i| {
                let schedule = Schedule::for_connection(args.rate, args.connections, i, start);
                let (args, party) = (&args, &party);
                s.spawn(move || worker(args, party, schedule, start, deadline))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    if let Some((file, path)) = samples
        && let Err(e) = write_samples(file, &tallies)
    {
        eprintln!("provii-load: error: cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }
    let machine = machine_before
        .zip(MachineTimes::now())
        .and_then(|(before, after)| before.share_until(&after));
    let used_since = |before: Option<Duration>, pid: Option<u32>| {
        before
            .zip(pid.and_then(process_cpu))
            .map(|(before, after)| after.saturating_sub(before))
    };
    // The tool shares the machine's cores with the daemon; what it takes
    // of them is part of the picture.
    let load_cpu = used_since(load_before, Some(std::process::id()));
    let daemon_cpu = used_since(daemon_before, args.daemon_pid);
    let sorted = |pick: fn(&Sample) -> Duration| {
        let mut v: Vec<Duration> = tallies
            .iter()
            .flat_map(|t| t.samples.iter().map(pick))
            .collect();
        v.sort();
        v
    };
    let (iterations, attestation, issuance) = (
        sorted(|s| s.iteration),
        sorted(|s| s.attestation),
        sorted(|s| s.issuance),
    );
    let ms = |v: &[Duration], p: f64| percentile(v, p).as_secs_f64() * 1e3;
    let n = iterations.len();
    let per_iteration_us = |cpu: Option<Duration>| {
        cpu.filter(|_| n > 0)
            .map(|d| d.as_secs_f64() * 1e6 / n as f64)
    };
    let report = serde_json::json!({
        "connections": args.connections,
        "offered_per_second": args.rate,
        "seconds": elapsed,
        "issuances": n,
        "failures": tallies.iter().map(|t| t.failures).sum::<u64>(),
        "issuances_per_second": n as f64 / elapsed,
        "p50_ms": ms(&iterations, 0.50),
        "p99_ms": ms(&iterations, 0.99),
        "max_ms": ms(&iterations, 1.0),
        "attestation_p50_ms": ms(&attestation, 0.50),
        "attestation_p99_ms": ms(&attestation, 0.99),
        "issuance_p50_ms": ms(&issuance, 0.50),
        "issuance_p99_ms": ms(&issuance, 0.99),
        "cpus_busy_percent": machine.map(|m| m.busy_percent),
        "steal_percent": machine.map(|m| m.steal_percent),
        "daemon_cpu_us_per_iteration": per_iteration_us(daemon_cpu),
        "load_tool_cpu_us_per_iteration": per_iteration_us(load_cpu),
    });
    println!("{report}");
    if n == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
