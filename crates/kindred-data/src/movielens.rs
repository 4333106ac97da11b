//! MovieLens 100K and 1M, read from the original GroupLens files in a directory.
//!
//! The version is detected from the files: `u.data` (100K, tab-separated) or `ratings.dat` (1M,
//! `::`-separated). Ratings become [`EventType::Rating`] events with weight 1 and their unix
//! timestamp; user and item ids are the MovieLens numbers as strings. Only rated movies enter the
//! log's item map: movies known only from metadata live in the item feature table alone, so the
//! catalog is what the ratings cover (as the evaluation protocols require).
//!
//! Side files, when present, become feature tables: items get `genres` (categorical), `year`
//! (numeric) and `title` (text); users get `age` (numeric), `gender`, `occupation` and
//! `age_group` (categorical, the 1M age codes `1`, `18`, `25`, `35`, `45`, `50`, `56`; 100K ages
//! are bucketed into the same codes so both versions agree). Metadata is ISO-8859-1.
//!
//! The rating files are parsed by hand from one in-memory buffer: ML-1M (a million rows, with its
//! metadata) loads in about 0.09 s in release, which matters because every CLI command starts by
//! loading data.

use std::path::Path;
use std::sync::Arc;

use kindred_core::{
    Dataset, Error, EventType, FeatureTable, FeatureValue, Interactions, InteractionsBuilder,
    Result, TimestampRange,
};

use crate::import::{
    decode_latin1, in_range, parse_timestamp, read_file, ImportOptions, ImportReport, Problem,
    RowError, RowPolicy,
};

/// Which MovieLens release a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovieLensVersion {
    Ml100k,
    Ml1m,
}

impl MovieLensVersion {
    /// The dataset name used for this release.
    pub fn name(self) -> &'static str {
        match self {
            MovieLensVersion::Ml100k => "movielens-100k",
            MovieLensVersion::Ml1m => "movielens-1m",
        }
    }
}

/// Detects the release in `dir` from its rating file.
pub fn detect(dir: &Path) -> Result<MovieLensVersion> {
    if dir.join("ratings.dat").is_file() {
        Ok(MovieLensVersion::Ml1m)
    } else if dir.join("u.data").is_file() {
        Ok(MovieLensVersion::Ml100k)
    } else if !dir.is_dir() {
        Err(Error::BadFile {
            file: dir.to_path_buf(),
            message: "not a directory (expected a MovieLens 100K or 1M directory)".into(),
        })
    } else {
        Err(Error::BadFile {
            file: dir.to_path_buf(),
            message: "no MovieLens rating file: expected u.data (100K) or ratings.dat (1M)".into(),
        })
    }
}

/// Loads MovieLens 100K or 1M from `dir` with whatever metadata files are present.
pub fn load_movielens(dir: &Path, opts: &ImportOptions) -> Result<(Dataset, ImportReport)> {
    let version = detect(dir)?;
    let names = version.file_names();
    let ratings = read_file(&dir.join(names.ratings))?;
    let optional = |name: Option<&str>| -> Result<Option<Vec<u8>>> {
        match name.map(|n| dir.join(n)) {
            Some(path) if path.is_file() => read_file(&path).map(Some),
            _ => Ok(None),
        }
    };
    let items = optional(Some(names.items))?;
    let users = optional(Some(names.users))?;
    let genres = optional(names.genres)?;
    read_movielens(
        &MovieLensFiles {
            version,
            dir,
            ratings: &ratings,
            items: items.as_deref(),
            users: users.as_deref(),
            genres: genres.as_deref(),
        },
        opts,
    )
}

/// The file names of one release.
struct FileNames {
    ratings: &'static str,
    items: &'static str,
    users: &'static str,
    /// The genre list (100K only).
    genres: Option<&'static str>,
}

impl MovieLensVersion {
    fn file_names(self) -> FileNames {
        match self {
            MovieLensVersion::Ml100k => FileNames {
                ratings: "u.data",
                items: "u.item",
                users: "u.user",
                genres: Some("u.genre"),
            },
            MovieLensVersion::Ml1m => FileNames {
                ratings: "ratings.dat",
                items: "movies.dat",
                users: "users.dat",
                genres: None,
            },
        }
    }
}

