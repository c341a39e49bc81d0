//! Pseudo-terminals for `kubectl exec -t`: the command gets the slave side as its
//! stdin/stdout/stderr (and controlling terminal, through `setsid -c`); the node relays the
//! master side and applies the client's window size.

use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;

/// An open terminal pair.
pub struct Pty {
    /// The node's side.
    pub master: OwnedFd,
    /// The command's side.
    pub slave: OwnedFd,
}

/// Opens a new pseudo-terminal.
pub fn open() -> std::io::Result<Pty> {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave =
        rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())?;
    Ok(Pty { master, slave })
}

/// Sets the terminal's size (columns × rows).
pub fn resize(master: &impl std::os::fd::AsFd, width: u16, height: u16) -> std::io::Result<()> {
    let size = rustix::termios::Winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
    rustix::termios::tcsetwinsize(master, size)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_terminal_opens_and_takes_a_size() {
        let pty = open().unwrap();
        resize(&pty.master, 120, 40).unwrap();
        let size = rustix::termios::tcgetwinsize(&pty.slave).unwrap();
        assert_eq!((size.ws_col, size.ws_row), (120, 40));
    }
}
