//! Label and field selectors with the grammar and semantics of k8s.io/apimachinery/pkg/labels
//! (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma = AND) and
//! pkg/fields (`f=v`, `f==v`, `f!=v`). `!=` and `notin` also match objects without the label.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(pub Vec<Requirement>);

impl LabelSelector {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    In,
    NotIn,
    Open,
    Close,
    Comma,
    Gt,
    Lt,
}

fn describe(t: &Token) -> String {
    match t {
        Token::Ident(s) => s.clone(),
        Token::Not => "!".into(),
        Token::Eq => "=".into(),
        Token::DoubleEq => "==".into(),
        Token::NotEq => "!=".into(),
        Token::In => "in".into(),
        Token::NotIn => "notin".into(),
        Token::Open => "(".into(),
        Token::Close => ")".into(),
        Token::Comma => ",".into(),
        Token::Gt => ">".into(),
        Token::Lt => "<".into(),
    }
}

fn lex(input: &str) -> Vec<Token> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let next = chars.get(i + 1).copied();
        let (token, width) = match chars[i] {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            ',' => (Token::Comma, 1),
            '>' => (Token::Gt, 1),
            '<' => (Token::Lt, 1),
            '!' if next == Some('=') => (Token::NotEq, 2),
            '!' => (Token::Not, 1),
            '=' if next == Some('=') => (Token::DoubleEq, 2),
            '=' => (Token::Eq, 1),
            _ => {
                let start = i;
                let mut end = i;
                while end < chars.len() && !chars[end].is_whitespace() && !"()!=,<>".contains(chars[end]) {
                    end += 1;
                }
                let word: String = chars[start..end].iter().collect();
                let token = match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word),
                };
                (token, end - start)
            }
        };
        tokens.push(token);
        i += width;
    }
    tokens
}

const LABEL_VALUE_HELP: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
    or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex \
    used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn valid_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    !s.is_empty()
        && s.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
}

fn valid_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => {
            !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|p| {
                    !p.is_empty()
                        && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !p.starts_with('-')
                        && !p.ends_with('-')
                })
                && valid_name_part(name)
        }
        None => valid_name_part(key),
    }
}

fn check_value(key: &str, index: usize, value: &str) -> Result<(), String> {
    if value.is_empty() || valid_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "unable to parse requirement: values[{index}][{key}]: Invalid value: {value:?}: {LABEL_VALUE_HELP}"
        ))
    }
}

/// Parses a `labelSelector` query value; the error is the message of the 400 BadRequest.
pub(crate) fn parse_labels(input: &str) -> Result<LabelSelector, String> {
    let tokens = lex(input);
    let mut requirements = Vec::new();
    let mut pos = 0;
    let expected_after_key = "[!= == = in notin <end>]";
    while pos < tokens.len() {
        let negated = tokens[pos] == Token::Not;
        if negated {
            pos += 1;
        }
        let key = match tokens.get(pos) {
            Some(Token::Ident(k)) => k.clone(),
            Some(other) => {
                return Err(format!("found '{}', expected: !, identifier, or 'end of string'", describe(other)));
            }
            None => return Err("found '', expected: identifier after '!'".into()),
        };
        if !valid_key(&key) {
            return Err(format!(
                "unable to parse requirement: key: Invalid value: {key:?}: name part must consist of alphanumeric \
                 characters, '-', '_' or '.', and must start and end with an alphanumeric character"
            ));
        }
        pos += 1;
        if negated {
            requirements.push(Requirement::DoesNotExist(key));
        } else {
            match tokens.get(pos) {
                None | Some(Token::Comma) => requirements.push(Requirement::Exists(key)),
                Some(op @ (Token::Eq | Token::DoubleEq | Token::NotEq)) => {
                    let op = op.clone();
                    pos += 1;
                    let value = match tokens.get(pos) {
                        Some(Token::Ident(v)) => {
                            pos += 1;
                            v.clone()
                        }
                        None | Some(Token::Comma) => String::new(),
                        Some(other) => return Err(format!("found '{}', expected: identifier", describe(other))),
                    };
                    check_value(&key, 0, &value)?;
                    requirements.push(if op == Token::NotEq {
                        Requirement::NotEquals(key, value)
                    } else {
                        Requirement::Equals(key, value)
                    });
                }
                Some(op @ (Token::In | Token::NotIn)) => {
                    let op = op.clone();
                    pos += 1;
                    if tokens.get(pos) != Some(&Token::Open) {
                        return Err(format!(
                            "found '{}', expected: '('",
                            tokens.get(pos).map(describe).unwrap_or_default()
                        ));
                    }
                    pos += 1;
                    let mut values = Vec::new();
                    loop {
                        match tokens.get(pos) {
                            Some(Token::Ident(v)) => {
                                values.push(v.clone());
                                pos += 1;
                            }
                            Some(Token::Close) if values.is_empty() => {}
                            Some(other) => {
                                return Err(format!("found '{}', expected: ',', ')' or identifier", describe(other)));
                            }
                            None => return Err("found '', expected: ')'".into()),
                        }
                        match tokens.get(pos) {
                            Some(Token::Comma) => pos += 1,
                            Some(Token::Close) => {
                                pos += 1;
                                break;
                            }
                            Some(other) => return Err(format!("found '{}', expected: ',' or ')'", describe(other))),
                            None => return Err("found '', expected: ')'".into()),
                        }
                    }
                    if values.is_empty() {
                        return Err(format!(
                            "unable to parse requirement: values: Invalid value: \"\": for 'in', 'notin' operators, values set can't be empty (key {key})"
                        ));
                    }
                    for (i, v) in values.iter().enumerate() {
                        check_value(&key, i, v)?;
                    }
                    requirements.push(if op == Token::In {
                        Requirement::In(key, values)
                    } else {
                        Requirement::NotIn(key, values)
                    });
                }
                Some(other) => return Err(format!("found '{}', expected: {expected_after_key}", describe(other))),
            }
        }
        match tokens.get(pos) {
            None => break,
            Some(Token::Comma) => {
                pos += 1;
                if pos == tokens.len() {
                    return Err("found '', expected: identifier after ','".into());
                }
            }
            Some(other) => return Err(format!("found '{}', expected: ',' or 'end of string'", describe(other))),
        }
    }
    Ok(LabelSelector(requirements))
}

/// One `field=value` or `field!=value` term of a `fieldSelector`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldTerm {
    pub field: String,
    pub value: String,
    pub negated: bool,
}

/// Parses a `fieldSelector` and checks each field against `supported`, the fields the
/// resource's strategy indexes (GetAttrs in pkg/registry/core/pod/strategy.go and node/strategy.go).
pub(crate) fn parse_fields(input: &str, supported: &[&str]) -> Result<Vec<FieldTerm>, String> {
    let mut terms = Vec::new();
    for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, value, negated) = if let Some((f, v)) = part.split_once("!=") {
            (f, v, true)
        } else if let Some((f, v)) = part.split_once("==") {
            (f, v, false)
        } else if let Some((f, v)) = part.split_once('=') {
            (f, v, false)
        } else {
            return Err(format!("invalid selector: '{part}'; can't understand '{part}'"));
        };
        let field = field.trim();
        if !supported.contains(&field) {
            return Err(format!("field label not supported: {field}"));
        }
        terms.push(FieldTerm { field: field.into(), value: value.trim().into(), negated });
    }
    Ok(terms)
}

pub(crate) fn fields_match(terms: &[FieldTerm], value_of: impl Fn(&str) -> String) -> bool {
    terms.iter().all(|t| (value_of(&t.field) == t.value) != t.negated)
}
