use std::fmt;
use std::str::FromStr;

/// What a key may do. Ordered: each role can do everything of the roles below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Read, tag single subjects, preview segments (creating a segment needs DEVELOPER).
    Member,
    /// Scripts, tags, segments, bulk operations.
    Developer,
    /// Everything, including API keys and workspace settings.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "VIEWER",
            Role::Member => "MEMBER",
            Role::Developer => "DEVELOPER",
            Role::Admin => "ADMIN",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "VIEWER" => Ok(Role::Viewer),
            "MEMBER" => Ok(Role::Member),
            "DEVELOPER" => Ok(Role::Developer),
            "ADMIN" => Ok(Role::Admin),
            _ => Err(format!(
                "unknown role \"{s}\" (expected ADMIN, DEVELOPER, MEMBER or VIEWER)"
            )),
        }
    }
}
