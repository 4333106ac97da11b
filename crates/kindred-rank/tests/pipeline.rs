//! The ranking pipeline's acceptance properties (issue 6): every user (known, unknown, zero
//! interactions, everything seen) gets a full list of distinct items that satisfies the hard
//! filters, and the soft ones whenever the catalog allows it, whenever enough items pass the hard
//! filters; never an empty list when any item passes them. Expectations are derived here from the
//! raw catalog, independently of `filters.rs`.

use std::collections::HashSet;
use std::sync::Arc;

use kindred_core::{FeatureTable, FeatureValue, IdMap};
use kindred_rank::config::{DateUnit, FiltersConfig, PinConfig};
use kindred_rank::{
    CatalogData, RankConfig, RankPipeline, RankRequest, RequestFilters, ScoreSource, Source,
    TrainingLog,
};
use proptest::prelude::*;

const GENRES: [&str; 4] = ["g0", "g1", "g2", "g3"];

/// One random item.
#[derive(Debug, Clone)]
struct Item {
    genres: Vec<usize>,
    year: Option<u16>,
    hidden: bool,
    from: Option<i64>,
    until: Option<i64>,
    promoted: bool,
}

fn arb_item() -> impl Strategy<Value = Item> {
    (
        prop::collection::btree_set(0usize..4, 0..3),
        prop::option::of(1950u16..2010),
        prop::bool::weighted(0.15),
        prop::option::weighted(0.2, 0i64..200),
        prop::option::weighted(0.2, 0i64..200),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(genres, year, hidden, from, until, promoted)| Item {
            genres: genres.into_iter().collect(),
            year,
            hidden,
            from,
            until,
            promoted,
        })
}

/// A random rules config over the items' columns.
#[derive(Debug, Clone)]
struct Rules {
    include: Vec<usize>,
    exclude: Vec<usize>,
    date_after: Option<u16>,
    hide: bool,
    availability: bool,
    pins: Vec<(Option<usize>, usize)>,
    segment: bool,
    mmr: f64,
    cap: Option<usize>,
}

fn arb_rules(n_items: usize) -> impl Strategy<Value = Rules> {
    (
        prop::collection::vec(0usize..4, 0..3),
        prop::collection::vec(0usize..4, 0..2),
        prop::option::of(1960u16..2005),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec((prop::option::of(0..n_items), 1usize..8), 0..3),
        any::<bool>(),
        prop_oneof![Just(0.0), 0.0f64..=1.0],
        prop::option::of(1usize..3),
    )
        .prop_map(
            |(include, exclude, date_after, hide, availability, pins, segment, mmr, cap)| Rules {
                include,
                exclude,
                date_after,
                hide,
                availability,
                pins,
                segment,
                mmr,
                cap,
            },
        )
}

/// Which user the request is for.
#[derive(Debug, Clone)]
enum Who {
    Known(u32),
    /// In the user ids but without a training interaction.
    NoInteractions,
    Unknown,
    /// A known user who has seen every item.
    SeenEverything(u32),
}

#[derive(Debug, Clone)]
struct Case {
    items: Vec<Item>,
    log: Vec<(u32, u32, i64)>,
    rules: Rules,
    who: Who,
    primary: Option<Vec<Option<f32>>>,
    secondary: Option<Vec<Option<f32>>>,
    request_categories: Vec<usize>,
    request_exclude: Vec<usize>,
    now: i64,
    n: usize,
}

const N_USERS: u32 = 6;

fn arb_case() -> impl Strategy<Value = Case> {
    (1usize..25).prop_flat_map(|n_items| {
        let scores = || {
            prop::option::of(prop::collection::vec(
                prop::option::weighted(0.8, -3.0f32..3.0),
                n_items,
            ))
        };
        (
            prop::collection::vec(arb_item(), n_items),
            prop::collection::vec((0..N_USERS, 0..n_items as u32, 0i64..1_000_000), 0..60),
            arb_rules(n_items),
            prop_oneof![
                (0..N_USERS).prop_map(Who::Known),
                Just(Who::NoInteractions),
                Just(Who::Unknown),
                (0..N_USERS).prop_map(Who::SeenEverything),
            ],
            scores(),
            scores(),
            prop::collection::vec(0usize..4, 0..2),
            prop::collection::vec(0..n_items, 0..3),
            0i64..200,
            0usize..30,
        )
            .prop_map(
                |(items, log, rules, who, primary, secondary, cats, excl, now, n)| Case {
                    items,
                    log,
                    rules,
                    who,
                    primary,
                    secondary,
                    request_categories: cats,
                    request_exclude: excl,
                    now,
                    n,
                },
            )
    })
}

