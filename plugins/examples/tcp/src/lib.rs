//! The `tcp` plugin of atf: talk to a service over a plain TCP socket —
//! the text and binary protocols that HTTP keywords cannot reach (bank
//! front-end processors with length-prefixed messages, line protocols,
//! banners). `tcp.request` connects, sends text, hex or base64 bytes
//! (optionally behind a length header) and reads one reply, which ends at
//! a delimiter, after a number of bytes, after a length header's worth of
//! bytes, after a silence, or when the peer closes the connection.
//! `tcp.connect` only checks that a port accepts connections (with
//! `retry`, it waits for a service to come up).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use atf_sdk::{
    Call, FnKeyword, KeywordError, KeywordResult, KeywordSpec, Value, json, parse_duration,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

atf_sdk::export_plugin! {
    namespace: "tcp",
    keywords: [
        FnKeyword::new(
            KeywordSpec::new("request", "sends bytes to a TCP service and reads one reply")
                .required("address", "string", "`host:port`")
                .arg("send", "string|object|array", "text to send (objects and arrays as compact JSON)")
                .arg("send_hex", "string", "bytes to send, as hex")
                .arg("send_base64", "string", "bytes to send, as base64")
                .arg("until", "string", "the reply ends with this text (left out of the result), e.g. \"\\n\"")
                .arg("until_hex", "string", "the reply ends with these bytes, as hex")
                .arg("read_bytes", "integer", "the reply is exactly this many bytes")
                .arg("length_prefix", "integer", "messages both ways start with a header of this many bytes giving the length of the rest")
                .arg("length_format", "string", "the header: `binary` (big-endian, 1, 2, 4 or 8 bytes; default) or `ascii` (zero-padded decimal digits)")
                .arg("idle", "string|number", "without framing: the reply ends after this silence (e.g. \"200ms\") instead of when the peer closes")
                .arg("read", "string", "`none`: send only, read nothing")
                .arg("timeout", "string|number", "for the whole exchange (default: the step's timeout)")
                .arg("max_bytes", "integer", "refuse replies longer than this (default 16 MiB)")
                .result("`text` (the reply as UTF-8, invalid bytes replaced), `hex`, `json` (when the text is JSON), `bytes`, `sent`, `elapsed_ms`"),
            request,
        ),
        FnKeyword::new(
            KeywordSpec::new("connect", "checks that a TCP port accepts connections")
                .required("address", "string", "`host:port`")
                .arg("timeout", "string|number", "default: the step's timeout")
                .result("`address` (the one that answered), `elapsed_ms`"),
            connect,
        ),
    ],
}

const DEFAULT_MAX: u64 = 16 << 20;

/// When the exchange must be over: the step's deadline, or sooner.
fn deadline(call: &Call<'_>) -> Result<Instant, KeywordError> {
    match call.arg("timeout") {
        None => Ok(call.deadline),
        Some(v) => {
            let d = parse_duration(v).map_err(|e| KeywordError::new(format!("`timeout`: {e}")))?;
            Ok((Instant::now() + d).min(call.deadline))
        }
    }
}

fn left(deadline: Instant) -> Option<Duration> {
    let d = deadline.saturating_duration_since(Instant::now());
    (!d.is_zero()).then_some(d)
}

/// Connects to the first address of `address` that answers before `deadline`.
fn open(address: &str, deadline: Instant) -> Result<(TcpStream, SocketAddr), KeywordError> {
    let addrs: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| KeywordError::new(format!("cannot resolve `{address}`: {e}")))?
        .collect();
    let mut last = None;
    for addr in addrs {
        let Some(wait) = left(deadline) else { break };
        match TcpStream::connect_timeout(&addr, wait) {
            Ok(stream) => return Ok((stream, addr)),
            Err(e) => last = Some(e),
        }
    }
    Err(KeywordError::new(match last {
        Some(e) => format!("cannot connect to {address}: {e}"),
        None => format!("cannot connect to {address}: no address answered in time"),
    }))
}

/// `tcp.connect`.
fn connect(call: &Call<'_>) -> KeywordResult {
    let started = Instant::now();
    let address = call.required_str("address")?;
    let (_, addr) = open(address, deadline(call)?)?;
    Ok(json!({ "address": addr.to_string(), "elapsed_ms": started.elapsed().as_millis() as u64 }))
}

/// How a length header is written.
#[derive(Clone, Copy)]
struct Prefix {
    width: usize,
    ascii: bool,
}