/// The files of one MovieLens directory, already in memory; `None` is a missing side file.
#[derive(Debug, Clone, Copy)]
pub struct MovieLensFiles<'a> {
    pub version: MovieLensVersion,
    /// The directory the files came from; errors name `dir/<file>`.
    pub dir: &'a Path,
    /// `u.data` (100K) or `ratings.dat` (1M).
    pub ratings: &'a [u8],
    /// `u.item` or `movies.dat`.
    pub items: Option<&'a [u8]>,
    /// `u.user` or `users.dat`.
    pub users: Option<&'a [u8]>,
    /// `u.genre` (100K only; ignored for 1M).
    pub genres: Option<&'a [u8]>,
}

/// Reads MovieLens 100K or 1M from files in memory (what [`load_movielens`] does after reading
/// the directory).
pub fn read_movielens(
    files: &MovieLensFiles<'_>,
    opts: &ImportOptions,
) -> Result<(Dataset, ImportReport)> {
    let version = files.version;
    let names = version.file_names();
    let separator = match version {
        MovieLensVersion::Ml100k => &b"\t"[..],
        MovieLensVersion::Ml1m => &b"::"[..],
    };
    let ratings_path = files.dir.join(names.ratings);
    let mut policy = RowPolicy::new(&ratings_path, opts);
    let interactions = read_ratings(files.ratings, &ratings_path, separator, &mut policy)?;
    let mut dataset = Dataset::new(version.name(), interactions);
    let items_path = files.dir.join(names.items);
    let users_path = files.dir.join(names.users);
    let (items, users) = match version {
        MovieLensVersion::Ml100k => {
            let genres = genres_100k(files.genres);
            (
                read_feature_file(&items_path, files.items, &mut policy, |line, table| {
                    parse_100k_item(line, &genres, table)
                })?,
                read_feature_file(&users_path, files.users, &mut policy, parse_100k_user)?,
            )
        }
        MovieLensVersion::Ml1m => (
            read_feature_file(&items_path, files.items, &mut policy, parse_1m_movie)?,
            read_feature_file(&users_path, files.users, &mut policy, parse_1m_user)?,
        ),
    };
    dataset.item_features = items.map(Arc::new);
    dataset.user_features = users.map(Arc::new);
    Ok((dataset, policy.finish()))
}

/// Reads an optional metadata file (`None` when absent) into a feature table, one `parse_line`
/// call per line; bad lines go through the row policy (error or counted skip).
fn read_feature_file(
    path: &Path,
    bytes: Option<&[u8]>,
    policy: &mut RowPolicy<'_>,
    mut parse_line: impl FnMut(&str, &mut FeatureTable) -> Result<(), RowError>,
) -> Result<Option<FeatureTable>> {
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    let mut table = FeatureTable::new();
    for (line_no, line) in &metadata_lines(bytes) {
        if let Err(error) = parse_line(line, &mut table) {
            policy.reject_feature_row(path, *line_no, error)?;
        }
    }
    Ok(Some(table))
}

/// Rating file fields, in order, as named in errors.
const RATING_FIELDS: [&str; 4] = ["user", "item", "rating", "timestamp"];

fn read_ratings(
    bytes: &[u8],
    path: &Path,
    separator: &[u8],
    policy: &mut RowPolicy<'_>,
) -> Result<Interactions> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::BadFile {
            file: path.to_path_buf(),
            message: "empty file: no ratings".into(),
        });
    }
    // Rows are 20-25 bytes in both releases; over-reserving a little beats regrowing.
    let mut builder = InteractionsBuilder::with_capacity(bytes.len() / 20 + 1);
    let mut users = IdCache::default();
    let mut items = IdCache::default();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        policy.read();
        let range = policy.timestamps;
        match parse_rating_line(
            line,
            separator,
            &range,
            &mut builder,
            &mut users,
            &mut items,
        ) {
            Ok(()) => policy.imported(),
            Err(error) => policy.reject(index as u64 + 1, error)?,
        }
    }
    Ok(builder.build())
}

