//! "Did you mean" for names a user typed: the closest of the known names by edit distance, when
//! it is close enough to be the likely intent. Used wherever an unknown name is an error (model
//! families, protocol options, data spec schemes) so a typo costs one read, not a search.

/// The known name closest to `input` (case-insensitive edit distance), if it is within a third
/// of the input's length (at least 1, at most 3 edits); ties go to the first candidate.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let input = input.to_ascii_lowercase();
    let limit = (input.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&input, &c.to_ascii_lowercase()), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// `" (did you mean `X`?)"` for the closest candidate, or an empty string.
pub fn did_you_mean<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(input, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// Levenshtein distance over characters, with adjacent transpositions counted as one edit
/// (the commonest typo).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: two back (for transpositions), one back, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let substitution = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + substitution);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_count_edits_and_transpositions() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("als", "als"), 0);
        assert_eq!(edit_distance("als", ""), 3);
        assert_eq!(edit_distance("movielen", "movielens"), 1);
        assert_eq!(edit_distance("eaes", "ease"), 1);
        assert_eq!(edit_distance("svdd", "svd"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_only_near_misses() {
        let models = ["als", "bpr", "ease", "itemknn", "svd", "svdpp"];
        assert_eq!(closest("eaes", models), Some("ease"));
        assert_eq!(closest("ItemKNN", models), Some("itemknn"));
        assert_eq!(closest("item-knn", models), Some("itemknn"));
        assert_eq!(closest("svdp", models), Some("svd"));
        assert_eq!(closest("transformer", models), None);
        assert_eq!(
            did_you_mean("movielen", ["csv", "movielens"]),
            " (did you mean `movielens`?)"
        );
        assert_eq!(did_you_mean("zzz", ["csv"]), "");
    }

    proptest::proptest! {
        #[test]
        fn distance_is_a_symmetric_bounded_metric(a in "[a-c]{0,8}", b in "[a-c]{0,8}") {
            let d = edit_distance(&a, &b);
            proptest::prop_assert_eq!(d, edit_distance(&b, &a));
            proptest::prop_assert!(d <= a.len().max(b.len()));
            proptest::prop_assert!(d >= a.len().abs_diff(b.len()));
            proptest::prop_assert_eq!(d == 0, a == b);
        }
    }
}
