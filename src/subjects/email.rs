//! Email addresses, parsed once at the edge.

use super::SubjectError;

/// A syntactically valid, trimmed email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Trims and validates: one `@`, a non-empty local part, a domain with a
    /// dot and no empty label, no spaces or control characters, at most 254 characters.
    pub fn parse(raw: &str) -> Result<Email, SubjectError> {
        let email = raw.trim();
        let fail = |why| Err(SubjectError::InvalidEmail(truncate(email), why));
        if email.is_empty() {
            return fail("it is empty");
        }
        if email.chars().count() > 254 {
            return fail("it is longer than 254 characters");
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return fail("it contains spaces or control characters");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return fail("it has no @");
        };
        if domain.contains('@') {
            return fail("it has more than one @");
        }
        if local.is_empty() || local.chars().count() > 64 {
            return fail("the part before @ must be 1 to 64 characters");
        }
        if !domain.contains('.') || domain.split('.').any(str::is_empty) {
            return fail("the domain must look like example.com");
        }
        Ok(Email(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn truncate(text: &str) -> String {
    if text.chars().count() > 80 {
        let mut short: String = text.chars().take(80).collect();
        short.push('…');
        short
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn valid_and_invalid() {
        let cases = [
            ("  ana@example.com ", Ok("ana@example.com")),
            (
                "first.last+tag@sub.example.org",
                Ok("first.last+tag@sub.example.org"),
            ),
            ("", Err("invalid email \"\": it is empty")),
            (
                "no-at.example.com",
                Err("invalid email \"no-at.example.com\": it has no @"),
            ),
            (
                "a@b@c.com",
                Err("invalid email \"a@b@c.com\": it has more than one @"),
            ),
            (
                "@example.com",
                Err("invalid email \"@example.com\": the part before @ must be 1 to 64 characters"),
            ),
            (
                "ana@localhost",
                Err("invalid email \"ana@localhost\": the domain must look like example.com"),
            ),
            (
                "ana@example..com",
                Err("invalid email \"ana@example..com\": the domain must look like example.com"),
            ),
            (
                "an a@example.com",
                Err("invalid email \"an a@example.com\": it contains spaces or control characters"),
            ),
        ];
        for (input, expected) in cases {
            let got = Email::parse(input)
                .map(Email::into_string)
                .map_err(|e| e.to_string());
            assert_eq!(
                got,
                expected.map(str::to_owned).map_err(str::to_owned),
                "{input:?}"
            );
        }
    }
}
