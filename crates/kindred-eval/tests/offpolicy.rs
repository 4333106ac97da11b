//! Off-policy estimation against a known truth: a seeded latent-factor click model with position
//! bias, an epsilon-greedy logging policy over one noisy ranking, and a different target policy
//! (less exploration, a better ranking) whose click rate is computed exactly by enumerating
//! every list it can show. Logs go through the serving path: exploration log records with external
//! ids plus attributed clicks, joined by `join_exploration_log`. The IPS and SNIPS 95% intervals
//! must cover that truth in most of many independently seeded logs.

use kindred_core::rng::SplitMix64;
use kindred_eval::offpolicy::{
    estimate_click_rate, join_exploration_log, AttributedClick, LoggedSlot, OffPolicyOptions,
};
use kindred_rank::exploration::{Candidate, ExplorationPolicy};
use kindred_rank::ExplorationLogRecord;

const USERS: usize = 30;
const ITEMS: usize = 6;
const SLOTS: usize = 3;
const POSITION_BIAS: [f64; SLOTS] = [1.0, 0.6, 0.35];

struct World {
    /// True click probability of user u on item i in slot 0.
    click: Vec<[f64; ITEMS]>,
    /// Each user's candidates ranked by the logging model / the target model.
    logging_ranking: Vec<Vec<Candidate>>,
    target_ranking: Vec<Vec<Candidate>>,
}

fn ranked(scores: [f64; ITEMS]) -> Vec<Candidate> {
    let mut candidates: Vec<Candidate> = (0..ITEMS as u32)
        .map(|i| Candidate::new(i, scores[i as usize]))
        .collect();
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    candidates
}

fn world(seed: u64) -> World {
    let mut rng = SplitMix64::new(seed);
    let mut latent = |n: usize| -> Vec<[f64; 3]> {
        (0..n)
            .map(|_| [rng.normal(), rng.normal(), rng.normal()])
            .collect()
    };
    let users = latent(USERS);
    let items = latent(ITEMS);
    let mut noise = SplitMix64::new(seed ^ 0xABCD);
    let mut world = World {
        click: Vec::new(),
        logging_ranking: Vec::new(),
        target_ranking: Vec::new(),
    };
    for u in &users {
        let mut affinity = [0.0; ITEMS];
        let mut click = [0.0; ITEMS];
        for (i, v) in items.iter().enumerate() {
            affinity[i] = u.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
            click[i] = 1.0 / (1.0 + (-(affinity[i] - 1.0)).exp());
        }
        // The logging model is a noisy estimate of the affinity, the target a less noisy one.
        let logging = affinity.map(|a| a + 1.5 * noise.normal());
        let target = affinity.map(|a| a + 0.3 * noise.normal());
        world.click.push(click);
        world.logging_ranking.push(ranked(logging));
        world.target_ranking.push(ranked(target));
    }
    world
}

/// Exact click rate per slot of `policy` on `rankings`, users uniform: enumerates every ordered
/// list of `SLOTS` distinct items with its probability under the policy.
fn true_click_rate(world: &World, policy: &ExplorationPolicy, rankings: &[Vec<Candidate>]) -> f64 {
    fn expand(
        world_click: &[f64; ITEMS],
        policy: &ExplorationPolicy,
        candidates: &[Candidate],
        prefix: &mut Vec<u32>,
    ) -> f64 {
        if prefix.len() == SLOTS {
            let probability: f64 = policy
                .slot_probabilities(candidates, prefix, 0)
                .unwrap()
                .iter()
                .product();
            let clicks: f64 = prefix
                .iter()
                .enumerate()
                .map(|(j, &i)| POSITION_BIAS[j] * world_click[i as usize])
                .sum();
            return probability * clicks;
        }
        let mut total = 0.0;
        for i in 0..ITEMS as u32 {
            if !prefix.contains(&i) {
                prefix.push(i);
                total += expand(world_click, policy, candidates, prefix);
                prefix.pop();
            }
        }
        total
    }
    let clicks_per_request: f64 = (0..USERS)
        .map(|u| expand(&world.click[u], policy, &rankings[u], &mut Vec::new()))
        .sum::<f64>()
        / USERS as f64;
    clicks_per_request / SLOTS as f64
}

