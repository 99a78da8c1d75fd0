//! The REPL's configuration file, `$XDG_CONFIG_HOME/rdlv/config.yml`
//! (default `~/.config/rdlv/config.yml`), in the shape of Delve's
//! `config.yml` so a Delve user can copy theirs:
//!
//! ```yaml
//! aliases:
//!   goroutines: ["gs"]
//!   print:
//!     - pp
//! max-string-len: 256
//! max-array-values: 100
//! ```
//!
//! Only the subset of YAML such a file uses is understood: comments,
//! top-level `key: scalar`, a block mapping of command → flow (`[a, b]`) or
//! block (`- a`) lists, and a flow mapping (`aliases: {print: [pp]}`). Keys
//! this tool does not use (Delve's `substitute-path`, colours…) are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Settings read from the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Extra names per command: command → aliases (added to the built-in ones).
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Longest string `print` shows in text form (Delve's `max-string-len`).
    pub max_string_len: Option<u64>,
    /// Most elements of an array, slice or map `print` shows (`max-array-values`).
    pub max_array_values: Option<u64>,
    /// The file these settings came from, if one was found.
    pub path: Option<PathBuf>,
}

/// A problem in the configuration file, with its line.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct ConfigError {
    /// File.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Largest value accepted for the numeric limits (they size allocations).
const MAX_LIMIT: u64 = 1 << 30;

/// Where the configuration file is looked for.
pub fn config_path() -> Option<PathBuf> {
    base_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("rdlv").join("config.yml"))
}

/// Where the REPL history is kept.
pub fn history_path() -> Option<PathBuf> {
    base_dir("XDG_STATE_HOME", ".local/state").map(|d| d.join("rdlv").join("history"))
}

/// `$VAR` when set to an absolute path (the XDG spec ignores relative ones),
/// else `$HOME/fallback`.
fn base_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    if let Some(v) = std::env::var_os(var) {
        let p = PathBuf::from(v);
        if p.is_absolute() {
            return Some(p);
        }
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(fallback))
}

impl Config {
    /// Loads the configuration file if it exists. A missing file is the
    /// default configuration; an unreadable or malformed one is an error.
    pub fn load() -> Result<Config, ConfigError> {
        match config_path() {
            Some(path) if path.exists() => Config::load_file(&path),
            _ => Ok(Config::default()),
        }
    }

