//! Where a job's processes run: the hosts file (one `host:port` per line, process `i` on line
//! `i`), this process's index and the worker threads per process, plus the connect deadline.
//! Blank lines and `#` comments are ignored.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// The processes of a job and this process's place among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// `host:port` of every process, in process order.
    pub addresses: Vec<String>,
    /// This process's index into `addresses`.
    pub process: usize,
    /// Worker threads in every process (the same everywhere).
    pub workers_per_process: usize,
    /// How long to keep trying to reach the peers before giving up.
    pub connect_timeout: Duration,
}

impl Topology {
    /// One process with `workers` threads (no network).
    pub fn local_threads(workers: usize) -> Self {
        Self {
            addresses: vec!["localhost:0".into()],
            process: 0,
            workers_per_process: workers.max(1),
            connect_timeout: Duration::from_secs(30),
        }
    }

    /// A topology read from a hosts file.
    pub fn from_hosts_file(
        path: &Path,
        process: usize,
        workers_per_process: usize,
    ) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let addresses = parse_hosts(&text)
            .map_err(|m| Error::Config(format!("hosts file {}: {m}", path.display())))?;
        let topology = Self {
            addresses,
            process,
            workers_per_process,
            connect_timeout: Duration::from_secs(60),
        };
        topology.validate()?;
        Ok(topology)
    }

    /// Checks the process index and worker count against the addresses.
    pub fn validate(&self) -> Result<()> {
        if self.addresses.is_empty() {
            return Err(Error::Config("no process addresses".into()));
        }
        if self.process >= self.addresses.len() {
            return Err(Error::Config(format!(
                "process index {} is out of range: the hosts list has {} processes (0..{})",
                self.process,
                self.addresses.len(),
                self.addresses.len() - 1
            )));
        }
        if self.workers_per_process == 0 {
            return Err(Error::Config(
                "workers per process must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Number of processes.
    pub fn processes(&self) -> usize {
        self.addresses.len()
    }

    /// Workers in the whole job.
    pub fn total_workers(&self) -> usize {
        self.processes() * self.workers_per_process
    }
}

/// The addresses of a hosts file's text, with the line of each problem.
fn parse_hosts(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut addresses: Vec<String> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let valid_port = line
            .rsplit_once(':')
            .filter(|(host, _)| !host.is_empty())
            .and_then(|(_, port)| port.parse::<u16>().ok())
            .is_some_and(|port| port > 0);
        if !valid_port || line.contains(char::is_whitespace) {
            return Err(format!(
                "line {}: expected host:port (e.g. node1.example.com:2101), got {line:?}",
                n + 1
            ));
        }
        if let Some(first) = addresses.iter().position(|a| a == line) {
            return Err(format!(
                "line {}: address {line} is already process {first}; every process needs its own port",
                n + 1
            ));
        }
        addresses.push(line.to_owned());
    }
    if addresses.is_empty() {
        return Err("no host:port lines".into());
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_lines_comments_and_errors() {
        let ok = parse_hosts("# cluster\nnode1:2101\n\n node2:2102  # second\n").unwrap();
        assert_eq!(ok, vec!["node1:2101", "node2:2102"]);
        assert!(parse_hosts("node1\n").unwrap_err().contains("line 1"));
        assert!(parse_hosts("a:1\nb:x\n").unwrap_err().contains("line 2"));
        assert!(parse_hosts("a:1\na:1\n")
            .unwrap_err()
            .contains("already process 0"));
        assert!(parse_hosts("# nothing\n")
            .unwrap_err()
            .contains("no host:port"));
        assert!(parse_hosts(":80\n").is_err());
    }

    #[test]
    fn process_index_is_checked() {
        let t = Topology {
            addresses: vec!["a:1".into(), "b:2".into()],
            process: 2,
            workers_per_process: 1,
            connect_timeout: Duration::from_secs(1),
        };
        assert!(t
            .validate()
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        assert_eq!(Topology::local_threads(3).total_workers(), 3);
    }
}
