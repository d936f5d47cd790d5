//! HDR histograms of latencies in microseconds (the `hdrhistogram`
//! crate, 3 significant digits, growing as larger values come) and what is
//! read from them: the aggregate row, percentiles, the distribution curve,
//! and the base64 text of the V2 compressed format that `load.json`
//! carries so that shards merge exactly.

use atf_reports::load::Row;
use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

/// A latency histogram, values in µs.
pub type Histo = Histogram<u64>;

/// The largest latency recorded (1 hour, in µs); longer ones are clamped.
pub const MAX_US: u64 = 3_600_000_000;

/// An empty histogram.
pub fn new() -> Histo {
    // `new` fails only for more than 5 significant digits.
    Histogram::new(3).expect("3 significant digits are valid")
}

/// Records one latency (clamped to 1 µs ..= 1 h).
pub fn record(h: &mut Histo, us: u64) {
    let v = us.clamp(1, MAX_US);
    // `record` grows the histogram as needed (`saturating_record` would not).
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

/// Adds `from` into `into` (histograms of this module always fit).
pub fn add(into: &mut Histo, from: &Histo) {
    if into.add(from).is_err() {
        // Only when `into` cannot grow: add value by value, clamped.
        for v in from.iter_recorded() {
            into.saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }
}

/// `q` (0..=1) in ms; 0 for an empty histogram.
pub fn quantile_ms(h: &Histo, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

/// The histogram as base64 text of the HdrHistogram V2 compressed format.
pub fn encode(h: &Histo) -> String {
    let mut bytes = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut bytes) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => String::new(),
    }
}

/// Reads what [`encode`] wrote (empty text: an empty histogram).
pub fn decode(text: &str) -> Result<Histo, String> {
    if text.is_empty() {
        return Ok(new());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    let mut h: Histo = Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| format!("histogram cannot be read: {e:?}"))?;
    h.auto(true);
    Ok(h)
}

/// The points of the distribution chart: `[percentile, ms]`, denser
/// towards the tail.
pub fn distribution(h: &Histo) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut q = 0.0_f64;
    // 0, 10, 20 … 90, then halving the distance to 100 %: 95, 97.5 …
    while q < 0.9 {
        out.push([q * 100.0, quantile_ms(h, q)]);
        q += 0.1;
    }
    let mut gap = 0.1_f64;
    while gap > 1e-6 {
        let q = 1.0 - gap;
        out.push([q * 100.0, quantile_ms(h, q)]);
        if h.len() as f64 * gap < 1.0 {
            break;
        }
        gap /= 2.0;
    }
    out.push([100.0, h.max() as f64 / 1000.0]);
    out
}

/// What counts into a row besides the histogram.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Samples.
    pub samples: u64,
    /// Of which failed or errored.
    pub errors: u64,
    /// HTTP bytes sent.
    pub sent: u64,
    /// HTTP bytes received.
    pub received: u64,
}

/// The aggregate row of `h` over `secs` measured seconds.
pub fn row(label: &str, h: &Histo, c: Counts, secs: f64) -> Row {
    let per_s = |v: f64| if secs > 0.0 { v / secs } else { 0.0 };
    let empty = h.is_empty();
    Row {
        label: label.to_string(),
        samples: c.samples,
        errors: c.errors,
        error_pct: if c.samples == 0 {
            0.0
        } else {
            c.errors as f64 * 100.0 / c.samples as f64
        },
        mean_ms: if empty { 0.0 } else { h.mean() / 1000.0 },
        median_ms: quantile_ms(h, 0.5),
        p90_ms: quantile_ms(h, 0.9),
        p95_ms: quantile_ms(h, 0.95),
        p99_ms: quantile_ms(h, 0.99),
        min_ms: if empty { 0.0 } else { h.min() as f64 / 1000.0 },
        max_ms: if empty { 0.0 } else { h.max() as f64 / 1000.0 },
        throughput: per_s(c.samples as f64),
        received_kbps: per_s(c.received as f64 / 1024.0),
        sent_kbps: per_s(c.sent as f64 / 1024.0),
        bytes_received: c.received,
        bytes_sent: c.sent,
        distribution: distribution(h),
        histogram: encode(h),
        ..Row::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_exact_to_three_digits() {
        let mut h = new();
        for i in 0..900 {
            record(&mut h, 5_000 + i % 7);
        }
        for _ in 0..100 {
            record(&mut h, 100_000);
        }
        let p50 = quantile_ms(&h, 0.5);
        let p95 = quantile_ms(&h, 0.95);
        assert!((p50 - 5.0).abs() < 0.02, "{p50}");
        assert!((p95 - 100.0).abs() < 0.1, "{p95}");
    }

    #[test]
    fn encoding_round_trips_and_merges_exactly() {
        let mut a = new();
        let mut b = new();
        for v in 1..5_000u64 {
            record(&mut a, v * 3);
            record(&mut b, v * 1_000);
        }
        let mut both = new();
        add(&mut both, &a);
        add(&mut both, &b);
        let mut merged = decode(&encode(&a)).unwrap();
        add(&mut merged, &decode(&encode(&b)).unwrap());
        assert_eq!(merged.len(), both.len());
        for q in [0.1, 0.5, 0.9, 0.99, 0.999] {
            assert_eq!(merged.value_at_quantile(q), both.value_at_quantile(q));
        }
        assert!(decode("not base64!").is_err());
        assert!(decode("").unwrap().is_empty());
    }

    #[test]
    fn rows_read_the_histogram() {
        let mut h = new();
        for v in [1_000, 2_000, 3_000, 4_000] {
            record(&mut h, v);
        }
        let r = row(
            "x",
            &h,
            Counts {
                samples: 4,
                errors: 1,
                sent: 2048,
                received: 4096,
            },
            2.0,
        );
        assert_eq!(r.samples, 4);
        assert_eq!(r.error_pct, 25.0);
        assert!((r.mean_ms - 2.5).abs() < 0.01);
        assert_eq!(r.min_ms, 1.0);
        assert!((r.max_ms - 4.0).abs() < 0.01);
        assert_eq!(r.throughput, 2.0);
        assert_eq!(r.received_kbps, 2.0);
        assert_eq!(r.sent_kbps, 1.0);
        assert_eq!(r.distribution.last().unwrap()[0], 100.0);
        assert!(!r.histogram.is_empty());
    }
}
