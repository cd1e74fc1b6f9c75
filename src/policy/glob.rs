//! IAM-style patterns: `*` matches any run of characters (including `/` and nothing), `?` exactly
//! one; with policy version `2012-10-17`, `${key}` policy variables are substituted from the
//! request (`${*}`, `${?}` and `${$}` are the literal characters).

use super::context::RequestContext;
use super::key::ConditionKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Star,
    One,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Tok(Tok),
    Var(ConditionKey),
}

/// A compiled pattern. With `wildcards` off, `*` and `?` are literal (as for `StringEquals`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    parts: Vec<Part>,
}

impl Pattern {
    /// Compiles `s`; `variables` enables `${...}` substitution. The error is a sentence fragment
    /// naming the problem (the caller adds the statement and field).
    pub(crate) fn parse(s: &str, wildcards: bool, variables: bool) -> Result<Pattern, String> {
        let mut parts = Vec::with_capacity(s.len());
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            if variables && rest.starts_with("${") {
                let Some(end) = rest.find('}') else {
                    return Err(format!("has an unterminated policy variable in \"{s}\""));
                };
                let inner = rest[2..end].trim();
                let part = match inner {
                    "*" => Part::Tok(Tok::Lit('*')),
                    "?" => Part::Tok(Tok::Lit('?')),
                    "$" => Part::Tok(Tok::Lit('$')),
                    _ => match ConditionKey::parse(inner) {
                        Some(key) => Part::Var(key),
                        None => {
                            return Err(format!(
                                "uses the unsupported policy variable \"${{{inner}}}\"; supported \
                                 variables are {}",
                                ConditionKey::supported_list()
                            ))
                        }
                    },
                };
                parts.push(part);
                rest = &rest[end + 1..];
                continue;
            }
            let tok = match c {
                '*' if wildcards => Tok::Star,
                '?' if wildcards => Tok::One,
                c => Tok::Lit(c),
            };
            parts.push(Part::Tok(tok));
            rest = &rest[c.len_utf8()..];
        }
        Ok(Pattern { parts })
    }

    /// True if the pattern is nothing but `*` wildcards (so it matches every string).
    pub(crate) fn matches_everything(&self) -> bool {
        !self.parts.is_empty() && self.parts.iter().all(|p| *p == Part::Tok(Tok::Star))
    }

    /// The characters written literally (not wildcards, not variables), for syntax checks.
    pub(crate) fn literal_chars(&self) -> impl Iterator<Item = char> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Tok(Tok::Lit(c)) => Some(*c),
            _ => None,
        })
    }

    /// Matches `text`, substituting variables from `ctx`. A variable whose key the request lacks
    /// makes the pattern match nothing (IAM semantics).
    pub(crate) fn is_match(&self, text: &str, ctx: &RequestContext, fold_case: bool) -> bool {
        let mut toks = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            match part {
                Part::Tok(t) => toks.push(*t),
                Part::Var(key) => match ctx.key_string(*key) {
                    Some(value) => toks.extend(value.chars().map(Tok::Lit)),
                    None => return false,
                },
            }
        }
        let text: Vec<char> = text.chars().collect();
        glob_match(&toks, &text, fold_case)
    }
}

fn chars_eq(a: char, b: char, fold_case: bool) -> bool {
    a == b || (fold_case && a.to_lowercase().eq(b.to_lowercase()))
}

/// Linear-time wildcard matching with single-star backtracking.
fn glob_match(pattern: &[Tok], text: &[char], fold_case: bool) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Tok::Star) => {
                backtrack = Some((p, t));
                p += 1;
                continue;
            }
            Some(Tok::One) => {
                p += 1;
                t += 1;
                continue;
            }
            Some(Tok::Lit(c)) if chars_eq(*c, text[t], fold_case) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match backtrack {
            Some((star, from)) => {
                p = star + 1;
                t = from + 1;
                backtrack = Some((star, from + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|tok| *tok == Tok::Star)
}

/// Plain glob match without variables (used for action names, compiled at parse time).
pub(crate) fn simple_match(pattern: &str, text: &str, fold_case: bool) -> bool {
    let toks: Vec<Tok> = pattern
        .chars()
        .map(|c| match c {
            '*' => Tok::Star,
            '?' => Tok::One,
            c => Tok::Lit(c),
        })
        .collect();
    let text: Vec<char> = text.chars().collect();
    glob_match(&toks, &text, fold_case)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(simple_match("prod/*", "prod/api", false));
        assert!(simple_match("prod/*", "prod/a/b", false));
        assert!(simple_match("prod/*", "prod/", false));
        assert!(!simple_match("prod/*", "production", false));
        assert!(simple_match("prod*", "production", false));
        assert!(simple_match("*", "", false));
        assert!(simple_match("a?c", "abc", false));
        assert!(!simple_match("a?c", "ac", false));
        assert!(simple_match("*a*b*c*", "xxaxxbxxcxx", false));
        assert!(!simple_match("*a*b*c", "xxaxxbxxcxx", false));
        assert!(simple_match("Batch*", "batchgetimage", true));
        assert!(!simple_match("Batch*", "batchgetimage", false));
        assert!(!simple_match("abc", "abcd", false));
        assert!(simple_match("ä?", "äö", false));
    }

    #[test]
    fn literal_mode_and_escapes() {
        let p = Pattern::parse("a*b", false, false).unwrap();
        assert!(!p.matches_everything());
        assert_eq!(p.literal_chars().collect::<String>(), "a*b");
        let p = Pattern::parse("x${*}y${$}", true, true).unwrap();
        assert_eq!(p.literal_chars().collect::<String>(), "x*y$");
        assert!(Pattern::parse("**", true, false)
            .unwrap()
            .matches_everything());
        assert!(Pattern::parse("${aws:nope}", true, true)
            .unwrap_err()
            .contains("aws:nope"));
        assert!(Pattern::parse("${aws:username", true, true).is_err());
        // Without variables `$` is an ordinary character.
        assert!(Pattern::parse("${aws:nope}", true, false).is_ok());
    }
}
