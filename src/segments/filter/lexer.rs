//! Splits filter text into tokens. Never stops at an error: a bad piece
//! becomes a [`TokenKind::Error`] token (or is skipped) and a diagnostic.

use std::ops::Range;

use super::ast::{Duration, DurationUnit};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum TokenKind {
    /// `[A-Za-z_][A-Za-z0-9_]*`: a keyword, field, function or attribute name.
    Ident,
    /// A string literal, unescaped.
    Str(String),
    /// A number literal; its text is the token's source text.
    Number,
    Duration(Duration),
    LParen,
    RParen,
    Comma,
    Dot,
    Minus,
    Plus,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// A piece already reported by the lexer.
    Error,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub kind: TokenKind,
    pub span: Range<usize>,
}

/// A problem found while reading; spans are byte offsets.
pub(super) type RawDiagnostic = (Range<usize>, String);

/// The tokens of `text`, ending with one `Eof`, and the problems found.
pub(super) fn tokenize(text: &str) -> (Vec<Token>, Vec<RawDiagnostic>) {
    let mut lexer = Lexer {
        text,
        pos: 0,
        tokens: Vec::new(),
        diagnostics: Vec::new(),
    };
    lexer.run();
    (lexer.tokens, lexer.diagnostics)
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    tokens: Vec<Token>,
    diagnostics: Vec<RawDiagnostic>,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.text[self.pos..].chars().nth(1)
    }

    fn eat_while(&mut self, accept: impl Fn(char) -> bool) {
        while let Some(c) = self.peek().filter(|&c| accept(c)) {
            self.pos += c.len_utf8();
        }
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token {
            kind,
            span: start..self.pos,
        });
    }

    fn report(&mut self, span: Range<usize>, message: String) {
        self.diagnostics.push((span, message));
    }

    fn run(&mut self) {
        while let Some(c) = self.peek() {
            let start = self.pos;
            if c.is_whitespace() {
                self.eat_while(char::is_whitespace);
                continue;
            }
            if is_ident_start(c) {
                self.eat_while(is_ident_continue);
                self.push(TokenKind::Ident, start);
                continue;
            }
            if c.is_ascii_digit() {
                self.number(start);
                continue;
            }
            if c == '"' {
                self.string(start);
                continue;
            }
            if c == '\'' {
                self.single_quoted(start);
                continue;
            }
            self.pos += c.len_utf8();
            let next = self.peek();
            let kind = match c {
                '(' => TokenKind::LParen,
                ')' => TokenKind::RParen,
                ',' => TokenKind::Comma,
                '.' => TokenKind::Dot,
                '-' => TokenKind::Minus,
                '+' => TokenKind::Plus,
                '=' if next == Some('=') => {
                    self.pos += 1;
                    self.report(start..self.pos, r#"unknown operator "==" (use "=")"#.into());
                    TokenKind::Eq
                }
                '=' => TokenKind::Eq,
                '!' if next == Some('=') => {
                    self.pos += 1;
                    TokenKind::Ne
                }
                '<' if next == Some('=') => {
                    self.pos += 1;
                    TokenKind::Le
                }
                '<' if next == Some('>') => {
                    self.pos += 1;
                    self.report(
                        start..self.pos,
                        r#"unknown operator "<>" (use "!=")"#.into(),
                    );
                    TokenKind::Ne
                }
                '<' => TokenKind::Lt,
                '>' if next == Some('=') => {
                    self.pos += 1;
                    TokenKind::Ge
                }
                '>' => TokenKind::Gt,
                _ => {
                    let message = format!("unexpected character {:?}", c.to_string());
                    self.report(start..self.pos, message);
                    continue;
                }
            };
            self.push(kind, start);
        }
        let end = self.text.len();
        self.tokens.push(Token {
            kind: TokenKind::Eof,
            span: end..end,
        });
    }

    /// `123`, `1.5`, `2e10`, or a duration `30d`.
    fn number(&mut self, start: usize) {
        self.eat_while(|c| c.is_ascii_digit());
        let digits_end = self.pos;
        let mut fractional = false;
        if self.peek() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            self.eat_while(|c| c.is_ascii_digit());
            fractional = true;
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let rest = &self.text[self.pos + 1..];
            let sign = usize::from(rest.starts_with(['+', '-']));
            if rest[sign..].starts_with(|c: char| c.is_ascii_digit()) {
                self.pos += 1 + sign;
                self.eat_while(|c| c.is_ascii_digit());
                fractional = true;
            }
        }
        let suffix_start = self.pos;
        self.eat_while(is_ident_continue);
        if suffix_start == self.pos {
            self.push(TokenKind::Number, start);
            return;
        }
        let span = start..self.pos;
        let written = &self.text[span.clone()];
        let suffix = &self.text[suffix_start..self.pos];
        let kind = match DurationUnit::from_suffix(suffix) {
            _ if fractional => {
                self.report(
                    span.clone(),
                    format!("invalid duration {written:?}: the amount must be a whole number"),
                );
                TokenKind::Error
            }
            None => {
                self.report(
                    span.clone(),
                    format!(
                        "invalid duration {written:?}: expected a unit m, h, d or w after the number"
                    ),
                );
                TokenKind::Error
            }
            Some(unit) => {
                let amount = self.text[start..digits_end].parse::<u32>().ok();
                match amount.map(|amount| Duration { amount, unit }) {
                    Some(duration) if duration.seconds() <= Duration::MAX_SECONDS => {
                        TokenKind::Duration(duration)
                    }
                    _ => {
                        self.report(
                            span.clone(),
                            format!("duration {written:?} is too long (at most 36500d)"),
                        );
                        TokenKind::Error
                    }
                }
            }
        };
        self.push(kind, span.start);
    }

    /// `'...'`: reported, and read as one bad token so that it is reported once.
    fn single_quoted(&mut self, start: usize) {
        self.pos += 1;
        self.eat_while(|c| c != '\'' && c != '\n');
        if self.peek() == Some('\'') {
            self.pos += 1;
        }
        self.report(
            start..self.pos,
            "strings use double quotes (\"...\"), not single quotes".into(),
        );
        self.push(TokenKind::Error, start);
    }

    /// `"..."` with escapes `\"`, `\\`, `\n`, `\t`.
    fn string(&mut self, start: usize) {
        self.pos += 1;
        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                self.report(
                    start..self.pos,
                    "unterminated string: expected a closing \"".into(),
                );
                self.push(TokenKind::Error, start);
                return;
            };
            let at = self.pos;
            self.pos += c.len_utf8();
            match c {
                '"' => break,
                '\\' => match self.peek() {
                    Some(escaped @ ('"' | '\\' | 'n' | 't')) => {
                        self.pos += 1;
                        value.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                    Some(other) => {
                        self.pos += other.len_utf8();
                        self.report(
                            at..self.pos,
                            format!(
                                "unknown escape \"\\{other}\" (expected \\\", \\\\, \\n or \\t)"
                            ),
                        );
                        value.push(other);
                    }
                    None => {}
                },
                other => value.push(other),
            }
        }
        self.push(TokenKind::Str(value), start);
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(input: &str, expect: Expect) {
        let (tokens, diagnostics) = tokenize(input);
        let mut out = String::new();
        for token in tokens {
            let text = &input[token.span.clone()];
            out += &format!("{:?} {text:?}\n", token.kind);
        }
        for (span, message) in diagnostics {
            out += &format!("error {span:?}: {message}\n");
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn punctuation_and_words() {
        check(
            "a.B_1 (x, y) = != < <= > >= - + é",
            expect![[r#"
                Ident "a"
                Dot "."
                Ident "B_1"
                LParen "("
                Ident "x"
                Comma ","
                Ident "y"
                RParen ")"
                Eq "="
                Ne "!="
                Lt "<"
                Le "<="
                Gt ">"
                Ge ">="
                Minus "-"
                Plus "+"
                Eof ""
                error 32..34: unexpected character "é"
            "#]],
        );
    }

    #[test]
    fn numbers_and_durations() {
        check(
            "12 1.5 2e3 1E-2 30d 5M 1.5d 3x 99999999999d 1e 1.x",
            expect![[r#"
                Number "12"
                Number "1.5"
                Number "2e3"
                Number "1E-2"
                Duration(Duration { amount: 30, unit: Days }) "30d"
                Duration(Duration { amount: 5, unit: Minutes }) "5M"
                Error "1.5d"
                Error "3x"
                Error "99999999999d"
                Error "1e"
                Number "1"
                Dot "."
                Ident "x"
                Eof ""
                error 23..27: invalid duration "1.5d": the amount must be a whole number
                error 28..30: invalid duration "3x": expected a unit m, h, d or w after the number
                error 31..43: duration "99999999999d" is too long (at most 36500d)
                error 44..46: invalid duration "1e": expected a unit m, h, d or w after the number
            "#]],
        );
    }

    #[test]
    fn strings() {
        check(
            r#""a\"b\\c\nd\te" "x\qy" "unterminated"#,
            expect![[r#"
                Str("a\"b\\c\nd\te") "\"a\\\"b\\\\c\\nd\\te\""
                Str("xqy") "\"x\\qy\""
                Error "\"unterminated"
                Eof ""
                error 18..20: unknown escape "\q" (expected \", \\, \n or \t)
                error 23..36: unterminated string: expected a closing "
            "#]],
        );
    }

    #[test]
    fn misspelled_operators() {
        check(
            "a == 'b' <> c !d",
            expect![[r#"
                Ident "a"
                Eq "=="
                Error "'b'"
                Ne "<>"
                Ident "c"
                Ident "d"
                Eof ""
                error 2..4: unknown operator "==" (use "=")
                error 5..8: strings use double quotes ("..."), not single quotes
                error 9..11: unknown operator "<>" (use "!=")
                error 14..15: unexpected character "!"
            "#]],
        );
    }
}
