//! A slot-per-row exploration log grouped into requests: what the library's log join
//! ([`super::join_exploration_log`]) and the server's replay of its own impressions both read,
//! so both accept and refuse the same logs with the same words.

use std::collections::HashMap;

/// `rows` grouped by request: requests in the order of their first row, each request's rows in
/// slot order. Unchecked: see [`check_slots`].
pub fn by_request<R>(
    rows: impl IntoIterator<Item = R>,
    request_id: impl Fn(&R) -> &str,
    slot: impl Fn(&R) -> u32,
) -> Vec<(String, Vec<R>)> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<R>> = HashMap::new();
    for row in rows {
        match groups.get_mut(request_id(&row)) {
            Some(slots) => slots.push(row),
            None => {
                let id = request_id(&row).to_owned();
                order.push(id.clone());
                groups.insert(id, vec![row]);
            }
        }
    }
    order
        .into_iter()
        .map(|id| {
            let mut slots = groups.remove(&id).unwrap_or_default();
            slots.sort_by_key(&slot);
            (id, slots)
        })
        .collect()
}

/// Checks that one request's rows, in slot order, are slots 0, 1, ..., L-1 of one user; the
/// error names the request and what is wrong.
pub fn check_slots<R>(
    request_id: &str,
    slots: &[R],
    slot: impl Fn(&R) -> u32,
    user: impl Fn(&R) -> &str,
) -> Result<(), String> {
    let Some(first) = slots.first() else {
        return Ok(());
    };
    for (expected, row) in slots.iter().enumerate() {
        if slot(row) as usize != expected {
            return Err(format!(
                "request `{request_id}`: slots must be 0, 1, 2, ... without gaps or repeats, \
                 found slot {} where {expected} was expected",
                slot(row)
            ));
        }
        if user(row) != user(first) {
            return Err(format!(
                "request `{request_id}`: slots belong to different users (`{}` and `{}`)",
                user(first),
                user(row)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Row = (&'static str, &'static str, u32);

    fn grouped(rows: &[Row]) -> Vec<(String, Vec<Row>)> {
        by_request(rows.iter().copied(), |r| r.0, |r| r.2)
    }

    #[test]
    fn groups_in_first_seen_order_with_slots_sorted() {
        let rows = [("b", "u", 1), ("a", "v", 0), ("b", "u", 0)];
        let groups = grouped(&rows);
        assert_eq!(groups[0].0, "b");
        assert_eq!(groups[0].1, vec![("b", "u", 0), ("b", "u", 1)]);
        assert_eq!(groups[1].0, "a");
    }

    #[test]
    fn gaps_repeats_and_mixed_users_are_refused() {
        let check = |rows: &[Row]| {
            let (id, slots) = grouped(rows).remove(0);
            check_slots(&id, &slots, |r| r.2, |r| r.1)
        };
        assert!(check(&[("r", "u", 0), ("r", "u", 1)]).is_ok());
        let gap = check(&[("r", "u", 0), ("r", "u", 2)]).unwrap_err();
        assert!(gap.contains("found slot 2 where 1 was expected"), "{gap}");
        let repeat = check(&[("r", "u", 0), ("r", "u", 0)]).unwrap_err();
        assert!(repeat.contains("found slot 0 where 1"), "{repeat}");
        let users = check(&[("r", "u", 0), ("r", "w", 1)]).unwrap_err();
        assert!(users.contains("different users (`u` and `w`)"), "{users}");
    }
}
