//! CPU accounting for the load tool, from Linux's `/proc`: how busy the
//! machine's CPUs were during a run, how much of their time the hypervisor
//! took for other guests (steal), and how much CPU the daemon used.
//!
//! On this project's virtual machines the hypervisor's steal varies from a
//! few percent to a quarter of the CPU within minutes, and throughput and
//! tail latency follow it; a load figure without the steal beside it cannot
//! be compared with another. Times in `/proc` are in `USER_HZ` ticks, which
//! the kernel fixes at 100 per second in its user ABI.

use std::time::Duration;

const USER_HZ: u64 = 100;

/// The machine-wide CPU times of `/proc/stat`'s `cpu` line, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineTimes {
    total: u64,
    idle: u64,
    steal: u64,
}

/// What a run's CPUs did between two [`MachineTimes`], in percent of all
/// CPU time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineShare {
    /// Running anything, this guest's kernel included.
    pub busy_percent: f64,
    /// Taken by the hypervisor while this guest wanted to run.
    pub steal_percent: f64,
}

impl MachineTimes {
    /// Reads `/proc/stat`; `None` where there is none (not Linux).
    pub fn now() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// Parses the aggregate `cpu` line: user nice system idle iowait irq
    /// softirq steal, then guest times (already counted in user and nice,
    /// so left out of the total).
    pub fn parse(proc_stat: &str) -> Option<Self> {
        let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let [user, nice, system, idle, iowait, irq, softirq, steal] = fields[..] else {
            return None;
        };
        Some(Self {
            total: user + nice + system + idle + iowait + irq + softirq + steal,
            idle: idle + iowait,
            steal,
        })
    }

    /// The shares of CPU time from `self` to `later`; `None` if no time
    /// passed or the counters went backwards.
    pub fn share_until(&self, later: &Self) -> Option<MachineShare> {
        let total = later.total.checked_sub(self.total).filter(|t| *t > 0)? as f64;
        let idle = later.idle.checked_sub(self.idle)? as f64;
        let steal = later.steal.checked_sub(self.steal)? as f64;
        Some(MachineShare {
            busy_percent: 100.0 * (total - idle - steal) / total,
            steal_percent: 100.0 * steal / total,
        })
    }
}

/// User plus system CPU time of process `pid`, all its threads, from
/// `/proc/PID/stat`.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    parse_process_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Fields 14 and 15 (utime, stime) of a `/proc/PID/stat` line. The command
/// name in field 2 is in parentheses and may itself hold spaces and
/// parentheses, so counting starts after the last `)`.
pub fn parse_process_cpu(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards; utime is field 14.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_of_a_run_from_two_proc_stat_readings() {
        // Two readings 1 000 ticks apart (hand-made): 600 busy (user 400,
        // nice 0, system 150, irq 20, softirq 30), 300 idle + 50 iowait,
        // 50 steal; the guest columns are inside user and do not count.
        let before = "cpu  1000 0 500 8000 100 0 50 200 300 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        let after = "cpu  1400 0 650 8300 150 20 80 250 700 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        let (a, b) = (
            MachineTimes::parse(before).expect("parses"),
            MachineTimes::parse(after).expect("parses"),
        );
        let share = a.share_until(&b).expect("time passed");
        assert!((share.busy_percent - 60.0).abs() < 1e-9, "{share:?}");
        assert!((share.steal_percent - 5.0).abs() < 1e-9, "{share:?}");
        assert_eq!(b.share_until(&a), None, "counters going backwards");
        assert_eq!(a.share_until(&a), None, "no time passed");
    }

    #[test]
    fn a_proc_stat_without_a_cpu_line_or_with_short_one_is_refused() {
        assert_eq!(MachineTimes::parse("intr 1 2 3\n"), None);
        assert_eq!(MachineTimes::parse("cpu  1 2 3\n"), None);
        assert_eq!(MachineTimes::parse("cpu  1 2 x 4 5 6 7 8\n"), None);
    }

    #[test]
    fn process_cpu_counts_after_a_name_with_spaces_and_parentheses() {
        // utime 250 and stime 50 ticks: 3 s at 100 ticks a second.
        let stat = "4242 (provii (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(parse_process_cpu(stat), Some(Duration::from_secs(3)));
        assert_eq!(parse_process_cpu("4242 (short) S 1 2"), None);
    }

    #[test]
    fn this_machine_reports_its_times_and_this_process_its_cpu() {
        if !std::path::Path::new("/proc/stat").exists() {
            return;
        }
        let start = MachineTimes::now().expect("/proc/stat parses");
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(60) {
            std::hint::black_box(spin);
        }
        let used = process_cpu(std::process::id()).expect("/proc/self/stat parses");
        assert!(used > Duration::ZERO, "a process that spun has used CPU");
        let end = MachineTimes::now().expect("/proc/stat parses");
        let share = start.share_until(&end).expect("time passed");
        assert!((0.0..=100.0).contains(&share.busy_percent), "{share:?}");
        assert!((0.0..=100.0).contains(&share.steal_percent), "{share:?}");
    }
}
