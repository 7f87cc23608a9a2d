//! Byte counts for people: `25.3 MB`.

/// `bytes` with a decimal unit (B, kB, MB, GB, TB).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn units() {
        assert_eq!(super::human(999), "999 B");
        assert_eq!(super::human(25_300_000), "25.3 MB");
        assert_eq!(super::human(1_000), "1.0 kB");
    }
}
