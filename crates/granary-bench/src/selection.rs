//! What the scenarios share for the frameworks and tests picked on the command
//! line (`--only`, `--tests`).

/// `items` without repeats, each kept at its first occurrence (so `--tests b,a,b`
/// runs `b` then `a`).
pub(crate) fn dedup<T: PartialEq + Copy>(mut items: Vec<T>) -> Vec<T> {
    let mut seen = Vec::new();
    items.retain(|item| {
        let new = !seen.contains(item);
        seen.push(*item);
        new
    });
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keeps_first_occurrence_order() {
        assert_eq!(dedup(vec![3, 1, 3, 2, 1]), vec![3, 1, 2]);
    }
}