fn parse_rating_line(
    line: &[u8],
    separator: &[u8],
    range: &TimestampRange,
    builder: &mut InteractionsBuilder,
    users: &mut IdCache,
    items: &mut IdCache,
) -> Result<(), RowError> {
    let mut fields: [&[u8]; 4] = [&[]; 4];
    let count = split_fields(line, separator, &mut fields);
    if count != 4 {
        let field = RATING_FIELDS.get(count).copied().unwrap_or("row");
        return Err(RowError::new(
            Problem::RaggedRow,
            field,
            format!(
                "ragged row: {count} fields where 4 are expected (user, item, rating, timestamp)"
            ),
        ));
    }
    let rating = parse_rating(fields[2])?;
    let timestamp = in_range(range, "timestamp", parse_unix_seconds(fields[3])?)?;
    // Both ids are checked before either is interned, so a rejected row leaves no trace.
    let user_key = users.lookup(fields[0], "user")?;
    let item_key = items.lookup(fields[1], "item")?;
    let user = users.resolve(user_key, fields[0], |id| builder.intern_user(id));
    let item = items.resolve(item_key, fields[1], |id| builder.intern_item(id));
    builder.push_indexed(
        user,
        item,
        Some(rating),
        1.0,
        EventType::Rating,
        Some(timestamp),
    );
    Ok(())
}

/// Splits `line` on `separator` into `out`, returning how many fields there are (which may
/// exceed `out.len()`; the extra ones are not stored).
fn split_fields<'a, const N: usize>(
    line: &'a [u8],
    separator: &[u8],
    out: &mut [&'a [u8]; N],
) -> usize {
    let first = separator[0];
    let mut count = 0;
    let mut start = 0;
    let mut i = 0;
    while i < line.len() {
        if line[i] == first && line[i..].starts_with(separator) {
            if count < N {
                out[count] = &line[start..i];
            }
            count += 1;
            i += separator.len();
            start = i;
        } else {
            i += 1;
        }
    }
    if count < N {
        out[count] = &line[start..];
    }
    count + 1
}

/// Digits only, no sign, at most 18 of them (so the value fits an i64 without overflow checks).
fn parse_digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 18 {
        return None;
    }
    let mut value = 0u64;
    for &b in bytes {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    Some(value)
}

fn parse_rating(field: &[u8]) -> Result<f32, RowError> {
    if let Some(value) = parse_digits(field) {
        return Ok(value as f32);
    }
    let text = std::str::from_utf8(field)
        .map_err(|_| RowError::new(Problem::InvalidUtf8, "rating", "invalid UTF-8"))?;
    match text.trim().parse::<f32>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(RowError::new(
            Problem::UnparsableNumber,
            "rating",
            format!("unparsable number `{text}`"),
        )),
    }
}

fn parse_unix_seconds(field: &[u8]) -> Result<i64, RowError> {
    if let Some(value) = parse_digits(field) {
        return Ok(value as i64);
    }
    let text = std::str::from_utf8(field)
        .map_err(|_| RowError::new(Problem::InvalidUtf8, "timestamp", "invalid UTF-8"))?;
    parse_timestamp(text).ok_or_else(|| {
        RowError::new(
            Problem::UnparsableNumber,
            "timestamp",
            format!("unparsable number `{text}`"),
        )
    })
}

/// Numeric ids below this bound are cached in a flat table instead of being hashed.
const DENSE_ID_LIMIT: u64 = 1 << 22;

/// Remembers the dense index of small canonical numeric ids, which is what MovieLens ids are, so
/// that a million rows cost a few thousand hash lookups instead of two million.
#[derive(Default)]
struct IdCache {
    /// `numeric id -> dense index + 1`, 0 when not yet seen.
    dense: Vec<u32>,
}

/// What [`IdCache::lookup`] found out about an id field.
enum IdKey<'a> {
    /// A small canonical number: cacheable.
    Number(usize),
    /// Anything else: interned by its text.
    Text(&'a str),
}

