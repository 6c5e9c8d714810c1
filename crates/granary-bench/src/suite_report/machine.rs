//! The machine a report ran on, read from `/proc` (Linux); fields that cannot be read
//! say so instead of failing the report.

/// What the report says about the machine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Machine {
    /// CPU model name.
    pub(crate) cpu: String,
    /// Logical CPUs available to this process.
    pub(crate) cores: usize,
    /// Total memory in GiB.
    pub(crate) memory_gib: Option<f64>,
    /// 1, 5 and 15 minute load averages.
    pub(crate) load: Option<[f64; 3]>,
    /// Whether the CPU flags say it is a virtual machine.
    pub(crate) virtual_machine: bool,
}

impl Machine {
    /// Reads the machine now.
    pub(crate) fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        Self::parse(&cpuinfo, &meminfo, &loadavg)
    }

    fn parse(cpuinfo: &str, meminfo: &str, loadavg: &str) -> Self {
        let field = |text: &str, name: &str| -> Option<String> {
            text.lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let cpu = field(cpuinfo, "model name").unwrap_or_else(|| "unknown CPU".to_string());
        let virtual_machine = field(cpuinfo, "flags")
            .is_some_and(|f| f.split_whitespace().any(|x| x == "hypervisor"));
        let memory_gib = field(meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kib| kib / 1024.0 / 1024.0);
        let numbers: Vec<f64> = loadavg
            .split_whitespace()
            .take(3)
            .filter_map(|x| x.parse().ok())
            .collect();
        let load = <[f64; 3]>::try_from(numbers).ok();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            cpu,
            cores,
            memory_gib,
            load,
            virtual_machine,
        }
    }

    /// One line, e.g. "2-core AMD EPYC 7B13 VM, 23.5 GiB, load average 1.20 / 0.90 / 0.50".
    pub(crate) fn describe(&self) -> String {
        let mut text = format!(
            "{}-core {}{}",
            self.cores,
            self.cpu,
            if self.virtual_machine {
                " VM (shared)"
            } else {
                ""
            }
        );
        if let Some(gib) = self.memory_gib {
            text.push_str(&format!(", {gib:.1} GiB"));
        }
        text.push_str(&self.load_text());
        text
    }

    /// ", load average a / b / c" or nothing.
    pub(crate) fn load_text(&self) -> String {
        self.load
            .map(|[a, b, c]| format!(", load average {a:.2} / {b:.2} / {c:.2}"))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_and_missing_ones_do_not_fail() {
        let m = Machine::parse(
            "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu hypervisor sse\n",
            "MemTotal:       24576000 kB\n",
            "1.50 0.75 0.25 1/200 999\n",
        );
        assert_eq!(m.cpu, "AMD EPYC 7B13");
        assert!(m.virtual_machine);
        assert_eq!(m.load, Some([1.5, 0.75, 0.25]));
        assert!(m
            .describe()
            .contains("AMD EPYC 7B13 VM (shared), 23.4 GiB, load average 1.50"));
        let empty = Machine::parse("", "", "");
        assert_eq!(empty.cpu, "unknown CPU");
        assert_eq!(empty.load, None);
    }
}
