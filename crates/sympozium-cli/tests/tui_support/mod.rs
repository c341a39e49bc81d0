//! Driving the real `sympozium` binary in a pseudo-terminal: a tmux server on a socket of
//! this test's own (so no other tmux is touched), one session per test, keys sent with
//! `send-keys`, the screen read with `capture-pane`. Under CI a missing tmux fails.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;
use std::time::{Duration, Instant};

/// A program running in its own tmux server.
pub struct Pty {
    socket: String,
}

impl Pty {
    /// Starts `argv` in a 160×45 terminal.
    pub fn start(name: &str, argv: &[&str], env: &[(&str, &str)]) -> Pty {
        let socket = format!("sympozium-{name}-{}", std::process::id());
        let mut cmd = Command::new("tmux");
        cmd.args([
            "-L",
            &socket,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            "160",
            "-y",
            "45",
        ]);
        for (k, v) in env {
            cmd.args(["-e", &format!("{k}={v}")]);
        }
        // The shell keeps the pane open after the program exits, so its last words can be read.
        let quoted: Vec<String> = argv.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect();
        cmd.arg(format!("{}; echo \"[exited $?]\"; sleep 600", quoted.join(" ")));
        let out = cmd.output().expect("tmux is installed (apt-get install tmux)");
        assert!(out.status.success(), "tmux: {}", String::from_utf8_lossy(&out.stderr));
        Pty { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").args(["-L", &self.socket]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen as text.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "main"])
    }

    /// Types text literally.
    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "main", "-l", text]);
        std::thread::sleep(Duration::from_millis(60));
    }

    /// Sends named keys (`Enter`, `Escape`, `Down`, `Space`, …) one by one.
    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", "main", k]);
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    /// Waits until the screen satisfies `pred`; fails with the screen after `secs`.
    pub fn wait(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Waits until the screen shows `text`.
    pub fn wait_for(&self, text: &str, secs: u64) -> String {
        self.wait(&format!("\"{text}\""), secs, |s| s.contains(text))
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // Only this test's own server.
        self.tmux(&["kill-server"]);
    }
}