impl IdCache {
    fn lookup<'a>(&self, field: &'a [u8], name: &str) -> Result<IdKey<'a>, RowError> {
        // Leading zeros would make `007` and `7` share a slot although they are different ids.
        let canonical = field.len() == 1 || field.first() != Some(&b'0');
        if canonical {
            if let Some(n) = parse_digits(field).filter(|&n| n < DENSE_ID_LIMIT) {
                return Ok(IdKey::Number(n as usize));
            }
        }
        let text = std::str::from_utf8(field).map_err(|e| {
            RowError::new(Problem::InvalidUtf8, name, format!("invalid UTF-8 ({e})"))
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(RowError::new(Problem::EmptyId, name, "empty id"));
        }
        Ok(IdKey::Text(text))
    }

    fn resolve(&mut self, key: IdKey<'_>, field: &[u8], intern: impl FnOnce(&str) -> u32) -> u32 {
        match key {
            IdKey::Text(text) => intern(text),
            IdKey::Number(n) => {
                if let Some(&cached) = self.dense.get(n).filter(|&&c| c != 0) {
                    return cached - 1;
                }
                // A canonical number is ASCII digits, so this cannot fail.
                let index = intern(std::str::from_utf8(field).unwrap_or_default());
                if self.dense.len() <= n {
                    self.dense.resize(n + 1, 0);
                }
                self.dense[n] = index + 1;
                index
            }
        }
    }
}

/// Lines of a latin-1 side file with their 1-based numbers (blank lines left out).
fn metadata_lines(bytes: &[u8]) -> Vec<(u64, String)> {
    let text = decode_latin1(bytes);
    text.split('\n')
        .enumerate()
        .map(|(i, line)| {
            (
                i as u64 + 1,
                line.strip_suffix('\r').unwrap_or(line).to_owned(),
            )
        })
        .filter(|(_, line)| !line.is_empty())
        .collect()
}

/// Sets a feature, reporting a clash of kinds as a parse error of the metadata row.
fn set_feature(
    table: &mut FeatureTable,
    id: &str,
    column: &str,
    value: FeatureValue,
) -> Result<(), RowError> {
    table
        .set(id, column, value)
        .map_err(|e| RowError::new(Problem::WrongType, column, e.to_string()))
}

/// The 19 genres of ML-100K in flag order, used when u.genre is missing or malformed.
const GENRES_100K: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// The genre names of `u.genre`, or the built-in list when it is missing or malformed.
fn genres_100k(bytes: Option<&[u8]>) -> Vec<String> {
    let fallback = || GENRES_100K.iter().map(|g| (*g).to_owned()).collect();
    let Some(lines) = bytes.map(metadata_lines) else {
        return fallback();
    };
    let mut genres = vec![String::new(); GENRES_100K.len()];
    for (_, line) in &lines {
        let Some((name, index)) = line.rsplit_once('|') else {
            return fallback();
        };
        match index.trim().parse::<usize>() {
            Ok(i) if i < genres.len() => genres[i] = name.to_owned(),
            _ => return fallback(),
        }
    }
    if genres.iter().any(String::is_empty) {
        return fallback();
    }
    genres
}

