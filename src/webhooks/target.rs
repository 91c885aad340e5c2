//! Where webhooks may send (SSRF): `https://` to public addresses only,
//! unless the server's allow-list (`--webhook-allow-hosts`) names the host,
//! which then may be private and reached over `http://` too. Checked when a
//! webhook is saved and again on every attempt ([`GuardedResolver`] checks
//! the addresses a name resolves to, and connects only to those).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// Longest URL a webhook may have.
pub const MAX_URL_LENGTH: usize = 2048;

/// The hosts and addresses the server's operator allows although private:
/// a name allows that name (whatever it resolves to), an address allows
/// URLs that write that address (not names that resolve to it).
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    names: Vec<String>,
    ips: Vec<IpAddr>,
}

impl AllowList {
    /// From `--webhook-allow-hosts` entries (host names or IP addresses).
    pub fn new(entries: &[String]) -> Self {
        let mut list = AllowList::default();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let bare = entry.trim_start_matches('[').trim_end_matches(']');
            match bare.parse::<IpAddr>() {
                Ok(ip) => list.ips.push(ip),
                Err(_) => list.names.push(entry.to_ascii_lowercase()),
            }
        }
        list
    }

    /// Whether the URL's host is on the list.
    pub fn allows(&self, host: &Host<&str>) -> bool {
        match host {
            Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                self.names.contains(&name)
            }
            Host::Ipv4(ip) => self.ips.contains(&IpAddr::V4(*ip)),
            Host::Ipv6(ip) => self.ips.contains(&IpAddr::V6(*ip)),
        }
    }
}

/// Whether an address is one webhooks must not reach unless allowed:
/// private, loopback, link-local (cloud metadata at 169.254.169.254),
/// shared (100.64/10), unspecified, broadcast, multicast, documentation,
/// or IPv6 unique-local, link-local and IPv4-mapped forms of those.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || a >= 240
}

/// Checks a URL without any network: its length, scheme, host, and an IP
/// address written in it. Returns the parsed URL.
pub fn check_url(raw: &str, allow: &AllowList) -> Result<Url, String> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_LENGTH {
        return Err(format!(
            "the URL is longer than {MAX_URL_LENGTH} characters"
        ));
    }
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    let host = url.host().ok_or_else(|| format!("{raw:?} has no host"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not hold a user name or password".into());
    }
    let allowed = allow.allows(&host);
    match url.scheme() {
        "https" => {}
        "http" if allowed => {}
        "http" => {
            return Err(format!(
                "{raw:?}: webhooks need https:// (http:// only to hosts the server's --webhook-allow-hosts names)"
            ));
        }
        other => return Err(format!("{raw:?}: webhooks need https://, not {other}://")),
    }
    if !allowed {
        let ip = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        if let Some(ip) = ip.filter(|ip| is_forbidden(*ip)) {
            return Err(refused(&ip.to_string()));
        }
    }
    Ok(url)
}

fn refused(what: &str) -> String {
    format!(
        "{what} is a private, loopback or link-local address; webhooks may reach it only when the server's --webhook-allow-hosts names it"
    )
}

/// Resolves a host name and refuses it when any of its addresses is
/// forbidden (unless allowed). Returns the addresses to connect to.
pub async fn resolve(name: &str, port: u16, allow: &AllowList) -> Result<Vec<SocketAddr>, String> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| format!("{name} does not resolve: {e}"))?
        .collect();
    if addresses.is_empty() {
        return Err(format!("{name} does not resolve"));
    }
    if !allow.allows(&Host::Domain(name))
        && let Some(bad) = addresses.iter().find(|a| is_forbidden(a.ip()))
    {
        return Err(refused(&format!("{name} resolves to {}, which", bad.ip())));
    }
    Ok(addresses)
}

/// Checks a URL as [`check_url`] does, then the addresses its host resolves
/// to: what saving a webhook checks.
pub async fn check(raw: &str, allow: &AllowList) -> Result<Url, String> {
    let url = check_url(raw, allow)?;
    if let Some(Host::Domain(name)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(443);
        resolve(name, port, allow).await?;
    }
    Ok(url)
}

/// The HTTP client's name resolver: connects only to addresses that
/// [`resolve`] accepts, so a name that starts resolving to a private
/// address after the webhook was saved is refused at connect time.
#[derive(Debug, Clone)]
pub struct GuardedResolver(pub Arc<AllowList>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = Arc::clone(&self.0);
        Box::pin(async move {
            let addresses = resolve(name.as_str(), 0, &allow).await?;
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, allow: &[&str]) -> Result<(), String> {
        let allow = AllowList::new(&allow.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        check_url(raw, &allow).map(|_| ())
    }

    #[test]
    fn urls() {
        let cases: [(&str, &[&str], bool); 16] = [
            ("https://hooks.example.com/in", &[], true),
            ("https://93.184.215.14/in", &[], true),
            ("http://hooks.example.com/in", &[], false),
            ("ftp://hooks.example.com/in", &[], false),
            ("https://10.1.2.3/", &[], false),
            ("http://10.1.2.3/", &[], false),
            ("https://169.254.169.254/latest/meta-data", &[], false),
            ("https://127.0.0.1:8443/", &[], false),
            ("https://[::1]/", &[], false),
            ("https://[fd00:ec2::254]/", &[], false),
            ("https://[::ffff:192.168.0.1]/", &[], false),
            ("https://100.64.0.1/", &[], false),
            ("https://user:pw@hooks.example.com/", &[], false),
            ("not a url", &[], false),
            ("http://127.0.0.1:9000/in", &["127.0.0.1"], true),
            ("http://Receiver.internal/in", &["receiver.internal"], true),
        ];
        for (raw, allow, ok) in cases {
            assert_eq!(
                check(raw, allow).is_ok(),
                ok,
                "{raw} {allow:?}: {:?}",
                check(raw, allow)
            );
        }
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused() {
        let none = AllowList::default();
        let error = resolve("localhost", 443, &none).await.unwrap_err();
        assert!(error.contains("localhost resolves to"), "{error}");
        let allowed = AllowList::new(&["localhost".to_string()]);
        assert!(resolve("localhost", 443, &allowed).await.is_ok());
    }
}