/// Serves `requests` seeded requests with the logging policy the way the server does: one
/// exploration log record per shown slot (external ids), clicks drawn from the click model and
/// attributed to the request id; then joins log and clicks into the estimator's input.
fn simulate_log(
    world: &World,
    logging: &ExplorationPolicy,
    target: &ExplorationPolicy,
    requests: usize,
    seed: u64,
) -> Vec<LoggedSlot> {
    let mut rng = SplitMix64::new(seed);
    let mut records = Vec::with_capacity(requests * SLOTS);
    let mut clicks = Vec::new();
    for request in 0..requests {
        let user = rng.below(USERS as u64) as usize;
        let shown = logging
            .present(&world.logging_ranking[user], SLOTS, rng.next_u64())
            .unwrap();
        let request_id = format!("req-{request}");
        for s in &shown {
            let item = format!("item-{}", s.item);
            records.push(ExplorationLogRecord {
                request_id: request_id.clone(),
                user: format!("user-{user}"),
                slot: s.slot,
                item: item.clone(),
                propensity: s.propensity,
                policy: logging.name(),
            });
            let p_click = POSITION_BIAS[s.slot as usize] * world.click[user][s.item as usize];
            if rng.next_f64() < p_click {
                clicks.push(AttributedClick {
                    request_id: request_id.clone(),
                    item,
                });
            }
        }
    }
    join_exploration_log(&records, &clicks, |_, user, shown| {
        let index = |prefix: &str, id: &str| -> u32 { id[prefix.len()..].parse().unwrap() };
        let user = index("user-", user) as usize;
        let items: Vec<u32> = shown.iter().map(|i| index("item-", i)).collect();
        target.slot_probabilities(&world.target_ranking[user], &items, 0)
    })
    .unwrap()
}

#[test]
fn ips_and_snips_intervals_cover_the_true_click_rate() {
    let world = world(2024);
    let logging = ExplorationPolicy::EpsilonGreedy { epsilon: 0.5 };
    let target = ExplorationPolicy::EpsilonGreedy { epsilon: 0.1 };
    let truth = true_click_rate(&world, &target, &world.target_ranking);
    let logging_truth = true_click_rate(&world, &logging, &world.logging_ranking);

    let repeats = 40;
    let (mut ips_covered, mut snips_covered) = (0, 0);
    let (mut ips_sum, mut half_width_sum) = (0.0, 0.0);
    for seed in 0..repeats {
        let log = simulate_log(&world, &logging, &target, 4000, 1000 + seed);
        let e = estimate_click_rate(&log, &OffPolicyOptions::default()).unwrap();
        ips_covered += usize::from(e.ips.lower <= truth && truth <= e.ips.upper);
        snips_covered += usize::from(e.snips.lower <= truth && truth <= e.snips.upper);
        ips_sum += e.ips.estimate;
        half_width_sum += (e.snips.upper - e.snips.lower) / 2.0;
    }
    let half_width = half_width_sum / repeats as f64;
    eprintln!(
        "truth {truth:.4} (logging policy {logging_truth:.4}), mean IPS {:.4}, \
         mean SNIPS half-width {half_width:.4}, coverage IPS {ips_covered}/{repeats}, \
         SNIPS {snips_covered}/{repeats}",
        ips_sum / repeats as f64
    );
    // The test can fail: the target must be clearly better than the logging policy (by more than
    // a typical interval's half-width), so an estimator that ignored the weights would miss it.
    assert!(
        truth - logging_truth > half_width,
        "truth {truth} vs logging {logging_truth}, half-width {half_width}"
    );
    // Nominal 95%: 34 of 40 (85%) leaves room for chance (P(<34) about 1.5% at 95% coverage).
    assert!(ips_covered >= 34, "IPS coverage {ips_covered}/{repeats}");
    assert!(
        snips_covered >= 34,
        "SNIPS coverage {snips_covered}/{repeats}"
    );
}
