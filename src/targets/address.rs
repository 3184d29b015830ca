//! A node's addresses, one per IP family, and which nodes each family's mesh holds. Pure.
//!
//! A dual-stack node is measured once per family it shares with its peer, each family in rounds
//! of its own: two families on one node's link at once would share it, like two protocols.

use std::net::{IpAddr, Ipv6Addr};

use clap::ValueEnum;
use serde::Serialize;

/// An IP family, the `ip_family` label of every pair series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    Ipv4,
    Ipv6,
}

impl IpFamily {
    pub const ALL: [IpFamily; 2] = [IpFamily::Ipv4, IpFamily::Ipv6];

    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "ipv4",
            IpFamily::Ipv6 => "ipv6",
        }
    }

    /// The iperf3 client flag that keeps a test in this family (a host name may resolve to both).
    pub fn iperf3_flag(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "--version4",
            IpFamily::Ipv6 => "--version6",
        }
    }

    fn bit(self) -> u8 {
        match self {
            IpFamily::Ipv4 => 1,
            IpFamily::Ipv6 => 2,
        }
    }
}

impl std::fmt::Display for IpFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a node's iperf3 server is reached over one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub family: IpFamily,
    /// An IP address (an IPv6 link-local one with its `%zone`), or a host name.
    pub host: String,
}

/// Parses an IP address as a node's address; the error says what is wrong with it.
pub fn parse_ip(text: &str) -> Result<Address, String> {
    let (ip, zone) = match text.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (text, None),
    };
    let parsed: IpAddr = ip.parse().map_err(|_| format!("'{text}' is not an IP address"))?;
    match (parsed, zone) {
        (IpAddr::V4(_), None) => Ok(Address { family: IpFamily::Ipv4, host: text.to_string() }),
        (IpAddr::V4(_), Some(_)) => Err(format!("'{text}': only an IPv6 link-local address takes a %zone")),
        (IpAddr::V6(v6), None) if is_link_local(v6) => Err(format!(
            "'{text}' is an IPv6 link-local address without a zone: add the interface it is reached through, \
             e.g. '{text}%eth0', or give a global address"
        )),
        (IpAddr::V6(v6), Some(zone)) if !is_link_local(v6) => {
            Err(format!("'{text}': a zone (%{zone}) only belongs on an IPv6 link-local address"))
        }
        (IpAddr::V6(_), Some(zone)) if !is_valid_zone(zone) => {
            Err(format!("'{text}': '{zone}' is not an interface name or index"))
        }
        (IpAddr::V6(_), _) => Ok(Address { family: IpFamily::Ipv6, host: text.to_string() }),
    }
}

fn is_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

