//! EventBridge event patterns (pure, no I/O): parsing with validation, and matching events.
//!
//! [`EventPattern::parse`] accepts the JSON patterns of Amazon EventBridge rules (user guide:
//! "Event patterns", "Content filtering") and refuses, with a [`PatternError`] naming the field,
//! what EventBridge refuses. [`EventPattern::matches`] follows AWS's reference implementation,
//! `aws/event-ruler` (array-consistent matching).
//!
//! Semantics:
//! * A key names an event field: an object descends into the event's object, an array lists
//!   matchers of which one must match. All keys must match; `"$or": [p1, p2, ...]` (two or more
//!   objects, nestable, at any level) matches when one sub-pattern does.
//! * A field's values are its strings, numbers, booleans and nulls; where the event has an array
//!   (nested arrays too) one matching element is enough. Objects and `[]` are not values.
//! * Conditions on fields inside the objects of an event array must hold in one element:
//!   `{"a": {"b": ["x"], "c": ["y"]}}` does not match `{"a": [{"b": "x"}, {"c": "y"}]}`.
//! * Literals compare within their JSON type: `"5"` never matches `5`, `""` never `null`;
//!   numbers compare numerically (`5` matches `5.0`); a string that is an IP address also
//!   matches that address written otherwise (`"::1"` matches `"0::1"`), as in event-ruler.
//! * `prefix`, `suffix`, `equals-ignore-case`, `wildcard` and `cidr` match strings only,
//!   `numeric` numbers only. Ignoring case maps each character through Unicode's upper and lower
//!   case (`straße` matches `STRASSE`).
//! * `anything-but` matches any value present that it does not exclude, whatever its type:
//!   `{"anything-but": ["latest"]}` matches `5`, `true` and `null` (event-ruler compares JSON
//!   text, where only strings are quoted). No matcher but `{"exists": false}` matches an absent
//!   field.
//! * `{"exists": true}` needs at least one value (`null` counts); `{"exists": false}` matches a
//!   field that is missing, `[]`, or an object (exists looks at leaves only, as in event-ruler).
//!
//! Choices where EventBridge leaves room (checked against event-ruler on generated cases):
//! * `{"exists": false}` on a field inside array objects is judged in the element that the other
//!   conditions select, or in every element when nothing selects one. event-ruler's answer
//!   depends on the fields' alphabetical order; it agrees when the absent fields sort last.
//! * A field constrained both beside a `$or` and in its branch must meet both conditions
//!   (event-ruler keeps only the later one).
//! * Numbers are IEEE-754 doubles over the whole finite range, as event-ruler now does (it used
//!   to stop at ±5.0e9 with 6 decimals). `numeric` and `anything-but` refuse integers a double
//!   cannot hold exactly (above 2^53) as event-ruler does; literals compare them exactly.
//! * `numeric` takes one comparison, or a lower bound (`>`, `>=`) then a strictly greater upper
//!   bound (`<`, `<=`); `=` stands alone. Integers and decimals alike.
//! * `cidr` masks stop at /31 (IPv4) and /127 (IPv6), as in event-ruler: a single address is a
//!   literal. Host bits may be set. Addresses are dotted-quad IPv4 (leading zeros read as
//!   decimal, as Java does) or hex-and-colon IPv6; IPv4-mapped IPv6 addresses count as IPv4.
//!   A `/0` block matches the addresses of its family only (event-ruler's matches any value).
//! * In `equals-ignore-case`, a character also matches itself (event-ruler misses title-case
//!   letters such as `ǅ`); characters beyond U+FFFF match case-sensitively, as in event-ruler.
//! * `{"prefix": ""}` and `{"suffix": ""}` match any string; `anything-but` refuses an empty
//!   list and an empty prefix or suffix; matcher keywords are refused as field names inside
//!   `$or` branches; event-ruler's undocumented `{"exactly": "<string>"}` is accepted. All as
//!   in event-ruler.
//! * Events that are not JSON objects match nothing; keys containing dots are plain keys.
//! * Work is bounded: objects nest at most 16 deep, a pattern holds at most 2,048 match values
//!   (`anything-but` lists count each member), `$or` branches combine into at most 1,024
//!   alternatives, and wildcards match in linear time.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;
use serde_json::{Map, Number, Value};

/// Most levels of nested objects, the pattern itself being the first.
const MAX_DEPTH: usize = 16;
/// Most match values in one pattern (array entries; `anything-but` lists count each member).
const MAX_MATCH_VALUES: usize = 2048;
/// Most combinations of `$or` branches one pattern expands to.
const MAX_ALTERNATIVES: u64 = 1024;

/// The matcher keys, as listed in messages.
const MATCHER_NAMES: &str =
    "prefix, suffix, equals-ignore-case, anything-but, exists, numeric, wildcard, cidr";
const MATCHER_KEYS: [&str; 8] = [
    "prefix",
    "suffix",
    "equals-ignore-case",
    "anything-but",
    "exists",
    "numeric",
    "wildcard",
    "cidr",
];
/// Field names event-ruler refuses inside `$or` branches (its matcher keywords, operators and
/// the names it reserves for future matchers).
const RESERVED_IN_OR: [&str; 24] = [
    "exactly",
    "equals-ignore-case",
    "prefix",
    "suffix",
    "anything-but",
    "exists",
    "wildcard",
    "numeric",
    "cidr",
    "=",
    "<",
    "<=",
    ">",
    ">=",
    "regex",
    "not-wildcard",
    "not-equals-ignore-case",
    "date-after",
    "date-on-or-after",
    "date-before",
    "date-on-or-before",
    "in-date-range",
    "ip-address-in-range",
    "ip-address-not-in-range",
];

/// A validated EventBridge event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPattern {
    root: ObjectPattern,
}

/// Why a pattern was refused: `path` names the field (e.g. `detail.repository-name[0].prefix`),
/// `message` says what is wrong in a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub path: String,
    pub message: String,
}

