//! `--per-item`: one process per record, GNU parallel style.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use raygent_core::{Task, TaskError};

/// Runs `program args...` once per item, with `{}` in the arguments replaced
/// by the item (or the item appended when no argument has `{}`). The result
/// is the command's stdout without its final newline; a non-zero exit, a
/// signal or the timeout is a failure of the item's chunk.
#[derive(Debug, Clone)]
pub struct PerItemTask {
    /// The program and its argument templates.
    pub command: Vec<String>,
    /// Run through `sh -c`.
    pub shell: bool,
    /// Time limit per item.
    pub timeout: Option<Duration>,
}

impl PerItemTask {
    fn argv(&self, item: &str) -> Result<Vec<String>, TaskError> {
        let has_slot = self.command.iter().skip(1).any(|a| a.contains("{}"));
        let mut argv: Vec<String> = self
            .command
            .iter()
            .enumerate()
            .map(|(i, a)| {
                if i == 0 {
                    a.clone()
                } else {
                    a.replace("{}", item)
                }
            })
            .collect();
        if !has_slot {
            argv.push(item.to_owned());
        }
        if self.shell {
            // `sh -c SCRIPT sh ARGS...`: the script sees the item as $1.
            let script = self
                .command
                .first()
                .cloned()
                .unwrap_or_default()
                .replace("{}", &shell_quote(item)?);
            let mut v = vec!["sh".to_owned(), "-c".to_owned(), script, "sh".to_owned()];
            v.push(item.to_owned());
            return Ok(v);
        }
        Ok(argv)
    }
}

/// `item` as one shell word (the shlex crate's quoting): as it is when it
/// holds only characters the shell leaves alone (so `$(( {} * 2 ))` works
/// on numbers), else quoted. An item holding a NUL byte cannot be passed
/// to a shell at all.
fn shell_quote(item: &str) -> Result<std::borrow::Cow<'_, str>, TaskError> {
    shlex::try_quote(item)
        .map_err(|e| format!("cannot quote item {item:?} for the shell: {e}").into())
}

impl Task for PerItemTask {
    type Input = String;
    type Output = String;

    fn process_item(&mut self, item: &String) -> Result<String, TaskError> {
        let argv = self.argv(item)?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("PYTHONUNBUFFERED", "1")
            // Its own process group: a Ctrl-C in the terminal stops raygent
            // (which then finishes cleanly), not the items in flight.
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {:?}: {e} (is it installed and in PATH?)",
                argv[0]
            )
        })?;
        let pid = child.id();
        let mut stdout = child.stdout.take().ok_or("stdout not captured")?;
        let mut stderr = child.stderr.take().ok_or("stderr not captured")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let err_reader = std::thread::spawn(move || {
                let _ = stderr.read_to_end(&mut err);
                err
            });
            let _ = stdout.read_to_end(&mut out);
            let err = err_reader.join().unwrap_or_default();
            let status = child.wait();
            let _ = tx.send((status, out, err));
        });
        let received = match self.timeout {
            Some(t) => rx.recv_timeout(t).map_err(|_| ()),
            None => rx.recv().map_err(|_| ()),
        };
        let Ok((status, out, err)) = received else {
            if let Some(group) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                // Fails only if the group is gone already.
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = rx.recv();
            return Err(format!(
                "{:?} on item {item:?} ran past the {:?} timeout and was killed",
                argv[0],
                self.timeout.unwrap_or_default()
            )
            .into());
        };
        let status = status.map_err(|e| format!("waiting for {:?}: {e}", argv[0]))?;
        if !status.success() {
            use std::os::unix::process::ExitStatusExt;
            let how = match (status.code(), status.signal()) {
                (Some(c), _) => format!("exited with code {c}"),
                (None, Some(s)) => format!("was killed by signal {s}"),
                _ => "failed".to_owned(),
            };
            let err = String::from_utf8_lossy(&err);
            let tail: Vec<&str> = err.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let stderr = if tail.is_empty() {
                "; it wrote nothing to stderr".to_owned()
            } else {
                format!("; its last stderr lines:\n{}", tail.join("\n"))
            };
            return Err(format!("{:?} on item {item:?} {how}{stderr}", argv[0]).into());
        }
        let mut text = String::from_utf8(out)
            .map_err(|_| format!("{:?} on item {item:?} printed non-UTF-8 output", argv[0]))?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        Ok(text)
    }

    fn name(&self) -> std::borrow::Cow<'static, str> {
        "per-item".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_item_replaces_braces_or_is_appended() {
        let t = PerItemTask {
            command: vec!["echo".into(), "x={}".into()],
            shell: false,
            timeout: None,
        };
        assert_eq!(t.argv("7").unwrap(), vec!["echo", "x=7"]);
        let t = PerItemTask {
            command: vec!["echo".into()],
            shell: false,
            timeout: None,
        };
        assert_eq!(t.argv("7").unwrap(), vec!["echo", "7"]);
    }

    #[test]
    fn stdout_is_the_result_and_failures_carry_stderr() {
        let mut t = PerItemTask {
            command: vec!["echo $(( {} * {} )); [ {} -ne 3 ] || { echo bad >&2; exit 4; }".into()],
            shell: true,
            timeout: None,
        };
        assert_eq!(t.process_item(&"5".to_owned()).unwrap(), "25");
        let e = t.process_item(&"3".to_owned()).unwrap_err().to_string();
        assert!(e.contains("code 4") && e.contains("bad"), "{e}");
    }

    #[test]
    fn shell_items_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("12").unwrap(), "12");
        assert_eq!(shell_quote("a/b.txt").unwrap(), "a/b.txt");
        assert_eq!(shell_quote("").unwrap(), "''");
        assert_ne!(shell_quote("it's $HOME; rm").unwrap(), "it's $HOME; rm");
        assert!(shell_quote("nul\0byte").is_err());
        let mut t = PerItemTask {
            command: vec!["printf '%s|' {}; echo \"$1\"".into()],
            shell: true,
            timeout: None,
        };
        let item = "it's $HOME; `x`".to_owned();
        assert_eq!(t.process_item(&item).unwrap(), format!("{item}|{item}"));
    }

    #[test]
    fn a_hung_item_is_killed_at_the_timeout() {
        let mut t = PerItemTask {
            command: vec!["sleep".into(), "{}".into()],
            shell: false,
            timeout: Some(Duration::from_millis(200)),
        };
        let e = t.process_item(&"30".to_owned()).unwrap_err().to_string();
        assert!(e.contains("timeout"), "{e}");
    }
}