fn item_id(i: usize) -> String {
    format!("i{i}")
}

fn build(case: &Case) -> (RankPipeline, Arc<IdMap>, IdMap) {
    let mut item_ids = IdMap::new();
    let mut features = FeatureTable::new();
    // An entity outside the catalog carries every genre, so every genre is a known category.
    let all = GENRES.iter().map(|g| g.to_string()).collect();
    features
        .set("not-in-catalog", "genres", FeatureValue::Categories(all))
        .unwrap();
    for (i, it) in case.items.iter().enumerate() {
        let id = item_id(i);
        item_ids.intern(&id);
        let genres = it.genres.iter().map(|&g| GENRES[g].to_owned()).collect();
        let num = |v: Option<i64>| v.map_or(f32::NAN, |v| v as f32);
        let set = |t: &mut FeatureTable, c: &str, v| t.set(&id, c, v).unwrap();
        set(&mut features, "genres", FeatureValue::Categories(genres));
        set(
            &mut features,
            "year",
            FeatureValue::Number(it.year.map_or(f32::NAN, f32::from)),
        );
        set(
            &mut features,
            "hidden",
            FeatureValue::Number(it.hidden as u8 as f32),
        );
        set(&mut features, "from", FeatureValue::Number(num(it.from)));
        set(&mut features, "until", FeatureValue::Number(num(it.until)));
        set(
            &mut features,
            "promo",
            FeatureValue::Number(it.promoted as u8 as f32),
        );
    }
    // Users u0..u5 plus one without interactions.
    let mut user_ids = IdMap::new();
    let mut user_features = FeatureTable::new();
    for u in 0..=N_USERS {
        let id = format!("u{u}");
        user_ids.intern(&id);
        let job = if u % 2 == 0 { "writer" } else { "artist" };
        user_features
            .set(
                &id,
                "occupation",
                FeatureValue::Categories(vec![job.into()]),
            )
            .unwrap();
    }
    let r = &case.rules;
    let names = |g: &[usize]| g.iter().map(|&g| GENRES[g].to_owned()).collect();
    let config = RankConfig {
        category_column: Some("genres".into()),
        filters: FiltersConfig {
            include_categories: names(&r.include),
            exclude_categories: names(&r.exclude),
            hide_column: r.hide.then(|| "hidden".into()),
            available_from_column: r.availability.then(|| "from".into()),
            available_until_column: r.availability.then(|| "until".into()),
            date_column: Some("year".into()),
            date_unit: DateUnit::Year,
            date_after: r.date_after.map(f64::from),
            ..FiltersConfig::default()
        },
        pins: pin_configs(r),
        fallback: kindred_rank::config::FallbackConfig {
            segment_column: r.segment.then(|| "occupation".into()),
            ..Default::default()
        },
        diversity: kindred_rank::config::DiversityConfig {
            mmr_lambda: r.mmr,
            max_per_category: r.cap,
            ..Default::default()
        },
        candidates: 5,
        ..RankConfig::default()
    };
    let users: Vec<u32> = case.log.iter().map(|r| r.0).collect();
    let items: Vec<u32> = case.log.iter().map(|r| r.1).collect();
    let times: Vec<i64> = case.log.iter().map(|r| r.2).collect();
    let item_ids = Arc::new(item_ids);
    let pipeline = RankPipeline::new(
        config,
        CatalogData {
            item_ids: &item_ids,
            item_features: Some(&features),
            user_ids: &user_ids,
            user_features: Some(&user_features),
            train: TrainingLog {
                users: &users,
                items: &items,
                timestamps: &times,
            },
        },
    )
    .unwrap();
    (pipeline, item_ids, user_ids)
}

/// Distinct positions: a later pin at a taken position is dropped.
fn pin_configs(r: &Rules) -> Vec<PinConfig> {
    let mut used = HashSet::new();
    r.pins
        .iter()
        .filter(|(_, p)| used.insert(*p))
        .map(|(item, position)| PinConfig {
            item: item.map(item_id),
            column: item.is_none().then(|| "promo".into()),
            position: *position,
        })
        .collect()
}