impl PatternError {
    fn new(path: &str, message: impl Into<String>) -> PatternError {
        PatternError {
            path: path.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for PatternError {}

impl EventPattern {
    /// Validates `pattern` and compiles it for [`EventPattern::matches`].
    pub fn parse(pattern: &Value) -> Result<EventPattern, PatternError> {
        let Value::Object(fields) = pattern else {
            return Err(PatternError::new(
                "",
                format!(
                    "an event pattern must be a JSON object such as {{\"source\": [\"aws.ecr\"]}}, \
                     not {}",
                    describe(pattern)
                ),
            ));
        };
        if fields.is_empty() {
            return Err(PatternError::new(
                "",
                "an event pattern must name at least one field, such as \
                 {\"source\": [\"aws.ecr\"]}; EventBridge refuses the empty pattern {}",
            ));
        }
        let mut parser = Parser { match_values: 0 };
        let root = parser.object(fields, "", 1, false)?;
        if root.alternatives() > MAX_ALTERNATIVES {
            return Err(PatternError::new(
                "",
                format!(
                    "the pattern's $or branches combine into more than {MAX_ALTERNATIVES} \
                     alternatives; split it into several rules or flatten the $or nesting"
                ),
            ));
        }
        Ok(EventPattern { root })
    }

    /// Whether `event` matches the pattern.
    pub fn matches(&self, event: &Value) -> bool {
        // EventBridge events are JSON objects; event-ruler refuses anything else.
        event.is_object() && evaluate(&[&self.root], Some(event)) != Outcome::Fails
    }
}

/// The conditions of one pattern object: every field, and one of the `$or` branches if any.
#[derive(Debug, Clone, PartialEq, Default)]
struct ObjectPattern {
    fields: Vec<(String, FieldPattern)>,
    /// The `$or` branches; empty when the object has no `$or`.
    any_of: Vec<ObjectPattern>,
}

#[derive(Debug, Clone, PartialEq)]
enum FieldPattern {
    /// Conditions on the fields of the event's object at this key.
    Nested(ObjectPattern),
    /// Matchers of which one must match a value at this key.
    Leaf(Vec<Matcher>),
}

impl ObjectPattern {
    /// How many alternatives the `$or` branches expand to (event-ruler compiles each into a rule
    /// of its own), saturating.
    fn alternatives(&self) -> u64 {
        let mut total: u64 = 1;
        for (_, field) in &self.fields {
            if let FieldPattern::Nested(nested) = field {
                total = total.saturating_mul(nested.alternatives());
            }
        }
        if !self.any_of.is_empty() {
            let branches = self.any_of.iter().fold(0u64, |sum, branch| {
                sum.saturating_add(branch.alternatives())
            });
            total = total.saturating_mul(branches);
        }
        total
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    /// A string literal; `address` is set when it is an IP address literal.
    Text {
        text: String,
        address: Option<IpAddr>,
    },
    Number(Number),
    Bool(bool),
    Null,
    Prefix(String),
    PrefixIgnoreCase(CaselessText),
    Suffix(String),
    /// Held reversed: a suffix of the text is a prefix of the reversed text.
    SuffixIgnoreCase(CaselessText),
    EqualsIgnoreCase(CaselessText),
    AnythingBut(Exclusion),
    Exists(bool),
    Numeric(NumericRange),
    Wildcard(Wildcard),
    Cidr(IpNet),
}

/// What an `anything-but` excludes.
#[derive(Debug, Clone, PartialEq)]
enum Exclusion {
    Strings(Vec<String>),
    Numbers(Vec<f64>),
    Prefixes(Vec<String>),
    Suffixes(Vec<String>),
    IgnoreCase(Vec<CaselessText>),
    Wildcards(Vec<Wildcard>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bound {
    value: f64,
    inclusive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct NumericRange {
    lower: Option<Bound>,
    upper: Option<Bound>,
}

impl Bound {
    /// Excludes the value itself (`>`, `<`).
    fn open(value: f64) -> Bound {
        Bound {
            value,
            inclusive: false,
        }
    }

    /// Includes the value itself (`>=`, `<=`, `=`).
    fn closed(value: f64) -> Bound {
        Bound {
            value,
            inclusive: true,
        }
    }
}

impl NumericRange {
    fn contains(&self, number: f64) -> bool {
        let above_lower = self.lower.map_or(true, |bound| {
            number > bound.value || (bound.inclusive && number == bound.value)
        });
        let below_upper = self.upper.map_or(true, |bound| {
            number < bound.value || (bound.inclusive && number == bound.value)
        });
        above_lower && below_upper
    }
}

impl Matcher {
    /// Whether this matcher accepts `value`, one of the event's strings, numbers, booleans or
    /// nulls. `{"exists": false}` accepts no value: the caller checks absence.
    fn accepts(&self, value: &Value) -> bool {
        match (self, value) {
            (Matcher::Text { text, address }, Value::String(s)) => {
                s == text || address.is_some_and(|address| ip_address(s) == Some(address))
            }
            (Matcher::Number(expected), Value::Number(actual)) => numbers_equal(expected, actual),
            (Matcher::Bool(expected), Value::Bool(actual)) => expected == actual,
            (Matcher::Null, Value::Null) => true,
            (Matcher::Prefix(prefix), Value::String(s)) => s.starts_with(prefix.as_str()),
            (Matcher::PrefixIgnoreCase(prefix), Value::String(s)) => prefix.matches_start_of(s),
            (Matcher::Suffix(suffix), Value::String(s)) => s.ends_with(suffix.as_str()),
            (Matcher::SuffixIgnoreCase(reversed_suffix), Value::String(s)) => {
                let reversed: String = s.chars().rev().collect();
                reversed_suffix.matches_start_of(&reversed)
            }
            (Matcher::EqualsIgnoreCase(expected), Value::String(s)) => expected.matches_all_of(s),
            (Matcher::AnythingBut(exclusion), value) => !exclusion.excludes(value),
            (Matcher::Exists(present), _) => *present,
            (Matcher::Numeric(range), Value::Number(n)) => {
                exact_f64(n).is_some_and(|number| range.contains(number))
            }
            (Matcher::Wildcard(wildcard), Value::String(s)) => wildcard.matches(s),
            (Matcher::Cidr(block), Value::String(s)) => {
                ip_address(s).is_some_and(|address| block.contains(&address))
            }
            _ => false,
        }
    }
}

impl Exclusion {
    fn excludes(&self, value: &Value) -> bool {
        // A value of another JSON type is never excluded: event-ruler compares the JSON text,
        // in which strings are quoted and numbers, booleans and null are not.
        match (self, value) {
            (Exclusion::Strings(excluded), Value::String(s)) => excluded.contains(s),
            (Exclusion::Numbers(excluded), Value::Number(n)) => {
                exact_f64(n).is_some_and(|number| excluded.contains(&number))
            }
            (Exclusion::Prefixes(prefixes), Value::String(s)) => {
                prefixes.iter().any(|prefix| s.starts_with(prefix.as_str()))
            }
            (Exclusion::Suffixes(suffixes), Value::String(s)) => {
                suffixes.iter().any(|suffix| s.ends_with(suffix.as_str()))
            }
            (Exclusion::IgnoreCase(texts), Value::String(s)) => {
                texts.iter().any(|text| text.matches_all_of(s))
            }
            (Exclusion::Wildcards(wildcards), Value::String(s)) => {
                wildcards.iter().any(|wildcard| wildcard.matches(s))
            }
            _ => false,
        }
    }
}

/// Text compared case-insensitively as event-ruler does: each character of the pattern matches
/// its lower-case or upper-case mapping (which may be several characters: `ß` also matches
/// `SS`), or itself (which event-ruler forgets for title-case letters such as `ǅ`).
#[derive(Debug, Clone, PartialEq)]
struct CaselessText {
    /// For each character of the pattern, the strings it matches.
    steps: Vec<Vec<String>>,
}

impl CaselessText {
    fn new(text: &str) -> CaselessText {
        let steps = text
            .chars()
            .map(|c| {
                let mut forms = vec![c.to_string()];
                // event-ruler maps Java chars (UTF-16 units), so characters beyond the Basic
                // Multilingual Plane keep their case there; do the same.
                if u32::from(c) <= 0xFFFF {
                    for form in [c.to_lowercase().collect(), c.to_uppercase().collect()] {
                        if !forms.contains(&form) {
                            forms.push(form);
                        }
                    }
                }
                forms
            })
            .collect();
        CaselessText { steps }
    }

    /// The same text read backwards, for suffixes.
    fn reversed(&self) -> CaselessText {
        let steps = self
            .steps
            .iter()
            .rev()
            .map(|forms| {
                forms
                    .iter()
                    .map(|form| form.chars().rev().collect())
                    .collect()
            })
            .collect();
        CaselessText { steps }
    }

    fn matches_start_of(&self, text: &str) -> bool {
        !self.end_offsets(text).is_empty()
    }

    fn matches_all_of(&self, text: &str) -> bool {
        self.end_offsets(text).contains(&text.len())
    }

    /// The byte offsets in `text` at which a match of the whole pattern from the start of
    /// `text` can end. Forms of one character can differ in length, so several offsets may be
    /// live at once; tracking them as a set keeps the work linear in the pattern length times
    /// the (small) number of live offsets, with no backtracking.
    fn end_offsets(&self, text: &str) -> Vec<usize> {
        let mut offsets = vec![0];
        for forms in &self.steps {
            let mut next = Vec::new();
            for &offset in &offsets {
                let Some(rest) = text.get(offset..) else {
                    continue;
                };
                for form in forms {
                    if rest.starts_with(form.as_str()) {
                        next.push(offset + form.len());
                    }
                }
            }
            next.sort_unstable();
            next.dedup();
            if next.is_empty() {
                return next;
            }
            offsets = next;
        }
        offsets
    }
}

/// A `wildcard` value: literal pieces separated by `*`, each `*` matching any run of characters.
#[derive(Debug, Clone, PartialEq)]
struct Wildcard {
    /// One more piece than there are `*`s; the first and last may be empty.
    pieces: Vec<String>,
}

impl Wildcard {
    /// Parses EventBridge's wildcard syntax: `\*` is a literal star, `\\` a literal backslash,
    /// any other backslash and two `*` in a row are refused. The error is a sentence fragment.
    fn parse(pattern: &str) -> Result<Wildcard, String> {
        let mut pieces = vec![String::new()];
        let mut previous_was_star = false;
        let mut chars = pattern.chars().enumerate();
        while let Some((position, c)) = chars.next() {
            match c {
                '*' => {
                    if previous_was_star {
                        return Err(format!(
                            "has two consecutive `*` at character {position}; one `*` already \
                             matches any run of characters"
                        ));
                    }
                    pieces.push(String::new());
                    previous_was_star = true;
                    continue;
                }
                '\\' => match chars.next() {
                    Some((_, escaped @ ('*' | '\\'))) => push_to_last(&mut pieces, escaped),
                    _ => {
                        return Err(format!(
                            "has a backslash at character {position} that escapes nothing; only \
                             `\\*` (a literal star) and `\\\\` (a literal backslash) are escapes"
                        ))
                    }
                },
                other => push_to_last(&mut pieces, other),
            }
            previous_was_star = false;
        }
        Ok(Wildcard { pieces })
    }

    /// Greedy matching: the first piece anchors at the start, the last at the end, and each
    /// middle piece is taken at its leftmost occurrence after the previous one. Taking the
    /// leftmost occurrence is always safe with `*` as the only wildcard, so this never
    /// backtracks and runs in time linear in the text (`str::find` is linear).
    fn matches(&self, text: &str) -> bool {
        let (Some(first), Some(last)) = (self.pieces.first(), self.pieces.last()) else {
            return false;
        };
        if self.pieces.len() == 1 {
            return text == first;
        }
        if text.len() < first.len() + last.len()
            || !text.starts_with(first.as_str())
            || !text.ends_with(last.as_str())
        {
            return false;
        }
        let Some(mut rest) = text.get(first.len()..text.len() - last.len()) else {
            return false;
        };
        for piece in &self.pieces[1..self.pieces.len() - 1] {
            match rest.find(piece.as_str()) {
                Some(start) => rest = &rest[start + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

fn push_to_last(pieces: &mut [String], c: char) {
    if let Some(last) = pieces.last_mut() {
        last.push(c);
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

struct Parser {
    /// Match values seen so far, against [`MAX_MATCH_VALUES`].
    match_values: usize,
}

impl Parser {
    fn object(
        &mut self,
        fields: &Map<String, Value>,
        path: &str,
        depth: usize,
        inside_or: bool,
    ) -> Result<ObjectPattern, PatternError> {
        if depth > MAX_DEPTH {
            return Err(PatternError::new(
                path,
                format!("nests objects more than {MAX_DEPTH} levels deep; flatten the pattern"),
            ));
        }
        if fields.is_empty() {
            return Err(PatternError::new(
                path,
                "is an empty object; name at least one field to match inside it, or remove it",
            ));
        }
        let mut object = ObjectPattern::default();
        for (name, value) in fields {
            let field_path = join(path, name);
            if name == "$or" {
                object.any_of = self.any_of(value, &field_path, depth)?;
                continue;
            }
            if inside_or && RESERVED_IN_OR.contains(&name.as_str()) {
                return Err(PatternError::new(
                    &field_path,
                    format!(
                        "\"{name}\" is a matcher keyword and cannot be a field name inside $or; \
                         $or takes objects of fields, such as \
                         \"$or\": [{{\"field\": [{{\"prefix\": \"a\"}}]}}, {{\"other\": [1]}}]"
                    ),
                ));
            }
            let field = match value {
                Value::Object(nested) => {
                    FieldPattern::Nested(self.object(nested, &field_path, depth + 1, inside_or)?)
                }
                Value::Array(values) => FieldPattern::Leaf(self.leaf(values, &field_path)?),
                other => {
                    let hint = if MATCHER_KEYS.contains(&name.as_str()) {
                        format!(
                            "; to use the {name} matcher, put it in the field's array, such as \
                             \"field\": [{{\"{name}\": ...}}]"
                        )
                    } else {
                        String::new()
                    };
                    return Err(PatternError::new(
                        &field_path,
                        format!(
                            "must be an array of values to match, such as [\"value\"], or an \
                             object of nested fields, not {}{hint}",
                            describe(other)
                        ),
                    ));
                }
            };
            object.fields.push((name.clone(), field));
        }
        Ok(object)
    }

    fn any_of(
        &mut self,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<Vec<ObjectPattern>, PatternError> {
        const SHAPE: &str = "$or takes an array of two or more objects, each a pattern of its \
                             own, such as \"$or\": [{\"a\": [\"x\"]}, {\"b\": [\"y\"]}]";
        let Value::Array(branches) = value else {
            return Err(PatternError::new(
                path,
                format!("{SHAPE}, not {}", describe(value)),
            ));
        };
        if branches.len() < 2 {
            return Err(PatternError::new(
                path,
                format!(
                    "{SHAPE}; this one has {} (put a single pattern's fields directly in the \
                     enclosing object)",
                    branches.len()
                ),
            ));
        }
        let mut patterns = Vec::with_capacity(branches.len());
        for (index, branch) in branches.iter().enumerate() {
            let branch_path = indexed(path, index);
            let Value::Object(fields) = branch else {
                return Err(PatternError::new(
                    &branch_path,
                    format!("{SHAPE}; this entry is {}", describe(branch)),
                ));
            };
            patterns.push(self.object(fields, &branch_path, depth + 1, true)?);
        }
        Ok(patterns)
    }

    fn leaf(&mut self, values: &[Value], path: &str) -> Result<Vec<Matcher>, PatternError> {
        if values.is_empty() {
            return Err(PatternError::new(
                path,
                "is an empty array, which would match nothing; list at least one value to match, \
                 such as [\"value\"] or [{\"exists\": true}]",
            ));
        }
        let mut matchers = Vec::with_capacity(values.len());
        for (index, value) in values.iter().enumerate() {
            let value_path = indexed(path, index);
            self.count_values(1, &value_path)?;
            let matcher = match value {
                Value::String(text) => Matcher::Text {
                    text: text.clone(),
                    address: ip_address(text),
                },
                Value::Number(number) => Matcher::Number(number.clone()),
                Value::Bool(flag) => Matcher::Bool(*flag),
                Value::Null => Matcher::Null,
                Value::Object(matcher) => self.matcher(matcher, &value_path)?,
                Value::Array(_) => {
                    return Err(PatternError::new(
                        &value_path,
                        "a match value must be a string, number, boolean, null or a matcher \
                         object such as {\"prefix\": \"a\"}; arrays cannot be nested",
                    ))
                }
            };
            matchers.push(matcher);
        }
        Ok(matchers)
    }

    fn count_values(&mut self, count: usize, path: &str) -> Result<(), PatternError> {
        self.match_values = self.match_values.saturating_add(count);
        if self.match_values > MAX_MATCH_VALUES {
            return Err(PatternError::new(
                path,
                format!(
                    "the pattern has more than {MAX_MATCH_VALUES} match values; split it into \
                     several rules"
                ),
            ));
        }
        Ok(())
    }

    fn matcher(
        &mut self,
        matcher: &Map<String, Value>,
        path: &str,
    ) -> Result<Matcher, PatternError> {
        let mut entries = matcher.iter();
        let (Some((kind, value)), None) = (entries.next(), entries.next()) else {
            let message = if matcher.is_empty() {
                format!("is an empty matcher object; give one of: {MATCHER_NAMES}")
            } else {
                let keys: Vec<&str> = matcher.keys().map(String::as_str).collect();
                format!(
                    "has {} keys ({}), but a matcher object takes exactly one; write each \
                     condition as its own entry of the array (entries are alternatives)",
                    keys.len(),
                    keys.join(", ")
                )
            };
            return Err(PatternError::new(path, message));
        };
        let path = join(path, kind);
        let path = path.as_str();
        Ok(match kind.as_str() {
            "prefix" => match affix(value, path, "prefix")? {
                Affix::Exact(prefix) => Matcher::Prefix(prefix),
                Affix::IgnoreCase(prefix) => Matcher::PrefixIgnoreCase(CaselessText::new(&prefix)),
            },
            "suffix" => match affix(value, path, "suffix")? {
                Affix::Exact(suffix) => Matcher::Suffix(suffix),
                Affix::IgnoreCase(suffix) => {
                    Matcher::SuffixIgnoreCase(CaselessText::new(&suffix).reversed())
                }
            },
            // event-ruler's `exactly`: a string compared as written (no address reading).
            "exactly" => Matcher::Text {
                text: expect_string(value, path, "exactly")?.to_string(),
                address: None,
            },
            "equals-ignore-case" => Matcher::EqualsIgnoreCase(CaselessText::new(expect_string(
                value,
                path,
                "equals-ignore-case",
            )?)),
            "anything-but" => Matcher::AnythingBut(self.anything_but(value, path)?),
            "exists" => match value {
                Value::Bool(present) => Matcher::Exists(*present),
                other => {
                    return Err(PatternError::new(
                        path,
                        format!("exists must be true or false, not {}", describe(other)),
                    ))
                }
            },
            "numeric" => Matcher::Numeric(numeric(value, path)?),
            "wildcard" => Matcher::Wildcard(wildcard(value, path)?),
            "cidr" => Matcher::Cidr(cidr(expect_string(value, path, "cidr")?, path)?),
            unknown => {
                return Err(PatternError::new(
                    path,
                    format!("\"{unknown}\" is not a matcher; use one of: {MATCHER_NAMES}"),
                ))
            }
        })
    }

    fn anything_but(&mut self, value: &Value, path: &str) -> Result<Exclusion, PatternError> {
        const SHAPE: &str = "anything-but takes a string, a number, a list of only strings or \
                             only numbers, or one of {\"prefix\": ..}, {\"suffix\": ..}, \
                             {\"equals-ignore-case\": ..}, {\"wildcard\": ..}";
        match value {
            Value::String(text) => Ok(Exclusion::Strings(vec![text.clone()])),
            Value::Number(number) => Ok(Exclusion::Numbers(vec![comparable_number(number, path)?])),
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(PatternError::new(
                        path,
                        format!("is an empty list, which would exclude nothing; {SHAPE}"),
                    ));
                }
                self.count_values(items.len() - 1, path)?;
                if items.iter().all(Value::is_string) {
                    let texts = items.iter().filter_map(Value::as_str).map(String::from);
                    return Ok(Exclusion::Strings(texts.collect()));
                }
                if items.iter().all(Value::is_number) {
                    let mut numbers = Vec::with_capacity(items.len());
                    for (index, item) in items.iter().enumerate() {
                        if let Value::Number(number) = item {
                            numbers.push(comparable_number(number, &indexed(path, index))?);
                        }
                    }
                    return Ok(Exclusion::Numbers(numbers));
                }
                // Name the first entry that spoils the list: one of another kind of value, or
                // the first whose type differs from the first entry's.
                let first_kind = items.first().map_or("a string", describe);
                let foreign = items
                    .iter()
                    .position(|item| !(item.is_string() || item.is_number()));
                let mixed = items.iter().position(|item| describe(item) != first_kind);
                Err(match (foreign, mixed) {
                    (Some(index), _) => PatternError::new(
                        &indexed(path, index),
                        format!("is {}; {SHAPE}", items.get(index).map_or("", describe)),
                    ),
                    (None, Some(index)) => PatternError::new(
                        &indexed(path, index),
                        format!(
                            "is {} in a list that starts with {first_kind}; a list holds only \
                             strings or only numbers",
                            items.get(index).map_or("", describe)
                        ),
                    ),
                    (None, None) => PatternError::new(path, SHAPE),
                })
            }
            Value::Object(inner) => {
                let mut entries = inner.iter();
                let (Some((kind, inner_value)), None) = (entries.next(), entries.next()) else {
                    return Err(PatternError::new(
                        path,
                        format!("takes an object with exactly one key; {SHAPE}"),
                    ));
                };
                let inner_path = join(path, kind);
                let kind = match kind.as_str() {
                    "prefix" => ExclusionKind::Prefix,
                    "suffix" => ExclusionKind::Suffix,
                    "equals-ignore-case" => ExclusionKind::IgnoreCase,
                    "wildcard" => ExclusionKind::Wildcard,
                    other => {
                        return Err(PatternError::new(
                            &inner_path,
                            format!(
                                "\"{other}\" cannot be used inside anything-but; use prefix, \
                                 suffix, equals-ignore-case or wildcard"
                            ),
                        ))
                    }
                };
                let texts = self.anything_but_texts(inner_value, &inner_path, kind.name())?;
                // Where to point at one of the texts: its index when they came as a list.
                let text_path = |index: usize| {
                    if inner_value.is_array() {
                        indexed(&inner_path, index)
                    } else {
                        inner_path.clone()
                    }
                };
                match kind {
                    ExclusionKind::Prefix | ExclusionKind::Suffix => {
                        if let Some(index) = texts.iter().position(String::is_empty) {
                            let name = kind.name();
                            return Err(PatternError::new(
                                &text_path(index),
                                format!(
                                    "an empty {name} would exclude every string; give a \
                                     non-empty {name}"
                                ),
                            ));
                        }
                        Ok(if kind == ExclusionKind::Prefix {
                            Exclusion::Prefixes(texts)
                        } else {
                            Exclusion::Suffixes(texts)
                        })
                    }
                    ExclusionKind::IgnoreCase => Ok(Exclusion::IgnoreCase(
                        texts.iter().map(|text| CaselessText::new(text)).collect(),
                    )),
                    ExclusionKind::Wildcard => {
                        let mut wildcards = Vec::with_capacity(texts.len());
                        for (index, text) in texts.iter().enumerate() {
                            let wildcard = Wildcard::parse(text)
                                .map_err(|problem| PatternError::new(&text_path(index), problem))?;
                            wildcards.push(wildcard);
                        }
                        Ok(Exclusion::Wildcards(wildcards))
                    }
                }
            }
            other => Err(PatternError::new(
                path,
                format!("{SHAPE}; not {}", describe(other)),
            )),
        }
    }

    /// The string or non-empty list of strings inside `anything-but`'s `{"<kind>": ..}`.
    fn anything_but_texts(
        &mut self,
        value: &Value,
        path: &str,
        kind: &str,
    ) -> Result<Vec<String>, PatternError> {
        let shape = format!(
            "anything-but's {kind} takes a string or a non-empty list of strings, such as \
             {{\"{kind}\": [\"a\", \"b\"]}}"
        );
        match value {
            Value::String(text) => Ok(vec![text.clone()]),
            Value::Array(items) if !items.is_empty() => {
                self.count_values(items.len() - 1, path)?;
                let mut texts = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let Value::String(text) = item else {
                        return Err(PatternError::new(
                            &indexed(path, index),
                            format!("{shape}; this entry is {}", describe(item)),
                        ));
                    };
                    texts.push(text.clone());
                }
                Ok(texts)
            }
            other => Err(PatternError::new(
                path,
                format!("{shape}; not {}", describe(other)),
            )),
        }
    }
}

/// The matchers `anything-but` can apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExclusionKind {
    Prefix,
    Suffix,
    IgnoreCase,
    Wildcard,
}

impl ExclusionKind {
    fn name(self) -> &'static str {
        match self {
            ExclusionKind::Prefix => "prefix",
            ExclusionKind::Suffix => "suffix",
            ExclusionKind::IgnoreCase => "equals-ignore-case",
            ExclusionKind::Wildcard => "wildcard",
        }
    }
}

enum Affix {
    Exact(String),
    IgnoreCase(String),
}

/// A `prefix` or `suffix` value: a string, or `{"equals-ignore-case": "<string>"}`.
fn affix(value: &Value, path: &str, kind: &str) -> Result<Affix, PatternError> {
    let shape = format!(
        "{kind} takes a string, or {{\"equals-ignore-case\": \"...\"}} to ignore case, such as \
         {{\"{kind}\": \"abc\"}}"
    );
    match value {
        Value::String(text) => Ok(Affix::Exact(text.clone())),
        Value::Object(inner) => {
            let mut entries = inner.iter();
            match (entries.next(), entries.next()) {
                (Some((key, Value::String(text))), None) if key == "equals-ignore-case" => {
                    Ok(Affix::IgnoreCase(text.clone()))
                }
                (Some((key, other)), None) if key == "equals-ignore-case" => {
                    Err(PatternError::new(
                        &join(path, key),
                        format!(
                            "equals-ignore-case must be a string, not {}",
                            describe(other)
                        ),
                    ))
                }
                _ => Err(PatternError::new(
                    path,
                    format!("{shape}; the only key accepted in its object is equals-ignore-case"),
                )),
            }
        }
        other => Err(PatternError::new(
            path,
            format!("{shape}; not {}", describe(other)),
        )),
    }
}

fn expect_string<'v>(value: &'v Value, path: &str, kind: &str) -> Result<&'v str, PatternError> {
    value.as_str().ok_or_else(|| {
        PatternError::new(
            path,
            format!("{kind} must be a string, not {}", describe(value)),
        )
    })
}

fn wildcard(value: &Value, path: &str) -> Result<Wildcard, PatternError> {
    let text = expect_string(value, path, "wildcard")?;
    Wildcard::parse(text).map_err(|problem| PatternError::new(path, problem))
}

/// One comparison of a `numeric` matcher.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Comparison {
    Equal(f64),
    /// `>` or `>=`.
    Lower(Bound),
    /// `<` or `<=`.
    Upper(Bound),
}

fn numeric(value: &Value, path: &str) -> Result<NumericRange, PatternError> {
    const SHAPE: &str = "numeric takes one comparison, such as [\">=\", 10], or a lower bound \
                         then an upper bound, such as [\">\", 0, \"<=\", 5]";
    let Value::Array(terms) = value else {
        return Err(PatternError::new(
            path,
            format!("{SHAPE}; not {}", describe(value)),
        ));
    };
    if terms.is_empty() || terms.len() > 4 || terms.len() % 2 != 0 {
        return Err(PatternError::new(
            path,
            format!(
                "{SHAPE}, each operator followed by a number; this one has {} terms",
                terms.len()
            ),
        ));
    }
    let mut comparisons = Vec::with_capacity(2);
    for (pair_index, pair) in terms.chunks(2).enumerate() {
        let (operator_path, number_path) = (
            indexed(path, pair_index * 2),
            indexed(path, pair_index * 2 + 1),
        );
        let (Some(operator), Some(number)) = (pair.first(), pair.get(1)) else {
            return Err(PatternError::new(path, SHAPE));
        };
        let comparison: fn(f64) -> Comparison = match operator.as_str() {
            Some("=") => Comparison::Equal,
            Some(">") => |value| Comparison::Lower(Bound::open(value)),
            Some(">=") => |value| Comparison::Lower(Bound::closed(value)),
            Some("<") => |value| Comparison::Upper(Bound::open(value)),
            Some("<=") => |value| Comparison::Upper(Bound::closed(value)),
            Some(other) => {
                return Err(PatternError::new(
                    &operator_path,
                    format!("\"{other}\" is not a numeric operator; use =, <, <=, > or >="),
                ))
            }
            None => {
                return Err(PatternError::new(
                    &operator_path,
                    format!(
                        "expected an operator (=, <, <=, > or >=), not {}; {SHAPE}",
                        describe(operator)
                    ),
                ))
            }
        };
        let Value::Number(number) = number else {
            return Err(PatternError::new(
                &number_path,
                format!(
                    "the value compared with must be a JSON number, not {}",
                    describe(number)
                ),
            ));
        };
        comparisons.push(comparison(comparable_number(number, &number_path)?));
    }

    // Where a problem with two comparisons lies: the first ([0]) or the second ([2]) operator.
    let (first, second) = (indexed(path, 0), indexed(path, 2));
    match comparisons.as_slice() {
        [Comparison::Equal(value)] => Ok(NumericRange {
            lower: Some(Bound::closed(*value)),
            upper: Some(Bound::closed(*value)),
        }),
        [Comparison::Lower(lower)] => Ok(NumericRange {
            lower: Some(*lower),
            upper: None,
        }),
        [Comparison::Upper(upper)] => Ok(NumericRange {
            lower: None,
            upper: Some(*upper),
        }),
        [Comparison::Lower(lower), Comparison::Upper(upper)] => {
            if lower.value < upper.value {
                Ok(NumericRange {
                    lower: Some(*lower),
                    upper: Some(*upper),
                })
            } else {
                Err(PatternError::new(
                    &first,
                    format!(
                        "the lower bound {} must be less than the upper bound {}, or nothing \
                         could match",
                        lower.value, upper.value
                    ),
                ))
            }
        }
        [Comparison::Equal(_), _] | [_, Comparison::Equal(_)] => {
            let at = if matches!(comparisons.first(), Some(Comparison::Equal(_))) {
                first
            } else {
                second
            };
            Err(PatternError::new(
                &at,
                "= stands alone and cannot be combined with another comparison; write [\"=\", 5]",
            ))
        }
        [Comparison::Lower(_), Comparison::Lower(_)] => Err(PatternError::new(
            &second,
            "is a second lower bound (> or >=); give at most one lower bound followed by one \
             upper bound (< or <=)",
        )),
        [Comparison::Upper(_), Comparison::Upper(_)] => Err(PatternError::new(
            &second,
            "is a second upper bound (< or <=); give at most one lower bound (> or >=) followed \
             by one upper bound",
        )),
        [Comparison::Upper(_), Comparison::Lower(_)] => Err(PatternError::new(
            &first,
            "the lower bound (> or >=) must come first, such as [\">\", 0, \"<=\", 5]",
        )),
        // The length check above leaves one or two comparisons.
        _ => Err(PatternError::new(path, SHAPE)),
    }
}

/// A number for `numeric` or `anything-but`, which compare as doubles: refused when a double
/// cannot hold it exactly, as event-ruler refuses it, rather than compared wrongly.
fn comparable_number(number: &Number, path: &str) -> Result<f64, PatternError> {
    exact_f64(number).ok_or_else(|| {
        PatternError::new(
            path,
            format!(
                "{number} cannot be held exactly by a double-precision number, so it cannot be \
                 compared numerically (integers up to 9007199254740992 always can); match it as \
                 a literal value instead"
            ),
        )
    })
}

fn cidr(text: &str, path: &str) -> Result<IpNet, PatternError> {
    const SHAPE: &str = "cidr takes an address block such as \"10.0.0.0/24\" or \"2001:db8::/64\"";
    let Some((address_text, bits_text)) = text.split_once('/') else {
        return Err(PatternError::new(
            path,
            format!("{SHAPE}; \"{text}\" has no /mask"),
        ));
    };
    let Some(address) = ip_address(address_text) else {
        return Err(PatternError::new(
            path,
            format!("{SHAPE}; \"{address_text}\" is not an IPv4 or IPv6 address"),
        ));
    };
    let Ok(bits) = bits_text.parse::<u8>() else {
        return Err(PatternError::new(
            path,
            format!("{SHAPE}; the mask \"{bits_text}\" is not a number of bits"),
        ));
    };
    let (family, limit) = match address {
        IpAddr::V4(_) => ("IPv4", 32),
        IpAddr::V6(_) => ("IPv6", 128),
    };
    if bits > limit {
        return Err(PatternError::new(
            path,
            format!(
                "the mask /{bits} is longer than an {family} address; an {family} block takes a \
                 mask below /{limit}"
            ),
        ));
    }
    if bits == limit {
        // event-ruler refuses whole-address masks; the address itself says the same.
        return Err(PatternError::new(
            path,
            format!(
                "an {family} block takes a mask below /{limit}; to match the single address, \
                 use it as a literal value, such as [\"{address_text}\"]"
            ),
        ));
    }
    IpNet::new(address, bits)
        .map_err(|_| PatternError::new(path, format!("{SHAPE}; \"{text}\" has an invalid mask")))
}

/// `text` as an IP address when it is written as event-ruler recognises addresses: four
/// dot-separated decimal numbers (leading zeros allowed, as Java reads them), or hexadecimal
/// digits and colons. IPv4 addresses mapped into IPv6 count as IPv4 (as Java's `InetAddress`
/// has them).
fn ip_address(text: &str) -> Option<IpAddr> {
    if text.contains(':') {
        if !text.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return None;
        }
        return Ipv6Addr::from_str(text)
            .ok()
            .map(|address| IpAddr::V6(address).to_canonical());
    }
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let significant = part.trim_start_matches('0');
        *octet = if significant.is_empty() {
            0
        } else {
            significant.parse().ok()?
        };
    }
    if parts.next().is_some() {
        return None;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

/// `number` as a double, when a double holds it exactly.
fn exact_f64(number: &Number) -> Option<f64> {
    if let Some(integer) = integer_value(number) {
        // i128 holds every i64 and u64, and the cast back from f64 saturates, so an integer
        // that does not survive the round trip is one a double cannot hold.
        let double = integer as f64;
        return (double as i128 == integer).then_some(double);
    }
    number.as_f64().filter(|double| double.is_finite())
}

fn integer_value(number: &Number) -> Option<i128> {
    number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
}

/// Literal number equality: numeric when both are exact doubles (`5` equals `5.0`), otherwise
/// exact integer equality (event-ruler then compares the JSON text).
fn numbers_equal(expected: &Number, actual: &Number) -> bool {
    match (exact_f64(expected), exact_f64(actual)) {
        (Some(expected), Some(actual)) => expected == actual,
        _ => match (integer_value(expected), integer_value(actual)) {
            (Some(expected), Some(actual)) => expected == actual,
            _ => false,
        },
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn indexed(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

// ---------------------------------------------------------------------------------------------
// Matching

/// How a set of conditions fares against part of an event. The order matters: a condition met
/// by a value present is better than one met only because fields are absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Fails,
    /// Met, but only by `{"exists": false}` conditions on fields that are absent.
    ByAbsence,
    /// Met, with at least one condition met by a value present.
    ByValue,
}

impl Outcome {
    /// Both conditions (on different parts of the event) met.
    fn and(self, other: Outcome) -> Outcome {
        if self == Outcome::Fails || other == Outcome::Fails {
            Outcome::Fails
        } else {
            self.max(other)
        }
    }
}

/// The conditions on one field gathered from all the pattern objects that apply at one level.
#[derive(Default)]
struct FieldConditions<'p> {
    leaves: Vec<&'p [Matcher]>,
    nested: Vec<&'p ObjectPattern>,
}

/// Evaluates the pattern objects of `conjunction`, which all apply to `value` (several when a
/// field is constrained both in an object and in its `$or` branches).
///
/// Over an array of objects, all the conditions must hold in one element, which the conditions
/// met by present values select (array consistency). Conditions met only by absence select
/// nothing, so they must then hold in every element.
fn evaluate(conjunction: &[&ObjectPattern], value: Option<&Value>) -> Outcome {
    match value {
        Some(Value::Object(object)) => evaluate_object(conjunction, object),
        Some(array @ Value::Array(_)) => {
            let elements = objects_within(&[array]);
            if elements
                .iter()
                .any(|element| evaluate_object(conjunction, element) == Outcome::ByValue)
            {
                Outcome::ByValue
            } else if holds_by_absence(conjunction, &elements) {
                Outcome::ByAbsence
            } else {
                Outcome::Fails
            }
        }
        // Missing, or a plain value: no field below it exists.
        _ if holds_by_absence(conjunction, &[]) => Outcome::ByAbsence,
        _ => Outcome::Fails,
    }
}

fn evaluate_object(conjunction: &[&ObjectPattern], object: &Map<String, Value>) -> Outcome {
    let mut best = Outcome::Fails;
    any_alternative(conjunction, &mut |fields| {
        let mut outcome = Outcome::ByAbsence;
        for (name, conditions) in group_by_field(fields) {
            let value = object.get(name);
            for matchers in conditions.leaves {
                outcome = outcome.and(evaluate_leaf(matchers, value));
            }
            if !conditions.nested.is_empty() {
                outcome = outcome.and(evaluate(&conditions.nested, value));
            }
            if outcome == Outcome::Fails {
                break;
            }
        }
        best = best.max(outcome);
        best == Outcome::ByValue
    });
    best
}

fn evaluate_leaf(matchers: &[Matcher], value: Option<&Value>) -> Outcome {
    let values = leaf_values(value);
    if matchers
        .iter()
        .any(|matcher| values.iter().any(|value| matcher.accepts(value)))
    {
        Outcome::ByValue
    } else if values.is_empty() && accepts_absence(matchers) {
        Outcome::ByAbsence
    } else {
        Outcome::Fails
    }
}

/// Whether the conditions can all be met by absence alone across `objects` (the elements of an
/// array, none of them selected): every condition is `{"exists": false}` on a field no object
/// has a value for.
fn holds_by_absence(conjunction: &[&ObjectPattern], objects: &[&Map<String, Value>]) -> bool {
    any_alternative(conjunction, &mut |fields| {
        group_by_field(fields)
            .into_iter()
            .all(|(name, conditions)| {
                let values: Vec<&Value> = objects
                    .iter()
                    .filter_map(|object| object.get(name))
                    .collect();
                let leaves_hold = conditions.leaves.iter().all(|matchers| {
                    accepts_absence(matchers)
                        && values
                            .iter()
                            .all(|value| leaf_values(Some(value)).is_empty())
                });
                leaves_hold
                    && (conditions.nested.is_empty()
                        || holds_by_absence(&conditions.nested, &objects_within(&values)))
            })
    })
}

fn accepts_absence(matchers: &[Matcher]) -> bool {
    matchers
        .iter()
        .any(|matcher| matches!(matcher, Matcher::Exists(false)))
}

/// A field name of a pattern object with its conditions.
type NamedField<'p> = (&'p str, &'p FieldPattern);

/// Calls `visit` with the fields of each alternative of `conjunction` (one branch chosen from
/// every `$or` at this level, recursively), until `visit` returns true; returns whether it did.
/// Branches are expanded lazily, one level at a time, so nested levels are expanded only where
/// the event has something to match them against.
fn any_alternative<'p>(
    conjunction: &[&'p ObjectPattern],
    visit: &mut dyn FnMut(&[NamedField<'p>]) -> bool,
) -> bool {
    let mut fields = Vec::new();
    let mut pending = Vec::new();
    for object in conjunction {
        take_fields(object, &mut fields, &mut pending);
    }
    expand_alternatives(&mut fields, &mut pending, visit)
}

fn take_fields<'p>(
    object: &'p ObjectPattern,
    fields: &mut Vec<NamedField<'p>>,
    pending: &mut Vec<&'p [ObjectPattern]>,
) {
    fields.extend(
        object
            .fields
            .iter()
            .map(|(name, field)| (name.as_str(), field)),
    );
    if !object.any_of.is_empty() {
        pending.push(&object.any_of);
    }
}

fn expand_alternatives<'p>(
    fields: &mut Vec<NamedField<'p>>,
    pending: &mut Vec<&'p [ObjectPattern]>,
    visit: &mut dyn FnMut(&[NamedField<'p>]) -> bool,
) -> bool {
    let Some(branches) = pending.pop() else {
        return visit(fields);
    };
    let (fields_len, pending_len) = (fields.len(), pending.len());
    let mut found = false;
    for branch in branches {
        take_fields(branch, fields, pending);
        found = expand_alternatives(fields, pending, visit);
        fields.truncate(fields_len);
        pending.truncate(pending_len);
        if found {
            break;
        }
    }
    pending.push(branches);
    found
}

fn group_by_field<'p>(fields: &[NamedField<'p>]) -> BTreeMap<&'p str, FieldConditions<'p>> {
    let mut groups: BTreeMap<&str, FieldConditions> = BTreeMap::new();
    for &(name, field) in fields {
        let conditions = groups.entry(name).or_default();
        match field {
            FieldPattern::Leaf(matchers) => conditions.leaves.push(matchers),
            FieldPattern::Nested(object) => conditions.nested.push(object),
        }
    }
    groups
}

/// The strings, numbers, booleans and nulls at a field, looking through arrays at any depth
/// (iteratively: events may nest arrays deeply).
fn leaf_values(value: Option<&Value>) -> Vec<&Value> {
    let mut values = Vec::new();
    let mut stack: Vec<&Value> = value.into_iter().collect();
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(_) => {}
            plain => values.push(plain),
        }
    }
    values
}

/// The objects among `values`, looking through arrays at any depth.
fn objects_within<'v>(values: &[&'v Value]) -> Vec<&'v Map<String, Value>> {
    let mut objects = Vec::new();
    let mut stack: Vec<&Value> = values.iter().rev().copied().collect();
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(object) => objects.push(object),
            _ => {}
        }
    }
    objects
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pattern(value: Value) -> EventPattern {
        match EventPattern::parse(&value) {
            Ok(pattern) => pattern,
            Err(error) => panic!("pattern {value} was refused: {error}"),
        }
    }

    fn matches(pattern_value: Value, event: Value) -> bool {
        pattern(pattern_value).matches(&event)
    }

    /// Asserts that `value` is refused at `path` with a message containing each of `words`.
    fn assert_refused(value: Value, path: &str, words: &[&str]) {
        let error = EventPattern::parse(&value).expect_err(&format!("{value} should be refused"));
        assert_eq!(error.path, path, "path of the refusal of {value}: {error}");
        for word in words {
            assert!(
                error.message.contains(word),
                "the refusal of {value} should mention {word:?}: {error}"
            );
        }
    }

    /// `{"f": [matcher]}`.
    fn on_field(matcher: Value) -> EventPattern {
        pattern(json!({ "f": [matcher] }))
    }

    fn ecr_push_event() -> Value {
        json!({
            "version": "0",
            "id": "13cde686-328b-6117-af20-0e5566167482",
            "detail-type": "ECR Image Action",
            "source": "aws.ecr",
            "account": "123456789012",
            "time": "2019-11-16T01:54:34Z",
            "region": "us-west-2",
            "resources": [],
            "detail": {
                "result": "SUCCESS",
                "repository-name": "my-repository-name",
                "image-digest": "sha256:7f5b...",
                "action-type": "PUSH",
                "image-tag": "latest"
            }
        })
    }

    fn ecr_scan_event() -> Value {
        json!({
            "version": "0",
            "id": "85fc3613-e913-7fc4-a80c-a3753e4aa9ae",
            "detail-type": "ECR Image Scan",
            "source": "aws.ecr",
            "account": "123456789012",
            "time": "2019-10-29T02:36:48Z",
            "region": "us-east-1",
            "resources": ["arn:aws:ecr:us-east-1:123456789012:repository/my-repository-name"],
            "detail": {
                "scan-status": "COMPLETE",
                "repository-name": "my-repository-name",
                "finding-severity-counts": { "CRITICAL": 10, "MEDIUM": 9 },
                "image-digest":
                    "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234",
                "image-tags": []
            }
        })
    }

    // --- ECR examples -------------------------------------------------------------------------

    #[test]
    fn ecr_push_pattern_selects_production_pushes_of_tags_other_than_latest() {
        let production_pushes = pattern(json!({
            "source": ["aws.ecr"],
            "detail-type": ["ECR Image Action"],
            "detail": {
                "action-type": ["PUSH"],
                "result": ["SUCCESS"],
                "repository-name": [{ "prefix": "prod/" }],
                "image-tag": [{ "anything-but": ["latest"] }]
            }
        }));
        // The sample event pushes `latest` to a repository outside prod/.
        let sample = ecr_push_event();
        assert!(!production_pushes.matches(&sample));

        let mut release = sample.clone();
        release["detail"]["repository-name"] = json!("prod/api");
        release["detail"]["image-tag"] = json!("v1.2.3");
        assert!(production_pushes.matches(&release));

        let mut latest_in_prod = release.clone();
        latest_in_prod["detail"]["image-tag"] = json!("latest");
        assert!(!production_pushes.matches(&latest_in_prod));

        let mut failed = release.clone();
        failed["detail"]["result"] = json!("FAILURE");
        assert!(!production_pushes.matches(&failed));

        // A push by digest has no tag, and anything-but never matches an absent field.
        let mut by_digest = release;
        if let Some(detail) = by_digest["detail"].as_object_mut() {
            detail.remove("image-tag");
        }
        assert!(!production_pushes.matches(&by_digest));
    }

    #[test]
    fn ecr_sample_push_event_matches_the_plain_pattern() {
        assert!(matches(
            json!({
                "source": ["aws.ecr"],
                "detail-type": ["ECR Image Action"],
                "detail": {
                    "action-type": ["PUSH"],
                    "result": ["SUCCESS"],
                    "image-tag": ["latest"]
                }
            }),
            ecr_push_event()
        ));
    }

    #[test]
    fn ecr_scan_pattern_selects_scans_with_critical_findings() {
        let critical = pattern(json!({
            "detail": { "finding-severity-counts": { "CRITICAL": [{ "numeric": [">", 0] }] } }
        }));
        let scan = ecr_scan_event();
        assert!(critical.matches(&scan));

        let mut clean = scan.clone();
        clean["detail"]["finding-severity-counts"] = json!({ "CRITICAL": 0, "MEDIUM": 9 });
        assert!(!critical.matches(&clean));

        let mut no_critical = scan;
        no_critical["detail"]["finding-severity-counts"] = json!({ "MEDIUM": 9 });
        assert!(!critical.matches(&no_critical));

        // The push event has no finding counts at all.
        assert!(!critical.matches(&ecr_push_event()));
    }

    // --- literals -------------------------------------------------------------------------------

    #[test]
    fn string_literals_match_exactly_and_case_sensitively() {
        let ecr = pattern(json!({ "source": ["aws.ecr", "aws.ec2"] }));
        assert!(ecr.matches(&json!({ "source": "aws.ecr" })));
        assert!(ecr.matches(&json!({ "source": "aws.ec2" })));
        assert!(!ecr.matches(&json!({ "source": "AWS.ECR" })));
        assert!(!ecr.matches(&json!({ "source": "aws.ecr " })));
        assert!(!ecr.matches(&json!({ "other": "aws.ecr" })));
    }

    #[test]
    fn number_literals_compare_numerically() {
        let five = pattern(json!({ "n": [5] }));
        for event_value in [json!(5), json!(5.0), json!(5e0), json!(50e-1)] {
            assert!(five.matches(&json!({ "n": event_value })), "{event_value}");
        }
        assert!(!five.matches(&json!({ "n": 5.000001 })));
        assert!(matches(json!({ "n": [-0.5] }), json!({ "n": -5e-1 })));
        // Integers a double cannot hold compare exactly.
        let big = pattern(json!({ "n": [9007199254740993u64] }));
        assert!(big.matches(&json!({ "n": 9007199254740993u64 })));
        assert!(!big.matches(&json!({ "n": 9007199254740992u64 })));
    }

    #[test]
    fn strings_never_match_numbers_and_numbers_never_match_strings() {
        assert!(!matches(json!({ "n": ["5"] }), json!({ "n": 5 })));
        assert!(!matches(json!({ "n": [5] }), json!({ "n": "5" })));
        assert!(!matches(json!({ "n": ["true"] }), json!({ "n": true })));
        assert!(!matches(json!({ "n": [true] }), json!({ "n": "true" })));
    }

    #[test]
    fn booleans_and_null_match_only_themselves() {
        let null = pattern(json!({ "detail": { "responseElements": [null] } }));
        assert!(null.matches(&json!({ "detail": { "responseElements": null } })));
        assert!(!null.matches(&json!({ "detail": { "responseElements": "" } })));
        assert!(!null.matches(&json!({ "detail": { "responseElements": "null" } })));
        assert!(!null.matches(&json!({ "detail": {} })));

        let empty = pattern(json!({ "detail": { "eventVersion": [""] } }));
        assert!(empty.matches(&json!({ "detail": { "eventVersion": "" } })));
        assert!(!empty.matches(&json!({ "detail": { "eventVersion": null } })));

        let yes = pattern(json!({ "flag": [true] }));
        assert!(yes.matches(&json!({ "flag": true })));
        assert!(!yes.matches(&json!({ "flag": false })));
        assert!(!yes.matches(&json!({ "flag": 1 })));
    }

    #[test]
    fn exactly_compares_the_string_as_written() {
        let exact = on_field(json!({ "exactly": "::1" }));
        assert!(exact.matches(&json!({ "f": "::1" })));
        assert!(!exact.matches(&json!({ "f": "0::1" })));
        assert!(!exact.matches(&json!({ "f": 1 })));
    }

    #[test]
    fn address_literals_match_the_same_address_written_otherwise() {
        let loopback = pattern(json!({ "ip": ["::1"] }));
        assert!(loopback.matches(&json!({ "ip": "::1" })));
        assert!(loopback.matches(&json!({ "ip": "0:0:0:0:0:0:0:1" })));
        assert!(!loopback.matches(&json!({ "ip": "::2" })));
        let v4 = pattern(json!({ "ip": ["10.0.0.1"] }));
        assert!(v4.matches(&json!({ "ip": "10.0.0.1" })));
        assert!(v4.matches(&json!({ "ip": "::ffff:a00:1" })));
        assert!(!v4.matches(&json!({ "ip": "10.0.0.10" })));
        // Java reads leading zeros as decimal.
        assert!(v4.matches(&json!({ "ip": "010.000.000.001" })));
    }

    // --- string matchers ------------------------------------------------------------------------

    #[test]
    fn prefix_matches_the_start_of_strings_only() {
        let prod = on_field(json!({ "prefix": "prod/" }));
        assert!(prod.matches(&json!({ "f": "prod/api" })));
        assert!(prod.matches(&json!({ "f": "prod/" })));
        assert!(!prod.matches(&json!({ "f": "Prod/api" })));
        assert!(!prod.matches(&json!({ "f": "my-prod/api" })));
        assert!(!on_field(json!({ "prefix": "1" })).matches(&json!({ "f": 12 })));
        // An empty prefix matches any string, and still only strings.
        let any_string = on_field(json!({ "prefix": "" }));
        assert!(any_string.matches(&json!({ "f": "" })));
        assert!(!any_string.matches(&json!({ "f": 1 })));
    }

    #[test]
    fn prefix_and_suffix_can_ignore_case() {
        let eventb = pattern(
            json!({ "detail": { "service": [{ "prefix": { "equals-ignore-case": "EventB" } }] } }),
        );
        for service in ["EventBridge", "eventbridge", "EVENTBus", "eventb"] {
            assert!(
                eventb.matches(&json!({ "detail": { "service": service } })),
                "{service}"
            );
        }
        assert!(!eventb.matches(&json!({ "detail": { "service": "Event" } })));

        let png = on_field(json!({ "suffix": { "equals-ignore-case": ".png" } }));
        for name in ["a.png", "b.PNG", "c.PnG", ".png"] {
            assert!(png.matches(&json!({ "f": name })), "{name}");
        }
        assert!(!png.matches(&json!({ "f": "a.png.txt" })));
        assert!(!png.matches(&json!({ "f": "png" })));
        // Case mappings that change the length work at the end of the text too.
        let street = on_field(json!({ "suffix": { "equals-ignore-case": "straße" } }));
        assert!(street.matches(&json!({ "f": "HAUPTSTRASSE" })));
        assert!(street.matches(&json!({ "f": "Hauptstraße" })));
    }

    #[test]
    fn suffix_matches_the_end_of_strings() {
        let png = on_field(json!({ "suffix": ".png" }));
        assert!(png.matches(&json!({ "f": "image.png" })));
        assert!(!png.matches(&json!({ "f": "image.PNG" })));
        assert!(!png.matches(&json!({ "f": "image.png.bak" })));
    }

    #[test]
    fn equals_ignore_case_compares_whole_strings_through_unicode_case_mappings() {
        let running = on_field(json!({ "equals-ignore-case": "Running" }));
        assert!(running.matches(&json!({ "f": "running" })));
        assert!(running.matches(&json!({ "f": "RUNNING" })));
        assert!(!running.matches(&json!({ "f": "runnin" })));
        assert!(!running.matches(&json!({ "f": "running!" })));
        let street = on_field(json!({ "equals-ignore-case": "straße" }));
        assert!(street.matches(&json!({ "f": "STRASSE" })));
        assert!(street.matches(&json!({ "f": "Straße" })));
        assert!(!street.matches(&json!({ "f": "STRASE" })));
        assert!(on_field(json!({ "equals-ignore-case": "ÉTÉ" })).matches(&json!({ "f": "été" })));
    }

    #[test]
    fn wildcard_stars_match_any_run_of_characters() {
        let cases = [
            ("Simple*Service", "SimpleStorageService", true),
            ("Simple*Service", "SimpleService", true),
            ("Simple*Service", "SimpleStorage", false),
            ("*", "", true),
            ("*", "anything", true),
            ("*.png", "dir/a.png", true),
            ("*.png", "a.png.bak", false),
            ("dir/*", "dir/", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("*/bin/*.jar", "/usr/bin/tool.jar", true),
            ("é*ü", "éxyzü", true),
        ];
        for (wildcard, text, expected) in cases {
            let matcher = on_field(json!({ "wildcard": wildcard }));
            assert_eq!(
                matcher.matches(&json!({ "f": text })),
                expected,
                "{wildcard} vs {text}"
            );
        }
        assert!(!on_field(json!({ "wildcard": "*" })).matches(&json!({ "f": 1 })));
    }

    #[test]
    fn wildcard_escapes_stars_and_backslashes() {
        let star = on_field(json!({ "wildcard": "a\\*b" }));
        assert!(star.matches(&json!({ "f": "a*b" })));
        assert!(!star.matches(&json!({ "f": "axb" })));
        let backslash = on_field(json!({ "wildcard": "a\\\\*" }));
        assert!(backslash.matches(&json!({ "f": "a\\anything" })));
        assert!(!backslash.matches(&json!({ "f": "ab" })));
        // An escaped star next to a wildcard star is not two consecutive wildcards.
        let literal_then_any = on_field(json!({ "wildcard": "\\**" }));
        assert!(literal_then_any.matches(&json!({ "f": "*tail" })));
        assert!(!literal_then_any.matches(&json!({ "f": "tail" })));
    }

    /// Compares the greedy matcher with a naive recursive one on every short pattern and text.
    #[test]
    fn wildcard_matching_agrees_with_a_naive_matcher() {
        fn naive(pattern: &[char], text: &[char]) -> bool {
            match pattern.split_first() {
                None => text.is_empty(),
                Some(('*', rest)) => (0..=text.len()).any(|skip| naive(rest, &text[skip..])),
                Some((c, rest)) => text.first() == Some(c) && naive(rest, &text[1..]),
            }
        }
        fn words(alphabet: &[char], max_len: usize) -> Vec<String> {
            let mut all = vec![String::new()];
            let mut frontier = vec![String::new()];
            for _ in 0..max_len {
                let mut next = Vec::new();
                for word in &frontier {
                    for c in alphabet {
                        next.push(format!("{word}{c}"));
                    }
                }
                all.extend(next.iter().cloned());
                frontier = next;
            }
            all
        }
        let texts = words(&['a', 'b'], 6);
        for wildcard_text in words(&['a', 'b', '*'], 5) {
            if wildcard_text.contains("**") {
                continue;
            }
            let Ok(wildcard) = Wildcard::parse(&wildcard_text) else {
                panic!("{wildcard_text} should parse");
            };
            let pattern_chars: Vec<char> = wildcard_text.chars().collect();
            for text in &texts {
                let text_chars: Vec<char> = text.chars().collect();
                assert_eq!(
                    wildcard.matches(text),
                    naive(&pattern_chars, &text_chars),
                    "{wildcard_text} vs {text}"
                );
            }
        }
    }

    #[test]
    fn wildcard_matching_does_not_backtrack_on_adversarial_input() {
        let long_text = "a".repeat(200_000);
        let many_stars = on_field(json!({ "wildcard": format!("{}b", "*a".repeat(40)) }));
        let long_piece = on_field(json!({ "wildcard": format!("*{}b*", "a".repeat(1_000)) }));
        let started = std::time::Instant::now();
        assert!(!many_stars.matches(&json!({ "f": long_text })));
        assert!(!long_piece.matches(&json!({ "f": long_text })));
        assert!(many_stars.matches(&json!({ "f": format!("{long_text}b") })));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    // --- anything-but ---------------------------------------------------------------------------

    #[test]
    fn anything_but_excludes_one_string_or_a_list() {
        let not_initializing = on_field(json!({ "anything-but": "initializing" }));
        assert!(not_initializing.matches(&json!({ "f": "running" })));
        assert!(!not_initializing.matches(&json!({ "f": "initializing" })));
        let not_stopped = on_field(json!({ "anything-but": ["stopped", "overloaded"] }));
        assert!(not_stopped.matches(&json!({ "f": "running" })));
        assert!(!not_stopped.matches(&json!({ "f": "stopped" })));
        assert!(!not_stopped.matches(&json!({ "f": "overloaded" })));
        // An array in the event matches when any element is not excluded.
        assert!(not_stopped.matches(&json!({ "f": ["stopped", "running"] })));
        assert!(!not_stopped.matches(&json!({ "f": ["stopped", "overloaded"] })));
    }

    #[test]
    fn anything_but_excludes_numbers_numerically() {
        let not_round = on_field(json!({ "anything-but": [100, 200, 300] }));
        assert!(not_round.matches(&json!({ "f": 101 })));
        assert!(not_round.matches(&json!({ "f": 100.5 })));
        assert!(!not_round.matches(&json!({ "f": 100 })));
        assert!(!not_round.matches(&json!({ "f": 2e2 })));
        assert!(!on_field(json!({ "anything-but": 123 })).matches(&json!({ "f": 123.0 })));
    }

    #[test]
    fn anything_but_matches_values_of_another_type_and_never_an_absent_field() {
        let not_latest = on_field(json!({ "anything-but": ["latest"] }));
        for other_type in [json!(5), json!(true), json!(null)] {
            assert!(
                not_latest.matches(&json!({ "f": other_type })),
                "{other_type}"
            );
        }
        let not_five = on_field(json!({ "anything-but": 5 }));
        assert!(not_five.matches(&json!({ "f": "5" })));
        assert!(!not_latest.matches(&json!({ "g": "x" })));
        assert!(!not_latest.matches(&json!({ "f": [] })));
        assert!(!not_latest.matches(&json!({ "f": { "nested": "x" } })));
    }

    #[test]
    fn anything_but_takes_prefixes_suffixes_ignore_case_and_wildcards() {
        let not_us = on_field(json!({ "anything-but": { "prefix": "us-" } }));
        assert!(not_us.matches(&json!({ "f": "eu-west-1" })));
        assert!(!not_us.matches(&json!({ "f": "us-east-1" })));
        assert!(not_us.matches(&json!({ "f": 1 })));

        let not_init_or_error =
            on_field(json!({ "anything-but": { "prefix": ["init", "error"] } }));
        assert!(!not_init_or_error.matches(&json!({ "f": "errored" })));
        assert!(not_init_or_error.matches(&json!({ "f": "ok" })));

        let not_png = on_field(json!({ "anything-but": { "suffix": [".png", ".jpg"] } }));
        assert!(not_png.matches(&json!({ "f": "a.gif" })));
        assert!(!not_png.matches(&json!({ "f": "a.jpg" })));

        let not_stopped = on_field(
            json!({ "anything-but": { "equals-ignore-case": ["Stopped", "OverLoaded"] } }),
        );
        assert!(!not_stopped.matches(&json!({ "f": "STOPPED" })));
        assert!(!not_stopped.matches(&json!({ "f": "overloaded" })));
        assert!(not_stopped.matches(&json!({ "f": "running" })));

        let not_lib = on_field(json!({ "anything-but": { "wildcard": "*/lib/*" } }));
        assert!(not_lib.matches(&json!({ "f": "/usr/bin/tool" })));
        assert!(!not_lib.matches(&json!({ "f": "/usr/lib/x.so" })));
    }

    // --- numeric, exists, cidr ------------------------------------------------------------------

    #[test]
    fn numeric_compares_with_one_or_two_bounds() {
        let cases = [
            (json!([">", 0]), json!(0.0001), true),
            (json!([">", 0]), json!(0), false),
            (json!([">=", 0]), json!(0), true),
            (json!(["<", 10]), json!(9.99), true),
            (json!(["<", 10]), json!(10), false),
            (json!(["<=", 10]), json!(10), true),
            (json!(["=", 301.8]), json!(3.018e2), true),
            (json!(["=", 5]), json!(5.0), true),
            (json!(["=", 5]), json!(6), false),
            (json!([">", 0, "<=", 5]), json!(5), true),
            (json!([">", 0, "<=", 5]), json!(0), false),
            (json!([">", 0, "<=", 5]), json!(5.5), false),
            (json!([">=", -1e300, "<", 1e300]), json!(-1e300), true),
            (json!([">=", 1.5, "<", 2.5]), json!(2.5), false),
        ];
        for (comparisons, value, expected) in cases {
            let range = on_field(json!({ "numeric": comparisons }));
            assert_eq!(
                range.matches(&json!({ "f": value })),
                expected,
                "{comparisons} vs {value}"
            );
        }
    }

    #[test]
    fn numeric_matches_numbers_only() {
        let positive = on_field(json!({ "numeric": [">", 0] }));
        for not_a_number in [json!("5"), json!(true), json!(null), json!({ "v": 5 })] {
            assert!(
                !positive.matches(&json!({ "f": not_a_number })),
                "{not_a_number}"
            );
        }
        assert!(positive.matches(&json!({ "f": [-1, "7", 3] })));
    }

    #[test]
    fn exists_tells_present_values_from_absent_fields() {
        let present = on_field(json!({ "exists": true }));
        let absent = on_field(json!({ "exists": false }));
        let cases = [
            (json!({ "f": "x" }), true),
            (json!({ "f": 0 }), true),
            (json!({ "f": null }), true),
            (json!({ "f": [null] }), true),
            (json!({ "f": [[1]] }), true),
            (json!({ "g": "x" }), false),
            (json!({ "f": [] }), false),
            (json!({ "f": [[]] }), false),
            (json!({ "f": {} }), false),
            // Exists looks at values, not at intermediate objects.
            (json!({ "f": { "c1": 100 } }), false),
        ];
        for (event, has_value) in cases {
            assert_eq!(present.matches(&event), has_value, "exists true on {event}");
            assert_eq!(
                absent.matches(&event),
                !has_value,
                "exists false on {event}"
            );
        }
    }

    #[test]
    fn cidr_matches_ipv4_and_ipv6_addresses_in_the_block() {
        let private = on_field(json!({ "cidr": "10.0.0.0/24" }));
        assert!(private.matches(&json!({ "f": "10.0.0.33" })));
        assert!(private.matches(&json!({ "f": "10.0.0.255" })));
        assert!(!private.matches(&json!({ "f": "10.0.1.0" })));
        assert!(!private.matches(&json!({ "f": "2001:db8::1" })));
        // Host bits in the block are ignored, as event-ruler masks them.
        assert!(on_field(json!({ "cidr": "10.0.0.77/24" })).matches(&json!({ "f": "10.0.0.1" })));

        let documentation = on_field(json!({ "cidr": "2001:db8::/32" }));
        assert!(documentation.matches(&json!({ "f": "2001:db8:ffff::1" })));
        assert!(documentation.matches(&json!({ "f": "2001:0DB8:0000:0000:0000:0000:0000:0001" })));
        assert!(!documentation.matches(&json!({ "f": "2001:db9::1" })));
        assert!(!documentation.matches(&json!({ "f": "10.0.0.1" })));
    }

    #[test]
    fn cidr_ignores_values_that_are_not_addresses() {
        let private = on_field(json!({ "cidr": "10.0.0.0/8" }));
        for not_an_address in [
            json!("10.0.0"),
            json!("10.0.0.1/32"),
            json!("10.0.0.256"),
            json!("10.0.0.1.5"),
            json!("::ffff:10.0.0.1"),
            json!("host.10.0.0.1"),
            json!(" 10.0.0.1"),
            json!(10),
            json!(null),
        ] {
            assert!(
                !private.matches(&json!({ "f": not_an_address })),
                "{not_an_address}"
            );
        }
    }

    // --- event structure ------------------------------------------------------------------------

    #[test]
    fn a_field_matches_when_any_element_of_an_event_array_matches() {
        let instance = pattern(json!({
            "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-1"]
        }));
        assert!(instance.matches(&json!({
            "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-0",
                          "arn:aws:ec2:us-east-1:123456789012:instance/i-1"]
        })));
        assert!(!instance.matches(&json!({ "resources": [] })));
        // Nested arrays are looked through.
        assert!(matches(
            json!({ "f": [3] }),
            json!({ "f": [[1, 2], [[3]]] })
        ));
    }

    #[test]
    fn conditions_inside_array_objects_must_hold_in_the_same_element() {
        let anna_smith =
            pattern(json!({ "employees": { "firstName": ["Anna"], "lastName": ["Smith"] } }));
        assert!(anna_smith.matches(&json!({ "employees": [
            { "firstName": "John", "lastName": "Doe" },
            { "firstName": "Anna", "lastName": "Smith" }
        ] })));
        assert!(!anna_smith.matches(&json!({ "employees": [
            { "firstName": "Anna", "lastName": "Doe" },
            { "firstName": "Peter", "lastName": "Smith" }
        ] })));
        // Arrays of arrays of objects too.
        assert!(anna_smith.matches(&json!({ "employees": [[
            { "firstName": "Peter" }, { "firstName": "Anna", "lastName": "Smith" }
        ]] })));
        // A single-field condition needs just one element.
        assert!(matches(
            json!({ "employees": { "firstName": ["Anna"] } }),
            json!({ "employees": [{ "firstName": "John" }, { "firstName": "Anna" }] })
        ));
    }

    #[test]
    fn exists_false_inside_array_objects_is_judged_in_the_selected_element() {
        let no_b = pattern(json!({ "a": { "b": [{ "exists": false }] } }));
        // Nothing else selects an element, so no element may have b.
        assert!(!no_b.matches(&json!({ "a": [{ "b": 1 }, { "c": 2 }] })));
        assert!(no_b.matches(&json!({ "a": [{ "c": 1 }, { "c": 2 }] })));
        assert!(no_b.matches(&json!({ "a": [] })));
        assert!(no_b.matches(&json!({ "a": "plain" })));

        let c_without_b = pattern(json!({ "a": { "b": [{ "exists": false }], "c": ["y"] } }));
        assert!(c_without_b.matches(&json!({ "a": [{ "b": 1, "c": "x" }, { "c": "y" }] })));
        assert!(!c_without_b.matches(&json!({ "a": [{ "b": 1, "c": "y" }] })));
        assert!(!c_without_b.matches(&json!({ "a": [{ "c": "x" }] })));
    }

    #[test]
    fn nested_objects_descend_into_the_event() {
        let state = pattern(
            json!({ "detail": { "state": { "status": ["running"] } }, "source": ["aws.ec2"] }),
        );
        assert!(state.matches(
            &json!({ "source": "aws.ec2", "detail": { "state": { "status": "running" } } })
        ));
        assert!(!state.matches(
            &json!({ "source": "aws.ec2", "detail": { "state": { "status": "stopped" } } })
        ));
        assert!(!state.matches(
            &json!({ "source": "aws.ecr", "detail": { "state": { "status": "running" } } })
        ));
        // Paths are structural: a dotted key is a different field.
        assert!(!state
            .matches(&json!({ "source": "aws.ec2", "detail": { "state.status": "running" } })));
    }

    #[test]
    fn missing_fields_match_no_value_matcher() {
        let matchers = [
            json!("x"),
            json!(1),
            json!(true),
            json!(null),
            json!({ "prefix": "" }),
            json!({ "suffix": "" }),
            json!({ "equals-ignore-case": "x" }),
            json!({ "anything-but": "x" }),
            json!({ "anything-but": { "prefix": "x" } }),
            json!({ "numeric": [">", 0] }),
            json!({ "wildcard": "*" }),
            json!({ "cidr": "0.0.0.0/0" }),
            json!({ "exists": true }),
        ];
        for matcher in matchers {
            let on_f = on_field(matcher.clone());
            assert!(
                !on_f.matches(&json!({ "g": "x" })),
                "{matcher} on a missing field"
            );
            assert!(!on_f.matches(&json!({})), "{matcher} on an empty event");
        }
    }

    #[test]
    fn a_nested_pattern_meets_a_plain_value_or_a_missing_object() {
        let state = pattern(json!({ "detail": { "state": ["running"] } }));
        assert!(!state.matches(&json!({ "detail": "running" })));
        assert!(!state.matches(&json!({ "source": "x" })));
        let no_state = pattern(json!({ "detail": { "state": [{ "exists": false }] } }));
        assert!(no_state.matches(&json!({ "detail": "running" })));
        assert!(no_state.matches(&json!({ "source": "x" })));
        assert!(!no_state.matches(&json!({ "detail": { "state": "running" } })));
    }

    #[test]
    fn a_leaf_pattern_meets_an_object() {
        assert!(!matches(
            json!({ "detail": ["x"] }),
            json!({ "detail": { "a": "x" } })
        ));
        assert!(!matches(
            json!({ "detail": [{ "anything-but": "x" }] }),
            json!({ "detail": { "a": "y" } })
        ));
    }

    #[test]
    fn events_that_are_not_objects_match_nothing() {
        let absent = pattern(json!({ "f": [{ "exists": false }] }));
        assert!(absent.matches(&json!({})));
        for event in [json!(null), json!([]), json!("f"), json!([{ "g": 1 }])] {
            assert!(!absent.matches(&event), "{event}");
        }
    }

    // --- $or ------------------------------------------------------------------------------------

    #[test]
    fn or_matches_when_any_branch_matches() {
        let metric = pattern(json!({
            "source": ["aws.cloudwatch"],
            "$or": [
                { "metricName": ["CPUUtilization", "ReadLatency"] },
                { "namespace": ["AWS/EC2", "AWS/ES"] }
            ]
        }));
        let read_latency = json!({ "source": "aws.cloudwatch", "metricName": "ReadLatency" });
        assert!(metric.matches(&read_latency));
        assert!(metric.matches(&json!({ "source": "aws.cloudwatch", "namespace": "AWS/ES" })));
        assert!(!metric.matches(&json!({ "source": "aws.cloudwatch", "namespace": "AWS/S3" })));
        assert!(!metric.matches(&json!({ "source": "aws.ec2", "metricName": "ReadLatency" })));
    }

    #[test]
    fn or_nests_and_appears_inside_objects() {
        let nested = pattern(json!({
            "source": ["aws.cloudwatch"],
            "$or": [
                { "metricName": ["CPUUtilization"] },
                {
                    "metricType": ["MetricType"],
                    "$or": [{ "metricId": [1234] }, { "spaceId": [1000] }]
                }
            ],
            "detail": {
                "$or": [{ "state": ["ALARM"] }, { "previous": { "state": ["ALARM"] } }]
            }
        }));
        let event = |top: Value, detail: Value| {
            let mut event = json!({ "source": "aws.cloudwatch", "detail": detail });
            if let (Some(event), Value::Object(top)) = (event.as_object_mut(), top) {
                event.extend(top);
            }
            event
        };
        let alarm = json!({ "state": "ALARM" });
        let cpu = json!({ "metricName": "CPUUtilization" });
        let space = |id: u32| json!({ "metricType": "MetricType", "spaceId": id });
        assert!(nested.matches(&event(cpu.clone(), alarm.clone())));
        assert!(nested.matches(&event(space(1000), alarm.clone())));
        assert!(!nested.matches(&event(space(1001), alarm.clone())));
        assert!(!nested.matches(&event(json!({ "spaceId": 1000 }), alarm)));
        let was_alarm = json!({ "state": "OK", "previous": { "state": "ALARM" } });
        assert!(nested.matches(&event(cpu.clone(), was_alarm)));
        assert!(!nested.matches(&event(cpu, json!({ "state": "OK" }))));
    }

    #[test]
    fn or_branches_and_their_siblings_share_array_elements() {
        let shared = pattern(json!({
            "a": { "d": ["z"] },
            "$or": [{ "a": { "b": ["x"] } }, { "e": ["y"] }]
        }));
        assert!(shared.matches(&json!({ "a": [{ "b": "x", "d": "z" }] })));
        assert!(!shared.matches(&json!({ "a": [{ "b": "x" }, { "d": "z" }] })));
        assert!(shared.matches(&json!({ "a": [{ "d": "z" }], "e": "y" })));
    }

    #[test]
    fn a_field_constrained_at_the_top_and_in_an_or_branch_must_satisfy_both() {
        let both = pattern(json!({ "a": ["x"], "$or": [{ "a": ["y"] }, { "b": ["z"] }] }));
        assert!(both.matches(&json!({ "a": "x", "b": "z" })));
        assert!(!both.matches(&json!({ "a": "y" })));
        assert!(both.matches(&json!({ "a": ["x", "y"] })));
    }

    // --- validation -----------------------------------------------------------------------------

    #[test]
    fn refuses_patterns_that_are_not_objects_or_are_empty() {
        assert_refused(json!(["aws.ecr"]), "", &["JSON object", "not an array"]);
        assert_refused(json!("source"), "", &["JSON object", "not a string"]);
        assert_refused(json!(null), "", &["JSON object"]);
        assert_refused(json!({}), "", &["at least one field", "empty pattern"]);
        assert_refused(json!({ "detail": {} }), "detail", &["empty object"]);
        assert_refused(
            json!({ "detail": { "a": { "b": {} } } }),
            "detail.a.b",
            &["empty object"],
        );
    }

    #[test]
    fn refuses_fields_that_are_neither_arrays_nor_objects() {
        assert_refused(
            json!({ "source": "aws.ecr" }),
            "source",
            &["must be an array", "not a string"],
        );
        assert_refused(
            json!({ "detail": { "count": 5 } }),
            "detail.count",
            &["must be an array", "not a number"],
        );
        assert_refused(
            json!({ "detail": { "x": null } }),
            "detail.x",
            &["must be an array", "not null"],
        );
        // A matcher written without its array gets a hint.
        assert_refused(
            json!({ "source": { "prefix": "aws." } }),
            "source.prefix",
            &["must be an array", "put it in the field's array"],
        );
    }

    #[test]
    fn refuses_empty_arrays_and_nested_arrays() {
        assert_refused(
            json!({ "source": [] }),
            "source",
            &["empty array", "at least one value"],
        );
        assert_refused(
            json!({ "source": ["a", ["b"]] }),
            "source[1]",
            &["cannot be nested"],
        );
    }

    #[test]
    fn refuses_unknown_matchers_and_matcher_objects_without_exactly_one_key() {
        assert_refused(
            json!({ "detail": { "repository-name": [{ "prefx": "prod/" }] } }),
            "detail.repository-name[0].prefx",
            &["\"prefx\" is not a matcher", "prefix, suffix"],
        );
        assert_refused(
            json!({ "f": [{ "regex": "x.*" }] }),
            "f[0].regex",
            &["not a matcher"],
        );
        assert_refused(
            json!({ "f": [{ "exactly": 1 }] }),
            "f[0].exactly",
            &["exactly must be a string"],
        );
        assert_refused(json!({ "f": [{}] }), "f[0]", &["empty matcher", "prefix"]);
        assert_refused(
            json!({ "f": ["a", { "prefix": "a", "suffix": "b" }] }),
            "f[1]",
            &["2 keys", "prefix", "suffix", "exactly one"],
        );
    }

    #[test]
    fn refuses_matcher_values_of_the_wrong_type() {
        let cases = [
            (
                json!({ "prefix": 5 }),
                "f[0].prefix",
                vec!["prefix takes a string", "not a number"],
            ),
            (
                json!({ "prefix": { "equals-ignore-case": 5 } }),
                "f[0].prefix.equals-ignore-case",
                vec!["must be a string"],
            ),
            (
                json!({ "prefix": { "ignore-case": "a" } }),
                "f[0].prefix",
                vec!["equals-ignore-case"],
            ),
            (
                json!({ "suffix": ["a"] }),
                "f[0].suffix",
                vec!["suffix takes a string", "not an array"],
            ),
            (
                json!({ "equals-ignore-case": ["a"] }),
                "f[0].equals-ignore-case",
                vec!["must be a string"],
            ),
            (
                json!({ "exists": "true" }),
                "f[0].exists",
                vec!["true or false", "not a string"],
            ),
            (
                json!({ "wildcard": 1 }),
                "f[0].wildcard",
                vec!["must be a string"],
            ),
            (
                json!({ "cidr": ["10.0.0.0/8"] }),
                "f[0].cidr",
                vec!["must be a string"],
            ),
            (
                json!({ "numeric": 5 }),
                "f[0].numeric",
                vec!["one comparison", "not a number"],
            ),
        ];
        for (matcher, path, words) in cases {
            assert_refused(json!({ "f": [matcher] }), path, &words);
        }
        // The path names the field the way the brief's example does.
        assert_refused(
            json!({ "detail": { "repository-name": [{ "prefix": 5 }] } }),
            "detail.repository-name[0].prefix",
            &["prefix takes a string"],
        );
    }

    #[test]
    fn refuses_malformed_numeric_comparisons() {
        let cases = [
            (json!([]), "f[0].numeric", vec!["has 0 terms"]),
            (json!([">"]), "f[0].numeric", vec!["has 1 terms"]),
            (
                json!([">", 0, "<", 5, "<", 6]),
                "f[0].numeric",
                vec!["has 6 terms"],
            ),
            (
                json!(["!=", 5]),
                "f[0].numeric[0]",
                vec!["\"!=\" is not a numeric operator", "<="],
            ),
            (
                json!([5, ">"]),
                "f[0].numeric[0]",
                vec!["expected an operator", "not a number"],
            ),
            (
                json!([">", "5"]),
                "f[0].numeric[1]",
                vec!["must be a JSON number", "not a string"],
            ),
            (
                json!([">", 0, ">", 5]),
                "f[0].numeric[2]",
                vec!["second lower bound"],
            ),
            (
                json!(["<", 0, "<=", 5]),
                "f[0].numeric[2]",
                vec!["second upper bound"],
            ),
            (
                json!(["<", 5, ">", 0]),
                "f[0].numeric[0]",
                vec!["lower bound", "must come first"],
            ),
            (
                json!(["=", 5, "<", 6]),
                "f[0].numeric[0]",
                vec!["= stands alone"],
            ),
            (
                json!([">", 0, "=", 6]),
                "f[0].numeric[2]",
                vec!["= stands alone"],
            ),
            (
                json!([">", 10, "<", 5]),
                "f[0].numeric[0]",
                vec!["lower bound 10 must be less than the upper bound 5"],
            ),
            (
                json!([">=", 5, "<=", 5]),
                "f[0].numeric[0]",
                vec!["must be less than"],
            ),
            (
                json!([">", 9007199254740993u64]),
                "f[0].numeric[1]",
                vec!["cannot be held exactly"],
            ),
        ];
        for (comparisons, path, words) in cases {
            assert_refused(json!({ "f": [{ "numeric": comparisons }] }), path, &words);
        }
    }

    #[test]
    fn refuses_malformed_anything_but() {
        let cases = [
            (
                json!(true),
                "f[0].anything-but",
                vec!["anything-but takes a string", "not a boolean"],
            ),
            (
                json!(null),
                "f[0].anything-but",
                vec!["anything-but takes a string"],
            ),
            (json!([]), "f[0].anything-but", vec!["empty list"]),
            (
                json!(["a", 1]),
                "f[0].anything-but[1]",
                vec!["a number in a list that starts with a string"],
            ),
            (
                json!([1, null]),
                "f[0].anything-but[1]",
                vec!["is null; anything-but takes"],
            ),
            (
                json!([null, "a"]),
                "f[0].anything-but[0]",
                vec!["is null; anything-but takes"],
            ),
            (
                json!([9007199254740993u64]),
                "f[0].anything-but[0]",
                vec!["cannot be held exactly"],
            ),
            (
                json!({ "numeric": [">", 1] }),
                "f[0].anything-but.numeric",
                vec!["cannot be used inside anything-but"],
            ),
            (
                json!({ "prefix": "a", "suffix": "b" }),
                "f[0].anything-but",
                vec!["exactly one key"],
            ),
            (
                json!({ "prefix": "" }),
                "f[0].anything-but.prefix",
                vec!["empty prefix"],
            ),
            (
                json!({ "suffix": ["a", ""] }),
                "f[0].anything-but.suffix[1]",
                vec!["empty suffix"],
            ),
            (
                json!({ "prefix": [] }),
                "f[0].anything-but.prefix",
                vec!["non-empty list of strings"],
            ),
            (
                json!({ "equals-ignore-case": ["a", 1] }),
                "f[0].anything-but.equals-ignore-case[1]",
                vec!["this entry is a number"],
            ),
            (
                json!({ "wildcard": ["ok*", "a**"] }),
                "f[0].anything-but.wildcard[1]",
                vec!["consecutive"],
            ),
        ];
        for (value, path, words) in cases {
            assert_refused(json!({ "f": [{ "anything-but": value }] }), path, &words);
        }
    }

    #[test]
    fn refuses_malformed_wildcards() {
        let cases = [
            ("a**b", vec!["two consecutive `*` at character 2"]),
            ("**", vec!["consecutive"]),
            ("a\\b", vec!["backslash at character 1", "escapes nothing"]),
            ("trailing\\", vec!["backslash at character 8"]),
        ];
        for (wildcard, words) in cases {
            assert_refused(
                json!({ "f": [{ "wildcard": wildcard }] }),
                "f[0].wildcard",
                &words,
            );
        }
    }

    #[test]
    fn refuses_malformed_cidr_blocks() {
        let cases = [
            ("10.0.0.0", vec!["no /mask"]),
            (
                "10.0.0/8",
                vec!["\"10.0.0\" is not an IPv4 or IPv6 address"],
            ),
            ("foo/8", vec!["is not an IPv4 or IPv6 address"]),
            ("10.0.0.0/eight", vec!["not a number of bits"]),
            ("10.0.0.0/-1", vec!["not a number of bits"]),
            ("10.0.0.0/8/8", vec!["not a number of bits"]),
            (
                "10.0.0.0/33",
                vec!["/33 is longer than an IPv4 address", "below /32"],
            ),
            ("10.0.0.1/32", vec!["below /32", "[\"10.0.0.1\"]"]),
            ("2001:db8::/128", vec!["IPv6 block takes a mask below /128"]),
            (
                "2001:db8::/222",
                vec!["/222 is longer than an IPv6 address"],
            ),
            ("2001:db8::/256", vec!["not a number of bits"]),
            (
                "::ffff:10.0.0.0/104",
                vec!["is not an IPv4 or IPv6 address"],
            ),
        ];
        for (block, words) in cases {
            assert_refused(json!({ "f": [{ "cidr": block }] }), "f[0].cidr", &words);
        }
    }

    #[test]
    fn refuses_malformed_or() {
        assert_refused(
            json!({ "$or": { "a": ["x"] } }),
            "$or",
            &["array of two or more objects", "not an object"],
        );
        assert_refused(
            json!({ "$or": [{ "a": ["x"] }] }),
            "$or",
            &["this one has 1"],
        );
        assert_refused(json!({ "$or": [] }), "$or", &["this one has 0"]);
        assert_refused(
            json!({ "$or": [{ "a": ["x"] }, ["b"]] }),
            "$or[1]",
            &["this entry is an array"],
        );
        assert_refused(
            json!({ "$or": [{ "a": ["x"] }, {}] }),
            "$or[1]",
            &["empty object"],
        );
        assert_refused(
            json!({ "detail": { "$or": [{ "a": ["x"] }, { "b": [] }] } }),
            "detail.$or[1].b",
            &["empty array"],
        );
    }

    #[test]
    fn refuses_matcher_keywords_as_field_names_inside_or() {
        assert_refused(
            json!({ "$or": [{ "numeric": [">", 1] }, { "prefix": ["a"] }] }),
            "$or[0].numeric",
            &["matcher keyword", "cannot be a field name inside $or"],
        );
        assert_refused(
            json!({ "$or": [{ "a": ["x"] }, { "detail": { "exists": [true] } }] }),
            "$or[1].detail.exists",
            &["matcher keyword"],
        );
        // Outside $or such names are ordinary fields.
        assert!(matches(
            json!({ "detail": { "prefix": ["a"] } }),
            json!({ "detail": { "prefix": "a" } })
        ));
    }

    #[test]
    fn refuses_patterns_too_deep_or_too_large() {
        let mut deep = json!(["x"]);
        for _ in 0..MAX_DEPTH {
            deep = json!({ "a": deep });
        }
        assert!(
            EventPattern::parse(&deep).is_ok(),
            "{MAX_DEPTH} levels are allowed"
        );
        let too_deep = json!({ "a": deep });
        let error = EventPattern::parse(&too_deep).expect_err("17 levels");
        assert!(error.message.contains("more than 16 levels"), "{error}");
        assert_eq!(error.path, vec!["a"; MAX_DEPTH].join("."));

        let values: Vec<Value> = (0..MAX_MATCH_VALUES).map(|n| json!(n)).collect();
        assert!(EventPattern::parse(&json!({ "f": values })).is_ok());
        assert_refused(
            json!({ "f": values, "g": ["one more"] }),
            "g[0]",
            &["more than 2048 match values"],
        );
        let excluded: Vec<Value> = (0..MAX_MATCH_VALUES)
            .map(|n| json!(format!("v{n}")))
            .collect();
        assert_refused(
            json!({ "f": ["x", { "anything-but": excluded }] }),
            "f[1].anything-but",
            &["more than 2048"],
        );
    }

    #[test]
    fn refuses_or_nesting_that_combines_into_too_many_alternatives() {
        // Four sibling fields, each with a $or of six branches: 6^4 = 1296 alternatives.
        let six_way = json!({ "$or": [
            { "a": [1] }, { "b": [1] }, { "c": [1] }, { "d": [1] }, { "e": [1] }, { "g": [1] }
        ] });
        let pattern_value = json!({ "w": six_way, "x": six_way, "y": six_way, "z": six_way });
        assert_refused(pattern_value, "", &["more than 1024 alternatives"]);
        let fine = json!({ "w": six_way, "x": six_way, "y": six_way });
        assert!(EventPattern::parse(&fine).is_ok());
    }

    #[test]
    fn errors_display_the_path_then_the_message() {
        let error = PatternError {
            path: "detail.x[0]".into(),
            message: "is wrong".into(),
        };
        assert_eq!(error.to_string(), "detail.x[0]: is wrong");
        let top = PatternError {
            path: String::new(),
            message: "is wrong".into(),
        };
        assert_eq!(top.to_string(), "is wrong");
    }

    #[test]
    fn parsing_and_matching_odd_inputs_never_panics() {
        let odd_values = [
            json!(null),
            json!([]),
            json!({}),
            json!(""),
            json!("\\"),
            json!(-0.0),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1e308),
            json!([[[]]]),
            json!({ "": [""] }),
            json!({ "$or": null }),
            json!("é\u{10400}ß"),
        ];
        let keys = [
            "prefix",
            "suffix",
            "equals-ignore-case",
            "anything-but",
            "exists",
            "numeric",
            "wildcard",
            "cidr",
            "",
            "$or",
        ];
        let mut accepted = Vec::new();
        for key in keys {
            for value in &odd_values {
                let candidates = [
                    json!({ "f": [{ key: value }] }),
                    json!({ "f": { key: value } }),
                    json!({ key: value }),
                    json!({ "f": [{ "anything-but": { key: value } }] }),
                    json!({ "f": [{ "prefix": { key: value } }] }),
                ];
                for candidate in candidates {
                    if let Ok(parsed) = EventPattern::parse(&candidate) {
                        accepted.push(parsed);
                    }
                }
            }
        }
        assert!(!accepted.is_empty());
        for parsed in &accepted {
            for event in &odd_values {
                parsed.matches(&json!({ "f": event }));
                parsed.matches(event);
            }
        }
    }

    #[test]
    fn parsed_patterns_compare_equal_when_built_from_the_same_json() {
        let value = json!({ "source": ["aws.ecr"], "detail": { "n": [{ "numeric": [">", 1] }] } });
        assert_eq!(pattern(value.clone()), pattern(value));
        assert_ne!(
            pattern(json!({ "a": ["x"] })),
            pattern(json!({ "a": ["y"] }))
        );
    }
}