impl Prefix {
    fn from_call(call: &Call<'_>) -> Result<Option<Prefix>, KeywordError> {
        let width = match call.arg("length_prefix") {
            None => return Ok(None),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| KeywordError::new("`length_prefix` must be a number of bytes"))?,
        };
        let ascii = match call.str_arg("length_format")?.unwrap_or("binary") {
            "binary" => false,
            "ascii" => true,
            other => {
                return Err(KeywordError::new(format!(
                    "unknown `length_format` `{other}`: use `binary` or `ascii`"
                )));
            }
        };
        let ok = if ascii {
            (1..=10).contains(&width)
        } else {
            matches!(width, 1 | 2 | 4 | 8)
        };
        if !ok {
            return Err(KeywordError::new(format!(
                "`length_prefix` {width} is not possible: binary headers are 1, 2, 4 or 8 bytes, ascii ones 1 to 10 digits"
            )));
        }
        Ok(Some(Prefix {
            width: width as usize,
            ascii,
        }))
    }

    fn encode(self, len: usize) -> Result<Vec<u8>, KeywordError> {
        let too_long = || {
            KeywordError::new(format!(
                "the message ({len} bytes) does not fit a {}-byte length header",
                self.width
            ))
        };
        if self.ascii {
            let text = format!("{len:0width$}", width = self.width);
            if text.len() > self.width {
                return Err(too_long());
            }
            Ok(text.into_bytes())
        } else {
            let bytes = (len as u64).to_be_bytes();
            let (high, low) = bytes.split_at(8 - self.width);
            if high.iter().any(|&b| b != 0) {
                return Err(too_long());
            }
            Ok(low.to_vec())
        }
    }

    fn decode(self, header: &[u8]) -> Result<u64, KeywordError> {
        if self.ascii {
            std::str::from_utf8(header)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    KeywordError::new(format!(
                        "the reply's length header is not decimal digits: {}",
                        preview(header)
                    ))
                })
        } else {
            Ok(header.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
        }
    }
}

/// Where the reply ends.
enum Framing {
    None,
    Delimiter(Vec<u8>),
    Count(u64),
    Prefixed(Prefix),
    Close { idle: Option<Duration> },
}

fn framing(call: &Call<'_>, prefix: Option<Prefix>) -> Result<Framing, KeywordError> {
    let until = match (call.str_arg("until")?, call.str_arg("until_hex")?) {
        (Some(_), Some(_)) => return Err("give `until` or `until_hex`, not both".into()),
        (Some(text), None) => Some(text.as_bytes().to_vec()),
        (None, Some(h)) => Some(
            hex::decode(h.trim())
                .map_err(|e| KeywordError::new(format!("`until_hex` is not hex: {e}")))?,
        ),
        (None, None) => None,
    };
    let count = match call.arg("read_bytes") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| KeywordError::new("`read_bytes` must be a number"))?,
        ),
    };
    let idle = match call.arg("idle") {
        None => None,
        Some(v) => Some(parse_duration(v).map_err(|e| KeywordError::new(format!("`idle`: {e}")))?),
    };
    let given = [until.is_some(), count.is_some(), prefix.is_some()]
        .iter()
        .filter(|&&b| b)
        .count();
    if given > 1 {
        return Err("give only one of `until`, `read_bytes` and `length_prefix`".into());
    }
    if idle.is_some() && given > 0 {
        return Err("`idle` ends replies that have no framing; it cannot go with `until`, `read_bytes` or `length_prefix`".into());
    }
    match call.str_arg("read")? {
        Some("none") if given == 0 && idle.is_none() => return Ok(Framing::None),
        Some("none") => return Err("`read`: `none` reads nothing: drop the reply options".into()),
        Some(other) => {
            return Err(KeywordError::new(format!(
                "unknown `read` `{other}`: only `none` is accepted (the reply options choose how to read)"
            )));
        }
        None => {}
    }
    Ok(match (until, count, prefix) {
        (Some(d), _, _) if d.is_empty() => return Err("`until` cannot be empty".into()),
        (Some(d), _, _) => Framing::Delimiter(d),
        (_, Some(n), _) => Framing::Count(n),
        (_, _, Some(p)) => Framing::Prefixed(p),
        _ => Framing::Close { idle },
    })
}

