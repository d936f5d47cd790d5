//! What a load run shows and writes besides the reports: the live console
//! line each second, the closing lines, and `--samples FILE`, every
//! measured step sample as CSV with JMeter's column names (a `.jtl` that
//! JMeter's own report generator and the tools around it read).

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;

use atf_reports::StepReport;
use atf_reports::load::show_ms;

use super::histo;
use super::run::LiveSecond;
use crate::secret::Masker;

/// JMeter's CSV columns, in its order.
pub const JTL_COLUMNS: &str = "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect";

/// `--samples FILE`: every measured step sample, one CSV line each.
pub struct Jtl {
    out: Mutex<BufWriter<File>>,
}

fn csv(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

impl Jtl {
    /// Creates `path` and writes the header line.
    pub fn create(path: &Path) -> std::io::Result<Jtl> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = BufWriter::with_capacity(256 * 1024, File::create(path)?);
        writeln!(out, "{JTL_COLUMNS}")?;
        Ok(Jtl {
            out: Mutex::new(out),
        })
    }

    /// Writes one sample.
    #[allow(clippy::too_many_arguments)]
    pub fn sample(
        &self,
        label: &str,
        us: u64,
        s: &StepReport,
        failure: Option<&str>,
        (sent, received): (u64, u64),
        vu: usize,
        all_vus: u64,
        masker: &Masker,
    ) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let elapsed = us / 1000;
        let start = now_ms - elapsed as i64;
        let http = s.keyword == "http.request";
        let code = if http {
            s.result
                .get("status")
                .and_then(|v| v.as_u64())
                .map(|c| c.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let url = if http {
            s.args
                .get("url")
                .and_then(|v| v.as_str())
                .map(|u| masker.text(u))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let mut line = String::with_capacity(160);
        line.push_str(&format!("{start},{elapsed},"));
        csv(&mut line, &masker.text(label));
        line.push(',');
        csv(&mut line, &code);
        line.push(',');
        csv(
            &mut line,
            if failure.is_some() {
                s.status.as_str()
            } else {
                "OK"
            },
        );
        line.push_str(&format!(",vu {vu},text,{},", failure.is_none()));
        csv(&mut line, failure.unwrap_or(""));
        line.push_str(&format!(",{received},{sent},{all_vus},{all_vus},"));
        csv(&mut line, &url);
        line.push_str(&format!(",{elapsed},0,0\n"));
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(line.as_bytes());
        }
    }

    /// Flushes the file.
    pub fn finish(&self) -> std::io::Result<()> {
        match self.out.lock() {
            Ok(mut out) => out.flush(),
            Err(_) => Ok(()),
        }
    }
}

/// The live line: one per second, in place on a terminal.
pub struct Live {
    tty: bool,
    drawn: bool,
}

impl Live {
    /// A live line for the current stdout.
    pub fn new() -> Live {
        Live {
            tty: std::io::stdout().is_terminal(),
            drawn: false,
        }
    }

    /// The text of one second's line.
    pub fn line(s: &LiveSecond<'_>) -> String {
        let per_s = |n: u64| if s.dt > 0.0 { n as f64 / s.dt } else { 0.0 };
        if s.warmup {
            return format!(
                "warm-up {:>5.0}s  vus {:>4}  it/s {:>8.1}",
                s.t.abs(),
                s.vus,
                per_s(s.iterations)
            );
        }
        let c = &s.second.counts;
        let p95 = if s.second.steps.is_empty() {
            "-".to_string()
        } else {
            show_ms(histo::quantile_ms(&s.second.steps, 0.95))
        };
        let err_pct = if c.samples == 0 {
            0.0
        } else {
            c.errors as f64 * 100.0 / c.samples as f64
        };
        format!(
            "{:>7.0}s  vus {:>4}  it/s {:>8.1}  req/s {:>8.1}  p95 {:>8}  errors {} ({err_pct:.2}%)  dropped {}",
            s.t,
            s.vus,
            per_s(s.iterations),
            per_s(c.samples),
            p95,
            c.errors,
            s.second.dropped
        )
    }

    /// Shows one second.
    pub fn show(&mut self, s: &LiveSecond<'_>) {
        let line = Live::line(s);
        let mut out = std::io::stdout().lock();
        if self.tty {
            let _ = write!(out, "\r\x1b[2K{line}");
            self.drawn = true;
        } else {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    /// Ends the in-place line (on a terminal).
    pub fn done(&mut self) {
        if self.drawn {
            println!();
            self.drawn = false;
        }
    }
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        let mut s = String::new();
        csv(&mut s, "plain");
        s.push(',');
        csv(&mut s, "a,b \"c\"\nd");
        assert_eq!(s, "plain,\"a,b \"\"c\"\"\nd\"");
    }

    #[test]
    fn jtl_lines_have_every_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jtl");
        let jtl = Jtl::create(&path).unwrap();
        let step = StepReport {
            keyword: "http.request".into(),
            args: serde_json::json!({"url": "http://127.0.0.1:1/x?token=s3cret"}),
            result: serde_json::json!({"status": 503}),
            status: atf_reports::Status::Failed,
            ..StepReport::default()
        };
        let masker = Masker::new();
        masker.add("s3cret");
        jtl.sample(
            "get, x",
            12_345,
            &step,
            Some("expected 200"),
            (10, 20),
            3,
            8,
            &masker,
        );
        jtl.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], JTL_COLUMNS);
        let cols: Vec<&str> = lines[1].split(',').collect();
        // The label has a comma, so it is quoted: 18 pieces for 17 columns.
        assert_eq!(cols.len(), 18, "{}", lines[1]);
        assert!(
            lines[1].contains(",12,\"get, x\",503,failed,vu 3,text,false,expected 200,20,10,8,8,")
        );
        assert!(
            lines[1].ends_with("http://127.0.0.1:1/x?token=***,12,0,0"),
            "{}",
            lines[1]
        );
    }
}