fn parse_100k_item(
    line: &str,
    genres: &[String],
    table: &mut FeatureTable,
) -> Result<(), RowError> {
    let fields: Vec<&str> = line.split('|').collect();
    let expected = 5 + genres.len();
    if fields.len() != expected {
        return Err(RowError::new(
            Problem::RaggedRow,
            "row",
            format!(
                "ragged row: {} fields where {expected} are expected",
                fields.len()
            ),
        ));
    }
    let id = fields[0].trim();
    if id.is_empty() {
        return Err(RowError::new(Problem::EmptyId, "movie id", "empty id"));
    }
    let mut row_genres = Vec::new();
    for (flag, name) in fields[5..].iter().zip(genres) {
        match flag.trim() {
            "1" => row_genres.push(name.clone()),
            "0" | "" => {}
            other => {
                return Err(RowError::new(
                    Problem::UnparsableNumber,
                    name.as_str(),
                    format!("genre flag `{other}` is neither 0 nor 1"),
                ))
            }
        }
    }
    let release_date = fields[2].trim();
    let year = if release_date.is_empty() {
        None
    } else {
        // `01-Jan-1995`: the year is what follows the last dash.
        let year_text = release_date.rsplit('-').next().unwrap_or_default();
        Some(year_text.parse::<u16>().map_err(|_| {
            RowError::new(
                Problem::UnparsableNumber,
                "release date",
                format!("no year in release date `{release_date}`"),
            )
        })?)
    };
    table.entity(id);
    set_feature(table, id, "genres", FeatureValue::Categories(row_genres))?;
    if let Some(year) = year {
        set_feature(table, id, "year", FeatureValue::Number(f32::from(year)))?;
    }
    set_feature(
        table,
        id,
        "title",
        FeatureValue::Text(fields[1].trim().to_owned()),
    )?;
    Ok(())
}

/// The ML-1M age code of an age in years, so that both releases share `age_group` values.
fn age_group(age: u32) -> &'static str {
    match age {
        0..=17 => "1",
        18..=24 => "18",
        25..=34 => "25",
        35..=44 => "35",
        45..=49 => "45",
        50..=55 => "50",
        _ => "56",
    }
}

fn parse_100k_user(line: &str, table: &mut FeatureTable) -> Result<(), RowError> {
    let fields: Vec<&str> = line.split('|').map(str::trim).collect();
    let [id, age, gender, occupation, _zip] = fields[..] else {
        return Err(RowError::new(
            Problem::RaggedRow,
            "row",
            format!(
                "ragged row: {} fields where 5 are expected (id|age|gender|occupation|zip)",
                fields.len()
            ),
        ));
    };
    if id.is_empty() {
        return Err(RowError::new(Problem::EmptyId, "user id", "empty id"));
    }
    let age: u32 = age.parse().map_err(|_| {
        RowError::new(
            Problem::UnparsableNumber,
            "age",
            format!("unparsable number `{age}`"),
        )
    })?;
    set_feature(table, id, "age", FeatureValue::Number(age as f32))?;
    set_feature(
        table,
        id,
        "gender",
        FeatureValue::Categories(vec![gender.to_owned()]),
    )?;
    set_feature(
        table,
        id,
        "occupation",
        FeatureValue::Categories(vec![occupation.to_owned()]),
    )?;
    set_feature(
        table,
        id,
        "age_group",
        FeatureValue::Categories(vec![age_group(age).to_owned()]),
    )?;
    Ok(())
}

fn parse_1m_movie(line: &str, table: &mut FeatureTable) -> Result<(), RowError> {
    let fields: Vec<&str> = line.split("::").collect();
    let [id, title, genres] = fields[..] else {
        return Err(RowError::new(
            Problem::RaggedRow,
            "row",
            format!(
                "ragged row: {} fields where 3 are expected (MovieID::Title::Genres)",
                fields.len()
            ),
        ));
    };
    let id = id.trim();
    if id.is_empty() {
        return Err(RowError::new(Problem::EmptyId, "MovieID", "empty id"));
    }
    let title = title.trim();
    let genres: Vec<String> = genres
        .split('|')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    table.entity(id);
    set_feature(table, id, "genres", FeatureValue::Categories(genres))?;
    if let Some(year) = year_in_title(title) {
        set_feature(table, id, "year", FeatureValue::Number(f32::from(year)))?;
    }
    set_feature(table, id, "title", FeatureValue::Text(title.to_owned()))?;
    Ok(())
}

/// The year of a title ending in `(YYYY)`.
fn year_in_title(title: &str) -> Option<u16> {
    let inner = title.trim_end().strip_suffix(')')?;
    let split = inner.len().checked_sub(4)?;
    // `get`, not indexing: a latin-1 title may have a two-byte character across the split.
    let (head, year) = (inner.get(..split)?, inner.get(split..)?);
    head.ends_with('(').then_some(())?;
    year.parse().ok()
}