/// The bytes to send.
fn payload(call: &Call<'_>) -> Result<Vec<u8>, KeywordError> {
    let given: Vec<&str> = ["send", "send_hex", "send_base64"]
        .into_iter()
        .filter(|n| call.arg(n).is_some())
        .collect();
    if given.len() > 1 {
        return Err(KeywordError::new(format!(
            "give only one of `send`, `send_hex` and `send_base64` (got {})",
            given.join(", ")
        )));
    }
    if let Some(v) = call.arg("send") {
        return Ok(match v {
            Value::String(s) => s.as_bytes().to_vec(),
            other => other.to_string().into_bytes(),
        });
    }
    if let Some(h) = call.str_arg("send_hex")? {
        let compact: String = h.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        return hex::decode(compact)
            .map_err(|e| KeywordError::new(format!("`send_hex` is not hex: {e}")));
    }
    if let Some(b) = call.str_arg("send_base64")? {
        return BASE64
            .decode(b.trim())
            .map_err(|e| KeywordError::new(format!("`send_base64` is not base64: {e}")));
    }
    Ok(Vec::new())
}

/// `tcp.request`.
fn request(call: &Call<'_>) -> KeywordResult {
    let started = Instant::now();
    let address = call.required_str("address")?;
    let deadline = deadline(call)?;
    let prefix = Prefix::from_call(call)?;
    let framing = framing(call, prefix)?;
    let max = match call.arg("max_bytes") {
        None => DEFAULT_MAX,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| KeywordError::new("`max_bytes` must be a number"))?,
    };
    let body = payload(call)?;
    let mut message = match prefix {
        Some(p) => p.encode(body.len())?,
        None => Vec::new(),
    };
    message.extend_from_slice(&body);

    let (mut stream, _) = open(address, deadline)?;
    let _ = stream.set_nodelay(true);
    if !message.is_empty() {
        let _ = stream.set_write_timeout(left(deadline));
        stream
            .write_all(&message)
            .map_err(|e| KeywordError::new(format!("cannot send to {address}: {e}")))?;
    }
    let mut reader = Reader {
        stream,
        buf: Vec::new(),
        deadline,
        address,
        max,
        timeout_ms: deadline.saturating_duration_since(started).as_millis() as u64,
    };
    let reply = match framing {
        Framing::None => Vec::new(),
        Framing::Delimiter(d) => reader.until(&d)?,
        Framing::Count(n) => reader.exactly(n)?,
        Framing::Prefixed(p) => {
            let header = reader.exactly(p.width as u64)?;
            let len = p.decode(&header)?;
            reader.exactly(len)?
        }
        Framing::Close { idle } => reader.until_end(idle)?,
    };
    let text = String::from_utf8_lossy(&reply).into_owned();
    let mut result = json!({
        "text": text,
        "hex": hex::encode(&reply),
        "bytes": reply.len(),
        "sent": message.len(),
        "elapsed_ms": started.elapsed().as_millis() as u64,
    });
    if let Ok(parsed) = atf_sdk::serde_json::from_str::<Value>(&text)
        && (parsed.is_object() || parsed.is_array())
    {
        result["json"] = parsed;
    }
    Ok(result)
}

/// Reads a reply, keeping what has arrived so far for error messages.
struct Reader<'a> {
    stream: TcpStream,
    buf: Vec<u8>,
    deadline: Instant,
    address: &'a str,
    max: u64,
    timeout_ms: u64,
}

/// What one read gave.
enum Got {
    Bytes,
    Closed,
    Quiet,
}

