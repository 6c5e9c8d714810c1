//! Time options (`--settle`, `--seconds`, `--rtt-ms`, …): a finite, non-negative
//! number that a [`std::time::Duration`] can hold, checked when the command line is
//! parsed (clap's `value_parser`). A typo such as `inf`, `NaN` or `-1` is then a usage
//! error naming the option, not a panic in `Duration::from_secs_f64` minutes into a
//! run.

/// The longest time an option accepts, in seconds: a year (no run is that long, and
/// every sum a command makes with it stays far inside a `Duration`).
pub(crate) const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Parses a number of seconds: finite, 0 or more, at most [`MAX_SECONDS`].
pub(crate) fn parse_seconds(text: &str) -> Result<f64, String> {
    parse_within(text, "seconds", MAX_SECONDS)
}

/// Parses a number of milliseconds, with the same limits as [`parse_seconds`].
pub(crate) fn parse_millis(text: &str) -> Result<f64, String> {
    parse_within(text, "milliseconds", MAX_SECONDS * 1000.0)
}

fn parse_within(text: &str, unit: &str, max: f64) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of {unit}"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!(
            "`{text}`: a finite number of {unit}, 0 or more, is expected"
        ));
    }
    if value > max {
        return Err(format!("`{text}`: at most {max} {unit} (a year)"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finite_non_negative_time_is_taken_as_written() {
        assert_eq!(parse_seconds("2.5"), Ok(2.5));
        assert_eq!(parse_seconds("0"), Ok(0.0));
        assert_eq!(parse_seconds(" 30 "), Ok(30.0));
        assert_eq!(parse_millis("20"), Ok(20.0));
        let year = parse_seconds("31536000").expect("a year is accepted");
        assert!(std::time::Duration::try_from_secs_f64(year).is_ok());
    }

    #[test]
    fn what_a_duration_cannot_hold_is_a_usage_error() {
        for text in ["inf", "-inf", "NaN", "-1", "1e300", "31536001", "abc", ""] {
            let error = parse_seconds(text).expect_err(text);
            assert!(error.contains(&format!("`{text}`")), "{error}");
        }
        assert!(parse_millis("inf").is_err());
        assert!(parse_millis("-0.5").is_err());
    }

    #[test]
    fn an_option_parsed_with_it_rejects_infinity_before_the_run() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Options {
            #[arg(long, value_parser = parse_seconds)]
            settle: f64,
        }
        assert_eq!(
            Options::try_parse_from(["x", "--settle", "1.5"])
                .map(|o| o.settle)
                .ok(),
            Some(1.5)
        );
        let error = Options::try_parse_from(["x", "--settle", "inf"]).expect_err("inf");
        assert!(error.to_string().contains("--settle"), "{error}");
    }
}