fn scores(v: &Option<Vec<Option<f32>>>) -> Option<Vec<f32>> {
    v.as_ref()
        .map(|s| s.iter().map(|x| x.unwrap_or(f32::NAN)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn every_user_gets_a_full_distinct_list_within_the_filters(case in arb_case()) {
        let (pipeline, _, _) = build(&case);
        let n_items = case.items.len();
        let seen: Vec<u32> = match case.who {
            Who::Known(u) => case.log.iter().filter(|r| r.0 == u).map(|r| r.1).collect(),
            Who::SeenEverything(_) => (0..n_items as u32).collect(),
            Who::NoInteractions | Who::Unknown => Vec::new(),
        };
        let user = match case.who {
            Who::Known(u) | Who::SeenEverything(u) => Some(u),
            Who::NoInteractions => Some(N_USERS),
            Who::Unknown => None,
        };
        let filters = RequestFilters {
            categories: case.request_categories.iter().map(|&g| GENRES[g].to_owned()).collect(),
            exclude: case.request_exclude.iter().map(|&i| item_id(i)).collect(),
        };
        let primary = scores(&case.primary);
        let secondary = scores(&case.secondary);
        let request = RankRequest {
            user,
            seen: &seen,
            primary: primary.as_deref().map(|s| ScoreSource { name: "m", scores: s }),
            secondary: secondary.as_deref().map(|s| ScoreSource { name: "content", scores: s }),
            filters: &filters,
            ..RankRequest::new(case.now)
        };
        let out = pipeline.rank(&request, case.n).unwrap();

        // Hard filters, from the raw catalog.
        let r = &case.rules;
        let hard = |i: usize| {
            let it = &case.items[i];
            let hidden = r.hide && it.hidden;
            let unavailable = r.availability
                && (it.from.is_some_and(|f| case.now < f) || it.until.is_some_and(|u| case.now > u));
            !hidden
                && !unavailable
                && !seen.contains(&(i as u32))
                && !case.request_exclude.contains(&i)
        };
        // Soft level: 3 breaks the excludes, 2 the includes (config or request), 1 the dates.
        let level = |i: usize| {
            let g = &case.items[i].genres;
            let misses = |set: &[usize]| !set.is_empty() && !g.iter().any(|x| set.contains(x));
            if g.iter().any(|x| r.exclude.contains(x)) {
                3
            } else if misses(&r.include) || misses(&case.request_categories) {
                2
            } else if r.date_after.is_some_and(|a| case.items[i].year.is_none_or(|y| y < a)) {
                1
            } else {
                0
            }
        };
        let passing = (0..n_items).filter(|&i| hard(i)).count();
        prop_assert_eq!(out.len(), case.n.min(passing), "{:?}", out);
        let mut distinct = HashSet::new();
        for r in &out {
            prop_assert!(distinct.insert(r.item), "duplicate {}", r.item);
            prop_assert!(hard(r.item as usize), "item {} fails a hard filter", r.item);
        }
        // Soft filters hold unless the catalog cannot fill the list otherwise: for every level,
        // the unpinned items within it are as many as the list and the catalog allow.
        let pinned: HashSet<u32> = out
            .iter()
            .filter(|r| r.source.source == Source::Pinned)
            .map(|r| r.item)
            .collect();
        let unpinned: Vec<&kindred_rank::RankedItem> =
            out.iter().filter(|r| !pinned.contains(&r.item)).collect();
        for l in 0..=3u8 {
            let listed = unpinned.iter().filter(|r| level(r.item as usize) <= l).count();
            let available = (0..n_items)
                .filter(|&i| hard(i) && level(i) <= l && !pinned.contains(&(i as u32)))
                .count();
            prop_assert_eq!(listed, unpinned.len().min(available), "level {}: {:?}", l, out);
        }
        for r in &unpinned {
            prop_assert_eq!(
                r.source.relaxed.map(|x| x as u8).unwrap_or(0),
                level(r.item as usize),
                "{}", r.source
            );
        }
        // With pins by id only, a pinned item sits at its position (or earlier when the list is
        // shorter than the position); an item whose earlier pin took it is not pinned twice.
        let mut pins = pipeline.config().pins.clone();
        pins.sort_by_key(|p| p.position);
        if pins.iter().all(|p| p.item.is_some()) {
            let mut placed = HashSet::new();
            for pin in pins.iter().filter(|p| p.position <= case.n) {
                let Some(at) = out.iter().position(|r| {
                    pin.item.as_deref() == Some(&item_id(r.item as usize)) && pinned.contains(&r.item)
                }) else {
                    continue;
                };
                if !placed.insert(at) {
                    continue;
                }
                prop_assert!(at < pin.position, "{:?}", out);
                if out.len() == case.n {
                    prop_assert_eq!(at + 1, pin.position, "{:?}", out);
                }
            }
        }
    }
}
