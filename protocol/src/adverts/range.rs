//! The address range an advert is counted in, for the per-range cap on providers on probation.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The network an advert claims to be reachable from: the `/24` of an IPv4 address or the
/// `/48` of an IPv6 one, taken from the first of its addresses that starts with `/ip4/` or
/// `/ip6/`. Adverts without such an address all share [`AddressRange::Unknown`].
///
/// The addresses are the advertiser's own claim; one that lies about them cannot be dialled
/// there, and otherwise shares one range with every other advert that names no address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum AddressRange {
    /// The first three octets of an IPv4 address (its `/24`).
    V4([u8; 3]),
    /// The first three segments of an IPv6 address (its `/48`).
    V6([u16; 3]),
    /// No address of the advert names an IP.
    Unknown,
}

impl AddressRange {
    /// The range of the first address that names an IP, or [`AddressRange::Unknown`].
    pub fn of(addresses: &[String]) -> Self {
        addresses
            .iter()
            .find_map(|address| Self::parse(address))
            .unwrap_or(Self::Unknown)
    }

    /// The range of one multiaddr, if it starts with `/ip4/` or `/ip6/` and a valid address.
    fn parse(address: &str) -> Option<Self> {
        let mut parts = address.strip_prefix('/')?.split('/');
        match (parts.next()?, parts.next()?) {
            ("ip4", ip) => {
                let [a, b, c, _] = ip.parse::<Ipv4Addr>().ok()?.octets();
                Some(Self::V4([a, b, c]))
            }
            ("ip6", ip) => {
                let [a, b, c, ..] = ip.parse::<Ipv6Addr>().ok()?.segments();
                Some(Self::V6([a, b, c]))
            }
            _ => None,
        }
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4([a, b, c]) => write!(f, "{a}.{b}.{c}.0/24"),
            Self::V6([a, b, c]) => write!(f, "{a:x}:{b:x}:{c:x}::/48"),
            Self::Unknown => f.write_str("unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AddressRange;

    fn of(addresses: &[&str]) -> AddressRange {
        let owned: Vec<String> = addresses.iter().map(|a| (*a).to_owned()).collect();
        AddressRange::of(&owned)
    }

    #[test]
    fn the_first_ip_address_names_the_range() {
        assert_eq!(
            of(&["/ip4/10.1.2.3/tcp/4001"]),
            AddressRange::V4([10, 1, 2])
        );
        assert_eq!(
            of(&[
                "/dns4/example.org/tcp/1",
                "/ip6/2001:db8:7::1/udp/1/quic-v1"
            ]),
            AddressRange::V6([0x2001, 0xdb8, 7])
        );
        assert_eq!(
            of(&["/ip4/10.1.2.3/tcp/1", "/ip4/192.168.0.1/tcp/1"]),
            AddressRange::V4([10, 1, 2])
        );
        assert_eq!(of(&["/ip4/10.1.2.300/tcp/1"]), AddressRange::Unknown);
        assert_eq!(
            of(&["/dns4/example.org/tcp/1", "ip4/1.2.3.4"]),
            AddressRange::Unknown
        );
        assert_eq!(of(&[]), AddressRange::Unknown);
        assert_eq!(AddressRange::V4([10, 1, 2]).to_string(), "10.1.2.0/24");
        assert_eq!(
            AddressRange::V6([0x2001, 0xdb8, 7]).to_string(),
            "2001:db8:7::/48"
        );
    }
}
