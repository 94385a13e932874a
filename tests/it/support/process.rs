//! What a running process looks like from outside, read from Linux's
//! `/proc`: its parent, its environment, the TCP ports it listens on. The
//! real-hub tests use it on the culler the hub starts as a managed service,
//! which the test did not start itself and cannot ask.

use std::fs;
use std::path::{Path, PathBuf};

/// A process seen through `/proc/PID`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// Its process id.
    pub pid: u32,
}

impl Process {
    /// The children of `parent` running `program` (compared by the
    /// executable's resolved path).
    pub fn children_running(parent: u32, program: &Path) -> Vec<Process> {
        let wanted = fs::canonicalize(program).unwrap_or_else(|_| program.to_owned());
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut found: Vec<Process> = entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .map(|pid| Process { pid })
            .filter(|process| process.parent() == Some(parent))
            .filter(|process| process.executable().as_deref() == Some(wanted.as_path()))
            .collect();
        found.sort_by_key(|process| process.pid);
        found
    }

    /// Its parent's id (`None` once it has exited).
    pub fn parent(&self) -> Option<u32> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // `PID (COMMAND) STATE PPID ...`; the command may hold spaces and
        // parentheses, so read after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        rest.split_whitespace().nth(1)?.parse().ok()
    }

    /// The program it runs.
    pub fn executable(&self) -> Option<PathBuf> {
        fs::read_link(format!("/proc/{}/exe", self.pid)).ok()
    }

    /// The value of an environment variable it was started with.
    pub fn env(&self, name: &str) -> Option<String> {
        let environ = fs::read(format!("/proc/{}/environ", self.pid)).ok()?;
        environ.split(|b| *b == 0).find_map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (key, value) = text.split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
    }

    /// The TCP ports it listens on (IPv4 and IPv6): its sockets, matched by
    /// inode against the kernel's tables of listening sockets.
    pub fn listening_ports(&self) -> Vec<u16> {
        let mut inodes = Vec::new();
        if let Ok(fds) = fs::read_dir(format!("/proc/{}/fd", self.pid)) {
            for fd in fds.flatten() {
                let Ok(target) = fs::read_link(fd.path()) else {
                    continue;
                };
                let target = target.to_string_lossy().into_owned();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|rest| rest.strip_suffix(']'))
                {
                    inodes.push(inode.to_owned());
                }
            }
        }
        let mut ports = Vec::new();
        for table in ["tcp", "tcp6"] {
            let text =
                fs::read_to_string(format!("/proc/{}/net/{table}", self.pid)).unwrap_or_default();
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // local_address is HEXIP:HEXPORT, st 0A is LISTEN, inode is
                // the tenth field.
                let (Some(local), Some(state), Some(inode)) =
                    (fields.get(1), fields.get(3), fields.get(9))
                else {
                    continue;
                };
                if *state != "0A" || !inodes.iter().any(|i| i == inode) {
                    continue;
                }
                if let Some(port) = local
                    .rsplit_once(':')
                    .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok())
                {
                    ports.push(port);
                }
            }
        }
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_process_is_seen_with_its_environment_and_listening_ports() {
        let me = Process {
            pid: std::process::id(),
        };
        assert!(me.parent().is_some());
        assert_eq!(
            me.executable(),
            Some(std::env::current_exe().expect("this test's binary"))
        );
        assert_eq!(me.env("PATH"), std::env::var("PATH").ok());
        assert_eq!(me.env("SURELY_NOT_SET_IN_THIS_TEST"), None);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        assert!(me.listening_ports().contains(&port), "{port}");
        drop(listener);
        assert!(!me.listening_ports().contains(&port), "{port}");
    }
}
