//! Kubernetes resource quantities (`500m`, `2`, `4Gi`, `1.5G`, `1e3`) as numbers, for
//! comparing a run's resources with a policy's ceilings.

/// The value of a quantity in base units (cores, bytes), or `None` when it is not one.
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E').unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    if number.is_empty() {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some(value * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_binary_and_milli() {
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse("4Gi"), Some(4.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse("1.5G"), Some(1.5e9));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("128Mi"), Some(128.0 * 1024.0 * 1024.0));
        assert_eq!(parse("lots"), None);
        assert_eq!(parse("Gi"), None);
        assert_eq!(parse("-1"), None);
    }
}
