//! The wire between atf and a plugin-host process: length-prefixed frames
//! on a pipe. A frame is a 4-byte little-endian length and that many bytes.
//! A request is the keyword name, a NUL byte and the call's input JSON; an
//! answer is the plugin's answer JSON as the plugin returned it. The first
//! frame a host sends is its hello: `{"ok": manifest}` or `{"error": why}`.
//!
//! The parent's side never blocks past a deadline: its pipe ends are
//! non-blocking and every wait is a `poll(2)` bounded by the step's
//! deadline, woken every few milliseconds to look at Ctrl-C. The child's
//! side is plain blocking I/O.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// The largest frame either side accepts: a plugin answer beyond it is an
/// error, not an allocation that takes the run down.
pub(crate) const MAX_FRAME: usize = 256 * 1024 * 1024;

/// Why a wait on the pipe ended without the bytes wanted.
#[derive(Debug)]
pub(crate) enum WaitError {
    /// The deadline passed.
    Deadline,
    /// The run is being interrupted.
    Cancelled,
    /// The other end is gone (end of file or a broken pipe).
    Closed,
    /// A frame longer than [`MAX_FRAME`] was announced.
    TooLong(usize),
    /// Anything else the system said.
    Io(io::Error),
}

/// Makes a pipe end non-blocking.
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this process owns, with plain flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// How often a wait looks at the cancel flag.
const CANCEL_SLICE: Duration = Duration::from_millis(50);

/// Waits until `fd` is ready for `events` (`POLLIN`/`POLLOUT`), `until`
/// passes, or `cancelled` says so. A hang-up counts as ready: the read or
/// write that follows reports it.
fn wait(
    fd: RawFd,
    events: libc::c_short,
    until: Instant,
    cancelled: &dyn Fn() -> bool,
) -> Result<(), WaitError> {
    loop {
        let now = Instant::now();
        if now >= until {
            return Err(WaitError::Deadline);
        }
        if cancelled() {
            return Err(WaitError::Cancelled);
        }
        let slice = (until - now).min(CANCEL_SLICE);
        let ms = libc::c_int::try_from(slice.as_millis()).unwrap_or(libc::c_int::MAX);
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
        if rc > 0 {
            return Ok(());
        }
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(WaitError::Io(e));
            }
        }
    }
}

/// Writes one frame made of `parts` to a non-blocking pipe before `until`,
/// assembled in `buf` first so that it goes out in one write (one wake-up
/// of the reader) whenever the pipe has room.
pub(crate) fn send<W: Write + AsRawFd>(
    pipe: &mut W,
    buf: &mut Vec<u8>,
    parts: &[&[u8]],
    until: Instant,
    cancelled: &dyn Fn() -> bool,
) -> Result<(), WaitError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > MAX_FRAME {
        return Err(WaitError::TooLong(len));
    }
    let header = u32::try_from(len).map_err(|_| WaitError::TooLong(len))?;
    buf.clear();
    buf.reserve(4 + len);
    buf.extend_from_slice(&header.to_le_bytes());
    for part in parts {
        buf.extend_from_slice(part);
    }
    let mut rest = &buf[..];
    while !rest.is_empty() {
        match pipe.write(rest) {
            Ok(0) => return Err(WaitError::Closed),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(pipe.as_raw_fd(), libc::POLLOUT, until, cancelled)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Err(WaitError::Closed),
            Err(e) => return Err(WaitError::Io(e)),
        }
    }
    Ok(())
}

/// Reads what the pipe has (at least one byte) onto the end of `out`,
/// waiting until `until` when it has nothing yet.
fn read_some<R: Read + AsRawFd>(
    pipe: &mut R,
    out: &mut Vec<u8>,
    want: usize,
    until: Instant,
    cancelled: &dyn Fn() -> bool,
) -> Result<(), WaitError> {
    let mut chunk = [0u8; 64 * 1024];
    let room = want.clamp(1, chunk.len());
    loop {
        match pipe.read(&mut chunk[..room]) {
            Ok(0) => return Err(WaitError::Closed),
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(pipe.as_raw_fd(), libc::POLLIN, until, cancelled)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WaitError::Io(e)),
        }
    }
}

/// Reads one frame from a non-blocking pipe into `out` before `until`:
/// usually a single read, since the other side writes a frame at once.
pub(crate) fn receive<R: Read + AsRawFd>(
    pipe: &mut R,
    out: &mut Vec<u8>,
    until: Instant,
    cancelled: &dyn Fn() -> bool,
) -> Result<(), WaitError> {
    out.clear();
    while out.len() < 4 {
        read_some(pipe, out, usize::MAX, until, cancelled)?;
    }
    let len = u32::from_le_bytes([out[0], out[1], out[2], out[3]]) as usize;
    if len > MAX_FRAME {
        return Err(WaitError::TooLong(len));
    }
    let total = 4 + len;
    // Never read past this frame: the next one is another call's.
    if out.len() > total {
        return Err(WaitError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "more bytes than one frame",
        )));
    }
    out.reserve(total - out.len());
    while out.len() < total {
        read_some(pipe, out, total - out.len(), until, cancelled)?;
    }
    out.drain(..4);
    Ok(())
}

/// Reads one frame with blocking I/O (the host's side); `None` at a clean
/// end of input.
pub(crate) fn read_blocking(input: &mut impl Read, out: &mut Vec<u8>) -> io::Result<Option<()>> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        match input.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is too long"),
        ));
    }
    out.clear();
    out.resize(len, 0);
    input.read_exact(out)?;
    Ok(Some(()))
}

/// Writes one frame with blocking I/O (the host's side).
pub(crate) fn write_blocking(output: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("an answer of {} bytes is too long", body.len()),
        )
    })?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(body);
    output.write_all(&frame)?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn frames_round_trip_and_time_out() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let far = Instant::now() + Duration::from_secs(5);
        send(
            &mut a,
            &mut Vec::new(),
            &[b"kw", b"\0", b"{}"],
            far,
            &|| false,
        )
        .unwrap();
        let mut got = Vec::new();
        b.set_nonblocking(false).unwrap();
        read_blocking(&mut b, &mut got).unwrap().unwrap();
        assert_eq!(got, b"kw\0{}");
        write_blocking(&mut b, b"answer").unwrap();
        receive(&mut a, &mut got, far, &|| false).unwrap();
        assert_eq!(got, b"answer");

        // Nothing comes: the deadline ends the wait; Ctrl-C does too.
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(matches!(
            receive(&mut a, &mut got, soon, &|| false),
            Err(WaitError::Deadline)
        ));
        assert!(matches!(
            receive(&mut a, &mut got, far, &|| true),
            Err(WaitError::Cancelled)
        ));

        // An absurd length is refused before anything is allocated.
        b.write_all(&u32::MAX.to_le_bytes()).unwrap();
        assert!(matches!(
            receive(&mut a, &mut got, far, &|| false),
            Err(WaitError::TooLong(_))
        ));

        // The other end closing is seen as such, mid-frame too.
        b.write_all(&[10, 0, 0, 0, b'x']).unwrap();
        drop(b);
        assert!(matches!(
            receive(&mut a, &mut got, far, &|| false),
            Err(WaitError::Closed)
        ));
        let mut empty: &[u8] = &[];
        assert!(read_blocking(&mut empty, &mut got).unwrap().is_none());
    }
}
