//! Splitting REPL lines into words, and finding the nearest known name.

use super::UsageError;

/// Splits `line` at whitespace into words. Single and double quotes group
/// words (`vars "main\.(a|b)"`); inside double quotes a backslash escapes
/// the next quote or backslash. An unterminated quote is a usage error.
pub fn split_words(line: &str) -> Result<Vec<String>, UsageError> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                let quote = c;
                let mut closed = false;
                while let Some(q) = chars.next() {
                    if q == quote {
                        closed = true;
                        break;
                    }
                    if quote == '"' && q == '\\' {
                        if let Some(&next) = chars.peek() {
                            if next == '"' || next == '\\' {
                                current.push(next);
                                chars.next();
                                continue;
                            }
                        }
                    }
                    current.push(q);
                }
                if !closed {
                    return Err(UsageError(format!("unterminated {quote} quote in: {line}")));
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// Splits off the first whitespace-delimited word: `("print", "m[\"k\"]")`.
/// The rest keeps its inner spacing and quotes (expressions need them).
pub fn split_first(line: &str) -> (&str, &str) {
    let line = line.trim();
    match line.find(char::is_whitespace) {
        Some(i) => (&line[..i], line[i..].trim_start()),
        None => (line, ""),
    }
}

/// Edit distance between two short strings (command names): insertions,
/// deletions, substitutions and swaps of adjacent characters (`hlep` is one
/// edit from `help`), each costing 1.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rolling rows: two rows back is needed for transpositions.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j - 1] + cost).min(prev[j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidates closest to `word`, best first: those within an edit
/// distance of a third of the word (at least 1, at most 3), or having it as
/// a prefix. At most `limit`.
pub fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Vec<&'a str> {
    let max = (word.chars().count() / 3).clamp(1, 3);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|c| {
            let d = edit_distance(word, c);
            if d <= max {
                Some((d, c))
            } else if c.starts_with(word) && !word.is_empty() {
                Some((max + 1, c))
            } else {
                None
            }
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(limit).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_respect_quotes() {
        assert_eq!(
            split_words(r#"vars "main\.(a|b) x" 'y z'  w"#).unwrap(),
            vec!["vars", r"main\.(a|b) x", "y z", "w"]
        );
        assert_eq!(split_words(r#"p "a\"b""#).unwrap(), vec!["p", "a\"b"]);
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_words("x ''").unwrap(), vec!["x", ""]);
        assert!(split_words("print \"open").is_err());
    }

    #[test]
    fn first_word_keeps_the_rest_verbatim() {
        assert_eq!(split_first("  print  m[\"a b\"] "), ("print", "m[\"a b\"]"));
        assert_eq!(split_first("bt"), ("bt", ""));
        assert_eq!(split_first(""), ("", ""));
    }

    #[test]
    fn nearest_names() {
        assert_eq!(edit_distance("gorutines", "goroutines"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("hlep", "help"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let names = ["goroutines", "goroutine", "locals", "print", "threads"];
        assert_eq!(
            nearest("gorotines", names, 2),
            vec!["goroutines", "goroutine"]
        );
        assert_eq!(nearest("prnt", names, 3), vec!["print"]);
        assert_eq!(nearest("thr", names, 3), vec!["threads"]);
        assert!(nearest("zzzzzz", names, 3).is_empty());
    }
}