impl Reader<'_> {
    /// Reads once, waiting at most until the deadline (or `idle`).
    fn read_some(&mut self, idle: Option<Duration>) -> Result<Got, KeywordError> {
        let Some(wait) = left(self.deadline) else {
            return Err(self.timed_out());
        };
        let wait = idle.map_or(wait, |i| i.min(wait));
        let _ = self.stream.set_read_timeout(Some(wait));
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(Got::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                if self.buf.len() as u64 > self.max {
                    return Err(KeywordError::new(format!(
                        "the reply from {} is longer than `max_bytes` ({})",
                        self.address, self.max
                    )));
                }
                Ok(Got::Bytes)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => match idle
            {
                Some(_) if left(self.deadline).is_some() => Ok(Got::Quiet),
                _ => Err(self.timed_out()),
            },
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(Got::Bytes),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(Got::Closed),
            Err(e) => Err(KeywordError::new(format!(
                "reading from {} failed: {e}",
                self.address
            ))),
        }
    }

    fn until(&mut self, delimiter: &[u8]) -> Result<Vec<u8>, KeywordError> {
        let mut searched = 0;
        loop {
            if let Some(at) = find(&self.buf[searched..], delimiter) {
                let end = searched + at;
                return Ok(self.buf[..end].to_vec());
            }
            searched = self.buf.len().saturating_sub(delimiter.len() - 1);
            if let Got::Closed = self.read_some(None)? {
                return Err(
                    self.closed_early(&format!("before the delimiter {}", preview(delimiter)))
                );
            }
        }
    }

    fn exactly(&mut self, n: u64) -> Result<Vec<u8>, KeywordError> {
        if n > self.max {
            return Err(KeywordError::new(format!(
                "the reply from {} announces {n} bytes, more than `max_bytes` ({})",
                self.address, self.max
            )));
        }
        let n = n as usize;
        while self.buf.len() < n {
            if let Got::Closed = self.read_some(None)? {
                return Err(self.closed_early(&format!("after {} of {n} bytes", self.buf.len())));
            }
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    fn until_end(&mut self, idle: Option<Duration>) -> Result<Vec<u8>, KeywordError> {
        loop {
            match self.read_some(idle)? {
                Got::Bytes => {}
                Got::Closed | Got::Quiet => return Ok(std::mem::take(&mut self.buf)),
            }
        }
    }

    fn timed_out(&self) -> KeywordError {
        KeywordError::new(format!(
            "no complete reply from {} within {} ms (got {} bytes: {})",
            self.address,
            self.timeout_ms,
            self.buf.len(),
            preview(&self.buf)
        ))
    }

    fn closed_early(&self, what: &str) -> KeywordError {
        KeywordError::new(format!(
            "{} closed the connection {what} (got {} bytes: {})",
            self.address,
            self.buf.len(),
            preview(&self.buf)
        ))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Bytes for a message: as text when they are printable UTF-8, else hex.
fn preview(bytes: &[u8]) -> String {
    const MAX: usize = 120;
    let cut = &bytes[..bytes.len().min(MAX)];
    let more = if bytes.len() > MAX { "…" } else { "" };
    match std::str::from_utf8(cut) {
        Ok(s)
            if !s
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') =>
        {
            format!("{s:?}{more}")
        }
        _ => format!("hex {}{more}", hex::encode(cut)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atf_sdk::NoHost;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::path::Path;
    use std::thread;

    fn run(f: fn(&Call<'_>) -> KeywordResult, args: Value) -> KeywordResult {
        let call = Call {
            args: &args,
            deadline: Instant::now() + Duration::from_secs(5),
            case_start_ms: 0,
            base_dir: Path::new("."),
            host: &NoHost,
        };
        f(&call)
    }

    /// A server on a free local port that handles `n` connections with `serve`.
    fn server(n: usize, serve: fn(TcpStream)) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        thread::spawn(move || {
            for stream in listener.incoming().take(n) {
                let stream = stream.unwrap();
                thread::spawn(move || serve(stream));
            }
        });
        addr
    }

    /// Answers each line with `echo: <line>\r\n`.
    fn line_echo(stream: TcpStream) {
        let mut out = stream.try_clone().unwrap();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if out
                .write_all(format!("echo: {line}\r\n").as_bytes())
                .is_err()
            {
                return;
            }
        }
    }

    /// Reads one 4-digit-ASCII-length-prefixed message and answers with the
    /// same framing, upper-cased.
    fn prefixed_upper(mut stream: TcpStream) {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).unwrap();
        let len: usize = std::str::from_utf8(&header).unwrap().parse().unwrap();
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).unwrap();
        let reply = String::from_utf8(body).unwrap().to_uppercase();
        stream
            .write_all(format!("{:04}{reply}", reply.len()).as_bytes())
            .unwrap();
    }

    /// Reads a 2-byte binary length-prefixed message and echoes it back framed.
    fn prefixed_binary(mut stream: TcpStream) {
        let mut header = [0u8; 2];
        stream.read_exact(&mut header).unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(header))];
        stream.read_exact(&mut body).unwrap();
        stream.write_all(&header).unwrap();
        stream.write_all(&body).unwrap();
    }

    fn banner_then_close(mut stream: TcpStream) {
        let _ = stream.write_all(b"{\"service\":\"up\"}");
    }

    fn banner_then_silence(mut stream: TcpStream) {
        let _ = stream.write_all(b"HELLO");
        thread::sleep(Duration::from_secs(3));
    }

    #[test]
    fn line_protocol_with_delimiter() {
        let addr = server(2, line_echo);
        let out = run(
            request,
            json!({"address": addr, "send": "ping\n", "until": "\r\n"}),
        )
        .unwrap();
        assert_eq!(out["text"], "echo: ping");
        assert_eq!(out["bytes"], 10);
        assert_eq!(out["sent"], 5);
        let out = run(
            request,
            json!({"address": addr, "send_hex": "6869 0a", "until_hex": "0d0a"}),
        );
        assert_eq!(out.unwrap()["text"], "echo: hi");
    }

    #[test]
    fn ascii_length_prefix_both_ways() {
        let addr = server(1, prefixed_upper);
        let out = run(
            request,
            json!({"address": addr, "send": "{\"a\":\"pay\"}", "length_prefix": 4, "length_format": "ascii"}),
        )
        .unwrap();
        assert_eq!(out["text"], "{\"A\":\"PAY\"}");
        assert_eq!(out["json"], json!({"A": "PAY"}));
        assert_eq!(out["sent"], 15);
    }

    #[test]
    fn binary_length_prefix_and_base64() {
        let addr = server(1, prefixed_binary);
        let out = run(
            request,
            json!({"address": addr, "send_base64": "AAEC/w==", "length_prefix": 2}),
        )
        .unwrap();
        assert_eq!(out["hex"], "000102ff");
        assert_eq!(out["bytes"], 4);
    }

    #[test]
    fn read_until_close_count_and_idle() {
        let addr = server(1, banner_then_close);
        let out = run(request, json!({"address": addr})).unwrap();
        assert_eq!(out["json"], json!({"service": "up"}));

        let addr = server(2, banner_then_silence);
        let out = run(request, json!({"address": addr, "read_bytes": 3})).unwrap();
        assert_eq!(out["text"], "HEL");
        let started = Instant::now();
        let out = run(request, json!({"address": addr, "idle": "200ms"})).unwrap();
        assert_eq!(out["text"], "HELLO");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn timeouts_and_early_close_say_what_arrived() {
        let addr = server(1, banner_then_silence);
        let started = Instant::now();
        let err = run(
            request,
            json!({"address": addr, "until": "\n", "timeout": "300ms"}),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            err.message.contains("no complete reply") && err.message.contains("\"HELLO\""),
            "{err}"
        );

        let addr = server(1, banner_then_close);
        let err = run(request, json!({"address": addr, "read_bytes": 100})).unwrap_err();
        assert!(
            err.message
                .contains("closed the connection after 16 of 100 bytes"),
            "{err}"
        );
    }

    #[test]
    fn connect_and_refused() {
        let addr = server(1, banner_then_close);
        let out = run(connect, json!({"address": addr})).unwrap();
        assert_eq!(out["address"], addr);

        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = run(connect, json!({"address": free.to_string()})).unwrap_err();
        assert!(err.message.starts_with("cannot connect to"), "{err}");
        let err = run(request, json!({"address": "no-port"})).unwrap_err();
        assert!(err.message.contains("cannot resolve"), "{err}");
    }

    #[test]
    fn send_only_and_argument_errors() {
        let addr = server(1, line_echo);
        let out = run(
            request,
            json!({"address": addr, "send": "x\n", "read": "none"}),
        )
        .unwrap();
        assert_eq!(out["bytes"], 0);
        let err = |args| run(request, args).unwrap_err().message;
        assert!(
            err(json!({"address": "127.0.0.1:1", "send": "a", "send_hex": "61"}))
                .contains("only one of")
        );
        assert!(
            err(json!({"address": "127.0.0.1:1", "until": "\n", "read_bytes": 2}))
                .contains("only one of")
        );
        assert!(
            err(json!({"address": "127.0.0.1:1", "length_prefix": 3})).contains("not possible")
        );
        assert!(
            err(json!({"address": "127.0.0.1:1", "until": "\n", "idle": "1s"})).contains("`idle`")
        );
        assert!(err(json!({"address": "127.0.0.1:1", "read": "all"})).contains("unknown `read`"));
    }

    #[test]
    fn prefixes() {
        let bin = Prefix {
            width: 2,
            ascii: false,
        };
        assert_eq!(bin.encode(258).unwrap(), [1, 2]);
        assert_eq!(bin.decode(&[1, 2]).unwrap(), 258);
        assert!(bin.encode(70_000).is_err());
        let ascii = Prefix {
            width: 4,
            ascii: true,
        };
        assert_eq!(ascii.encode(42).unwrap(), b"0042");
        assert!(ascii.encode(10_000).is_err());
        assert!(ascii.decode(b"00x1").is_err());
        assert_eq!(preview(b"ok\n"), "\"ok\\n\"");
        assert_eq!(preview(&[0, 1]), "hex 0001");
    }
}