/// ML-1M occupation codes, from the release's README.
const OCCUPATIONS_1M: [&str; 21] = [
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
];

fn parse_1m_user(line: &str, table: &mut FeatureTable) -> Result<(), RowError> {
    let fields: Vec<&str> = line.split("::").map(str::trim).collect();
    let [id, gender, age, occupation, _zip] = fields[..] else {
        return Err(RowError::new(
            Problem::RaggedRow,
            "row",
            format!(
                "ragged row: {} fields where 5 are expected (UserID::Gender::Age::Occupation::Zip)",
                fields.len()
            ),
        ));
    };
    if id.is_empty() {
        return Err(RowError::new(Problem::EmptyId, "UserID", "empty id"));
    }
    let age_code: u32 = age.parse().map_err(|_| {
        RowError::new(
            Problem::UnparsableNumber,
            "Age",
            format!("unparsable number `{age}`"),
        )
    })?;
    let occupation_code: usize = occupation.parse().map_err(|_| {
        RowError::new(
            Problem::UnparsableNumber,
            "Occupation",
            format!("unparsable number `{occupation}`"),
        )
    })?;
    let occupation = OCCUPATIONS_1M
        .get(occupation_code)
        .map_or_else(|| occupation.to_owned(), |name| (*name).to_owned());
    set_feature(
        table,
        id,
        "gender",
        FeatureValue::Categories(vec![gender.to_owned()]),
    )?;
    set_feature(table, id, "age", FeatureValue::Number(age_code as f32))?;
    set_feature(
        table,
        id,
        "age_group",
        FeatureValue::Categories(vec![age.to_owned()]),
    )?;
    set_feature(
        table,
        id,
        "occupation",
        FeatureValue::Categories(vec![occupation]),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_support::temp_dir;
    use kindred_core::features::ColumnData;
    use kindred_testkit::data_root as real_data_dir;

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    fn text_of(table: &FeatureTable, column: &str, id: &str) -> String {
        let row = table.ids().get(id).unwrap() as usize;
        match &table.column(column).unwrap().data {
            ColumnData::Text(values) => values[row].clone(),
            other => panic!("{column} is {other:?}"),
        }
    }

    fn number_of(table: &FeatureTable, column: &str, id: &str) -> f32 {
        let row = table.ids().get(id).unwrap() as usize;
        match &table.column(column).unwrap().data {
            ColumnData::Numeric(values) => values[row],
            other => panic!("{column} is {other:?}"),
        }
    }

    fn categories_of(table: &FeatureTable, column: &str, id: &str) -> Vec<String> {
        let row = table.ids().get(id).unwrap() as usize;
        match &table.column(column).unwrap().data {
            ColumnData::Categorical { vocab, values } => values[row]
                .iter()
                .map(|&v| vocab.external(v).to_owned())
                .collect(),
            other => panic!("{column} is {other:?}"),
        }
    }

    fn vocab_len(table: &FeatureTable, column: &str) -> usize {
        match &table.column(column).unwrap().data {
            ColumnData::Categorical { vocab, .. } => vocab.len(),
            other => panic!("{column} is {other:?}"),
        }
    }

    #[test]
    fn small_100k_with_latin1_metadata() {
        let dir = temp_dir("ml100k");
        write(
            &dir,
            "u.data",
            b"1\t10\t5\t881250949\n2\t10\t3\t881250950\r\n1\t20\t4\t881250951\n\n",
        );
        let flags = "|0".repeat(19);
        let mut items = Vec::new();
        items.extend_from_slice(
            format!("10|Toy Story (1995)|01-Jan-1995||http://x{flags}\n").as_bytes(),
        );
        items.extend_from_slice(b"20|Caf\xe9 Society (1996)|02-Feb-1996||http://y|0|1|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n");
        items.extend_from_slice(format!("30|unknown||||{}\n", vec!["0"; 19].join("|")).as_bytes());
        write(&dir, "u.item", &items);
        write(
            &dir,
            "u.user",
            b"1|24|M|technician|85711\n2|53|F|other|94043\n",
        );
        let (data, report) = load_movielens(&dir, &ImportOptions::default()).unwrap();
        assert_eq!(data.name, "movielens-100k");
        assert_eq!(report.rows_read, 3);
        let log = &data.interactions;
        assert_eq!(log.len(), 3);
        assert_eq!(
            log.item_ids().externals(),
            &["10", "20"],
            "metadata-only movies stay out of the log"
        );
        assert_eq!(log.ratings(), &[5.0, 3.0, 4.0]);
        assert_eq!(log.timestamps()[2], 881_250_951);
        assert!(log.events().iter().all(|&e| e == EventType::Rating));
        let items = data.item_features.as_deref().unwrap();
        assert_eq!(items.ids().len(), 3);
        assert_eq!(text_of(items, "title", "20"), "Café Society (1996)");
        assert_eq!(
            categories_of(items, "genres", "20"),
            vec!["Action", "Comedy"]
        );
        assert_eq!(number_of(items, "year", "10"), 1995.0);
        assert!(number_of(items, "year", "30").is_nan());
        let users = data.user_features.as_deref().unwrap();
        assert_eq!(number_of(users, "age", "2"), 53.0);
        assert_eq!(categories_of(users, "age_group", "2"), vec!["50"]);
        assert_eq!(categories_of(users, "occupation", "1"), vec!["technician"]);
    }

    #[test]
    fn small_1m_with_latin1_titles() {
        let dir = temp_dir("ml1m");
        write(
            &dir,
            "ratings.dat",
            b"1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
        );
        write(
            &dir,
            "movies.dat",
            b"1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation|Children's|Musical\n9::Am\xe9lie (2001)::Comedy|Romance\n",
        );
        write(
            &dir,
            "users.dat",
            b"1::F::1::10::48067\n2::M::56::16::70072\n",
        );
        let (data, report) = load_movielens(&dir, &ImportOptions::default()).unwrap();
        assert_eq!(data.name, "movielens-1m");
        assert_eq!(report.rows_imported, 3);
        assert_eq!(data.interactions.user_ids().externals(), &["1", "2"]);
        assert_eq!(data.interactions.item_ids().externals(), &["1193", "661"]);
        assert_eq!(data.interactions.items(), &[0, 1, 0]);
        let items = data.item_features.as_deref().unwrap();
        assert_eq!(items.ids().len(), 3);
        assert_eq!(text_of(items, "title", "9"), "Amélie (2001)");
        assert_eq!(number_of(items, "year", "9"), 2001.0);
        assert_eq!(
            categories_of(items, "genres", "661"),
            vec!["Animation", "Children's", "Musical"]
        );
        let users = data.user_features.as_deref().unwrap();
        assert_eq!(
            categories_of(users, "occupation", "1"),
            vec!["K-12 student"]
        );
        assert_eq!(categories_of(users, "age_group", "2"), vec!["56"]);
        assert_eq!(number_of(users, "age", "2"), 56.0);
        assert_eq!(categories_of(users, "gender", "1"), vec!["F"]);
    }

    #[test]
    fn rating_errors_name_file_line_field_and_skips_are_counted() {
        let dir = temp_dir("ml1m-bad");
        write(
            &dir,
            "ratings.dat",
            b"1::10::5::978300760\n1::11::x::978300760\n1::12::4\n\xff::13::4::1\n::14::3::2\n007::15::2::3\n7::16::2::3\n",
        );
        let err = load_movielens(&dir, &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ratings.dat:2:") && err.contains("`rating`") && err.contains("`x`"),
            "{err}"
        );
        let opts = ImportOptions {
            skip_invalid: true,
            ..ImportOptions::default()
        };
        let (data, report) = load_movielens(&dir, &opts).unwrap();
        assert_eq!(report.rows_read, 7);
        assert_eq!(report.rows_imported, 3);
        assert_eq!(report.skipped["unparsable number"], 1);
        assert_eq!(report.skipped["ragged row"], 1);
        assert_eq!(report.skipped["invalid utf-8"], 1);
        assert_eq!(report.skipped["empty id"], 1);
        assert!(
            report.examples[1].contains("ratings.dat:3:")
                && report.examples[1].contains("`timestamp`")
        );
        assert_eq!(
            data.interactions.user_ids().externals(),
            &["1", "007", "7"],
            "`007` and `7` are different ids"
        );
        assert!(data.item_features.is_none() && data.user_features.is_none());
    }

    #[test]
    fn missing_or_empty_directory_is_a_bad_file() {
        let dir = temp_dir("ml-empty");
        let err = load_movielens(&dir, &ImportOptions::default()).unwrap_err();
        assert!(matches!(err, Error::BadFile { .. }), "{err}");
        write(&dir, "u.data", b"");
        let err = load_movielens(&dir, &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("u.data") && err.contains("empty"), "{err}");
    }

    #[test]
    fn a_title_with_a_multibyte_character_before_the_parenthesis_has_no_year() {
        // Found by the `movielens_import` fuzz target: slicing four bytes from the end split the
        // two-byte `Ö` (latin-1 0xD6) and panicked.
        assert_eq!(year_in_title("Nest (1\u{d6}975)"), None);
        assert_eq!(year_in_title("\u{e9}\u{e9})"), None);
        let files = MovieLensFiles {
            version: MovieLensVersion::Ml1m,
            dir: Path::new("ml"),
            ratings: b"1::1193::5::978300760\n",
            items: Some(b"1193::Nest (1\xd6975)::Drama\n661::Peach (1996)::Animation\n"),
            users: None,
            genres: None,
        };
        let (dataset, _) = read_movielens(&files, &ImportOptions::default()).unwrap();
        let items = dataset.item_features.unwrap();
        assert_eq!(text_of(&items, "title", "1193"), "Nest (1\u{d6}975)");
        assert_eq!(number_of(&items, "year", "661"), 1996.0);
    }

    #[test]
    fn years_in_titles() {
        assert_eq!(year_in_title("Toy Story (1995)"), Some(1995));
        assert_eq!(
            year_in_title("Heidi Fleiss: Hollywood Madam (1995) "),
            Some(1995)
        );
        assert_eq!(year_in_title("unknown"), None);
        assert_eq!(year_in_title("M (x)"), None);
    }

    #[test]
    fn real_movielens_counts() {
        let Some(root) = real_data_dir() else { return };
        let (small, report) =
            load_movielens(&root.join("ml-100k"), &ImportOptions::default()).unwrap();
        assert_eq!(report.rows_imported, 100_000);
        assert_eq!(small.interactions.len(), 100_000);
        assert_eq!(
            (small.interactions.n_users(), small.interactions.n_items()),
            (943, 1682)
        );
        let items = small.item_features.as_deref().unwrap();
        assert_eq!(items.ids().len(), 1682);
        assert_eq!(vocab_len(items, "genres"), 19);
        assert_eq!(small.user_features.as_deref().unwrap().ids().len(), 943);
        // The generic TSV reader sees the same log in u.data.
        let tsv = ImportOptions {
            delimiter: Some(b'\t'),
            ..ImportOptions::default()
        };
        let (generic, _) =
            crate::delimited::load_delimited(&root.join("ml-100k/u.data"), &tsv).unwrap();
        assert_eq!(
            generic.interactions.fingerprint(),
            small.interactions.fingerprint()
        );

        let (large, report) =
            load_movielens(&root.join("ml-1m"), &ImportOptions::default()).unwrap();
        assert_eq!(report.rows_read, 1_000_209);
        assert_eq!(report.rows_imported, 1_000_209);
        let log = &large.interactions;
        assert_eq!(log.len(), 1_000_209);
        assert_eq!((log.n_users(), log.n_items()), (6040, 3706));
        assert_eq!(log.rating_range(), Some((1.0, 5.0)));
        assert!(log.has_timestamps());
        let items = large.item_features.as_deref().unwrap();
        assert_eq!(items.ids().len(), 3883);
        assert_eq!(vocab_len(items, "genres"), 18);
        assert_eq!(large.user_features.as_deref().unwrap().ids().len(), 6040);
    }
}