fn is_valid_zone(zone: &str) -> bool {
    !zone.is_empty() && zone.len() <= 15 && zone.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

/// A node's addresses from a list of IP addresses: one per family. The error names the
/// position (0-based) of the offending entry.
pub fn parse_ips<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Vec<Address>, (usize, String)> {
    let mut addresses: Vec<Address> = Vec::new();
    for (i, text) in texts.into_iter().enumerate() {
        let address = parse_ip(text).map_err(|e| (i, e))?;
        if let Some(other) = addresses.iter().find(|a| a.family == address.family) {
            return Err((
                i,
                format!(
                    "'{text}' is a second {} address (after '{}'): give one address per IP family",
                    address.family, other.host
                ),
            ));
        }
        addresses.push(address);
    }
    addresses.sort_by_key(|a| a.family);
    Ok(addresses)
}

/// A set of IP families, as a node's addresses or a run's selection give them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Families(u8);

impl Families {
    pub fn of(addresses: &[Address]) -> Families {
        Families(addresses.iter().fold(0, |bits, a| bits | a.family.bit()))
    }

    pub fn from_list(families: &[IpFamily]) -> Families {
        Families(families.iter().fold(0, |bits, f| bits | f.bit()))
    }

    pub fn contains(self, family: IpFamily) -> bool {
        self.0 & family.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn and(self, other: Families) -> Families {
        Families(self.0 & other.0)
    }

    pub fn union(self, other: Families) -> Families {
        Families(self.0 | other.0)
    }

    /// In label order: ipv4 before ipv6.
    pub fn list(self) -> Vec<IpFamily> {
        IpFamily::ALL.into_iter().filter(|f| self.contains(*f)).collect()
    }
}

/// The nodes of each family's mesh, and the pairs no family covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// For each family measured, in label order: the indexes of its nodes, ascending.
    pub families: Vec<(IpFamily, Vec<usize>)>,
    /// Directed pairs whose nodes share none of the measured families: never measured.
    pub pairs_without_family: u64,
    /// Nodes with an address in none of the measured families (their pairs are all among those).
    pub nodes_without_family: Vec<usize>,
}

/// Which nodes each family's mesh holds. `node_families[i]` are node i's families; `chosen` the
/// families asked for (None: every family a node has). With `star_source`, node 0 is the star's
/// client, runs its tests from this process and is in every family's mesh; the pairs counted are
/// then its pairs only.
pub fn membership(node_families: &[Families], chosen: Option<&[IpFamily]>, star_source: bool) -> Membership {
    let peers = if star_source { node_families.get(1..).unwrap_or(&[]) } else { node_families };
    let present = peers.iter().fold(Families::default(), |all, f| all.union(*f));
    let selected = match chosen {
        Some(list) => Families::from_list(list),
        None if present.is_empty() => Families::from_list(&[IpFamily::Ipv4]),
        None => present,
    };
    let families = selected
        .list()
        .into_iter()
        .map(|family| {
            let members = (0..node_families.len())
                .filter(|&i| (star_source && i == 0) || node_families[i].contains(family))
                .collect();
            (family, members)
        })
        .collect();
    let offset = usize::from(star_source);
    let nodes_without_family: Vec<usize> =
        peers.iter().enumerate().filter(|(_, f)| f.and(selected).is_empty()).map(|(i, _)| i + offset).collect();
    let pairs_without_family = if star_source {
        nodes_without_family.len() as u64
    } else {
        // Count by family set (four kinds): a 5,000-node mesh has 25 million pairs.
        let mut kinds = [0u64; 4];
        for f in peers {
            kinds[usize::from(f.and(selected).0)] += 1;
        }
        let mut pairs = 0;
        for a in 0..4 {
            for b in 0..4 {
                if a & b == 0 {
                    pairs += if a == b { kinds[a] * kinds[a].saturating_sub(1) } else { kinds[a] * kinds[b] };
                }
            }
        }
        pairs
    };
    Membership { families, pairs_without_family, nodes_without_family }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_parsed_with_their_family() {
        assert_eq!(parse_ip("198.18.0.1").unwrap().family, IpFamily::Ipv4);
        assert_eq!(parse_ip("2001:db8::1").unwrap().family, IpFamily::Ipv6);
        assert_eq!(parse_ip("fe80::1%eth0").unwrap().host, "fe80::1%eth0");
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        for (text, says) in [
            ("fe80::1", "link-local address without a zone"),
            ("198.18.0.1%eth0", "only an IPv6 link-local"),
            ("2001:db8::1%eth0", "only belongs on an IPv6 link-local"),
            ("fe80::1%", "not an interface name"),
            ("2001:db8::g", "not an IP address"),
            ("n1.example", "not an IP address"),
            ("", "not an IP address"),
        ] {
            let err = parse_ip(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn one_address_per_family() {
        let both = parse_ips(["2001:db8::1", "198.18.0.1"]).unwrap();
        assert_eq!(both.iter().map(|a| a.family).collect::<Vec<_>>(), [IpFamily::Ipv4, IpFamily::Ipv6]);
        let (at, err) = parse_ips(["198.18.0.1", "2001:db8::1", "198.18.0.2"]).unwrap_err();
        assert_eq!(at, 2);
        assert!(err.contains("second ipv4 address (after '198.18.0.1')"), "{err}");
    }

    fn families(spec: &[&str]) -> Vec<Families> {
        spec.iter()
            .map(|s| {
                let list: Vec<IpFamily> = s
                    .split('+')
                    .filter(|p| !p.is_empty())
                    .map(|p| if p == "4" { IpFamily::Ipv4 } else { IpFamily::Ipv6 })
                    .collect();
                Families::from_list(&list)
            })
            .collect()
    }

    #[test]
    fn every_family_a_node_has_is_measured_by_default() {
        let m = membership(&families(&["4+6", "4+6", "4", "6"]), None, false);
        assert_eq!(m.families, vec![(IpFamily::Ipv4, vec![0, 1, 2]), (IpFamily::Ipv6, vec![0, 1, 3])]);
        // 2 ↔ 3 share nothing.
        assert_eq!(m.pairs_without_family, 2);
        assert!(m.nodes_without_family.is_empty());
    }

    #[test]
    fn a_single_stack_mesh_is_one_family_of_every_node() {
        let m = membership(&families(&["4", "4", "4"]), None, false);
        assert_eq!(m.families, vec![(IpFamily::Ipv4, vec![0, 1, 2])]);
        assert_eq!(m.pairs_without_family, 0);
    }

    #[test]
    fn chosen_families_leave_out_the_others() {
        let m = membership(&families(&["4+6", "4", "4+6"]), Some(&[IpFamily::Ipv6]), false);
        assert_eq!(m.families, vec![(IpFamily::Ipv6, vec![0, 2])]);
        // Node 1 has no IPv6: its 4 directed pairs are not measured.
        assert_eq!(m.pairs_without_family, 4);
        assert_eq!(m.nodes_without_family, vec![1]);
    }

    #[test]
    fn the_star_source_is_in_every_family() {
        let m = membership(&families(&["", "4+6", "4", "6"]), None, true);
        assert_eq!(m.families, vec![(IpFamily::Ipv4, vec![0, 1, 2]), (IpFamily::Ipv6, vec![0, 1, 3])]);
        assert_eq!(m.pairs_without_family, 0);
        let m = membership(&families(&["", "4", "6"]), Some(&[IpFamily::Ipv4]), true);
        assert_eq!((m.pairs_without_family, m.nodes_without_family), (1, vec![2]));
    }

    #[test]
    fn the_pair_count_matches_counting_every_pair() {
        let nodes = families(&["4+6", "4", "6", "", "4", "6", "4+6"]);
        for chosen in [None, Some(&[IpFamily::Ipv4][..]), Some(&[IpFamily::Ipv6][..])] {
            let selected = chosen.map_or(Families::from_list(&IpFamily::ALL), Families::from_list);
            let mut expected = 0;
            for (i, a) in nodes.iter().enumerate() {
                for (j, b) in nodes.iter().enumerate() {
                    expected += u64::from(i != j && a.and(*b).and(selected).is_empty());
                }
            }
            assert_eq!(membership(&nodes, chosen, false).pairs_without_family, expected, "{chosen:?}");
        }
    }
}