    /// Loads one configuration file.
    pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.display().to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        let mut config = Config::parse(&text).map_err(|(line, message)| ConfigError {
            path: path.display().to_string(),
            line,
            message,
        })?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses the text of a configuration file; errors carry the line number.
    pub fn parse(text: &str) -> Result<Config, (usize, String)> {
        let mut config = Config::default();
        // The top-level key whose indented block we are in, if any.
        let mut block: Option<String> = None;
        // Inside `aliases:`, the command whose `- alias` list we are in.
        let mut alias_command: Option<String> = None;
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = strip_comment(raw);
            if line.trim().is_empty() {
                continue;
            }
            let indented = line.starts_with(' ') || line.starts_with('\t');
            let line = line.trim();
            if !indented {
                alias_command = None;
                let (key, value) = split_key(line)
                    .ok_or((line_no, format!("expected `key: value`, found `{line}`")))?;
                block = if value.is_empty() {
                    Some(key.to_string())
                } else {
                    None
                };
                config.top_level(key, value).map_err(|m| (line_no, m))?;
                continue;
            }
            if block.as_deref() != Some("aliases") {
                // Nested content of a key we ignore.
                continue;
            }
            if let Some(item) =
                line.strip_prefix("- ")
                    .or(if line == "-" { Some("") } else { None })
            {
                let command = alias_command.clone().ok_or((
                    line_no,
                    "a `- alias` item needs a command above it".to_string(),
                ))?;
                let alias = unquote(item.trim());
                if alias.is_empty() {
                    return Err((line_no, "empty alias".to_string()));
                }
                config.aliases.entry(command).or_default().push(alias);
                continue;
            }
            let (command, value) = split_key(line).ok_or((
                line_no,
                format!("expected `command: [aliases]`, found `{line}`"),
            ))?;
            let command = unquote(command);
            if value.is_empty() {
                alias_command = Some(command.clone());
                config.aliases.entry(command).or_default();
            } else {
                alias_command = None;
                let list = parse_flow_list(value).map_err(|m| (line_no, m))?;
                config.aliases.entry(command).or_default().extend(list);
            }
        }
        config.aliases.retain(|_, v| !v.is_empty());
        Ok(config)
    }

    fn top_level(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "max-string-len" => self.max_string_len = parse_limit(key, value)?,
            "max-array-values" => self.max_array_values = parse_limit(key, value)?,
            "aliases" if !value.is_empty() => {
                for (command, list) in parse_flow_map(value)? {
                    self.aliases.entry(command).or_default().extend(list);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn parse_limit(key: &str, value: &str) -> Result<Option<u64>, String> {
    let value = unquote(value);
    let n: u64 = value
        .parse()
        .map_err(|_| format!("{key}: expected a non-negative integer, found `{value}`"))?;
    if n > MAX_LIMIT {
        return Err(format!("{key}: {n} is larger than the maximum {MAX_LIMIT}"));
    }
    Ok(Some(n))
}

/// Removes a `#` comment that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') if i == 0 || line[..i].ends_with(char::is_whitespace) => {
                return &line[..i];
            }
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    line
}

/// `key: value` → (key, value), value trimmed (empty for a block key).
fn split_key(line: &str) -> Option<(&str, &str)> {
    let colon = line
        .find(": ")
        .or_else(|| line.strip_suffix(':').map(|s| s.len()))?;
    let key = line[..colon].trim();
    if key.is_empty() {
        return None;
    }
    Some((key, line[colon + 1..].trim()))
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

/// `[a, "b"]` → ["a", "b"].
fn parse_flow_list(value: &str) -> Result<Vec<String>, String> {
    let inner = value
        .trim()
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .ok_or_else(|| format!("expected a list like [\"alias\"], found `{value}`"))?;
    Ok(inner
        .split(',')
        .map(unquote)
        .filter(|s| !s.is_empty())
        .collect())
}

/// `{print: [pp], goroutines: [gs, g2]}` → pairs.
fn parse_flow_map(value: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let inner = value
        .trim()
        .strip_prefix('{')
        .and_then(|v| v.strip_suffix('}'))
        .ok_or_else(|| format!("expected a mapping like {{print: [pp]}}, found `{value}`"))?;
    let mut pairs = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("expected `command: [aliases]` in `{value}`"))?;
        let command = unquote(&rest[..colon]);
        let after = rest[colon + 1..].trim_start();
        let close = after
            .find(']')
            .ok_or_else(|| format!("unterminated list in `{value}`"))?;
        pairs.push((command, parse_flow_list(&after[..=close])?));
        rest = after[close + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_delve_style_config() {
        let text = r#"
# Configuration file for the delve debugger.
aliases:
  # command: ["alias1", "alias2"]
  goroutines: ["gs", 'g2']
  print:
    - pp   # pretty
    - "show"
substitute-path:
  - {from: /a, to: /b}
max-string-len: 256
max-array-values: "100"
show-location-expr: true
"#;
        let config = Config::parse(text).unwrap();
        assert_eq!(config.aliases["goroutines"], vec!["gs", "g2"]);
        assert_eq!(config.aliases["print"], vec!["pp", "show"]);
        assert_eq!(config.aliases.len(), 2);
        assert_eq!(config.max_string_len, Some(256));
        assert_eq!(config.max_array_values, Some(100));
    }

    #[test]
    fn parses_flow_mapping_and_empty_aliases() {
        let config = Config::parse("aliases: {print: [pp], bt: [\"where\", w]}\n").unwrap();
        assert_eq!(config.aliases["print"], vec!["pp"]);
        assert_eq!(config.aliases["bt"], vec!["where", "w"]);
        let config = Config::parse("aliases:\n  # nothing yet\nmax-string-len: 64\n").unwrap();
        assert!(config.aliases.is_empty());
        assert_eq!(config.max_string_len, Some(64));
    }

    #[test]
    fn reports_errors_with_line_numbers() {
        let err = Config::parse("aliases:\n  print: pp\n").unwrap_err();
        assert_eq!(err.0, 2);
        let err = Config::parse("\nmax-string-len: lots\n").unwrap_err();
        assert_eq!(err.0, 2);
        assert!(err.1.contains("max-string-len"), "{}", err.1);
        assert!(Config::parse("max-array-values: 99999999999999\n").is_err());
        assert!(Config::parse("aliases:\n  - orphan\n").is_err());
    }

    #[test]
    fn comments_inside_quotes_are_kept() {
        assert_eq!(strip_comment("a: \"x # y\" # c"), "a: \"x # y\" ");
        assert_eq!(strip_comment("# all"), "");
    }
}
