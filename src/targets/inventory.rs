//! The static inventory: a YAML file listing the nodes, for bare-metal and VM fleets and the lab.
//!
//! ```yaml
//! nodes:
//!   - name: n1
//!     address: 198.18.0.1                      # or, dual-stack, one address per IP family:
//!     # addresses: [198.18.0.1, 2001:db8::1]
//!     network: host                            # optional: host (default) or pod; a node may be
//!                                              # listed once per network, each its own mesh
//!     port: 5201                               # optional, default --port
//!     client_command: [ip, netns, exec, n1]    # optional argv prefix that runs a command on n1
//!     cpu: 0.5                                 # optional: cores its iperf3 server and clients share
//!     iperf3_auth:                             # optional, for a server that authenticates
//!       username: mon                          # clients; each field defaults to its
//!       public_key_file: /etc/iperf3/n1.pem    # --iperf3-* flag
//!       password_file: /etc/iperf3-monitor/n1.password
//! ```

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::{Address, IpFamily, Network, Node, address};
use crate::credentials::{Credentials, Secret, read_password_file};
use crate::error::{Error, Result};

/// Largest inventory read: 5,000 nodes take well under 1 MiB.
pub const MAX_INVENTORY_BYTES: u64 = 16 << 20;

/// Deepest nesting of flow collections (`[`, `{`) accepted. The inventory needs 2; the YAML
/// parser takes time quadratic in the depth (40,000 levels, an 80 KB file, took 10 s).
const MAX_FLOW_DEPTH: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    nodes: Vec<InventoryNode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryNode {
    name: String,
    address: Option<String>,
    addresses: Option<Vec<String>>,
    port: Option<u16>,
    /// The network the server is on: the node may be listed once on each.
    #[serde(default)]
    network: Network,
    #[serde(default)]
    client_command: Vec<String>,
    /// Cores the node's iperf3 server and the clients run on it may use together.
    cpu: Option<f64>,
    iperf3_auth: Option<InventoryAuth>,
}

/// Credentials for the node's server; each field defaults to its `--iperf3-*` flag.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryAuth {
    username: Option<String>,
    public_key_file: Option<String>,
    password_file: Option<PathBuf>,
}

/// Reads and validates an inventory file, and the password files its nodes name. `credentials`
/// come from the `--iperf3-*` flags, with the password read.
pub async fn load(path: &Path, default_port: u16, credentials: Option<&Credentials>) -> Result<Vec<Node>> {
    let error = |message: String| Error::Inventory { path: path.to_path_buf(), message };
    let text = read_text(path).await.map_err(error)?;
    let mut nodes = parse(&text, default_port, credentials).map_err(error)?;
    // Each password file once, however many nodes name it.
    let mut passwords: HashMap<PathBuf, Secret> = HashMap::new();
    for node in &mut nodes {
        let Some(credentials) = node.credentials.as_mut().filter(|c| c.password.is_none()) else { continue };
        let password = match passwords.get(&credentials.password_file) {
            Some(password) => password.clone(),
            None => {
                let password = read_password_file(&credentials.password_file)
                    .map_err(|e| error(format!("iperf3_auth.password_file of node '{}': {e}", node.name)))?;
                passwords.insert(credentials.password_file.clone(), password.clone());
                password
            }
        };
        credentials.password = Some(password);
    }
    Ok(nodes)
}

/// The file as UTF-8 text, refusing anything larger than [`MAX_INVENTORY_BYTES`] (whatever its
/// size claims: a pipe or device says 0).
async fn read_text(path: &Path) -> std::result::Result<String, String> {
    let file = tokio::fs::File::open(path).await.map_err(|e| format!("cannot read it: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_INVENTORY_BYTES + 1).read_to_end(&mut bytes).await.map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_INVENTORY_BYTES {
        return Err(format!(
            "larger than {} MiB; an inventory of 5,000 nodes needs under 1 MiB",
            MAX_INVENTORY_BYTES >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        format!("not UTF-8 text (invalid bytes at offset {at}); save it as UTF-8")
    })
}

/// Parses inventory YAML; the error names the offending node and field. Nodes get `credentials`
/// (the flags'), merged with their own `iperf3_auth`; passwords from a node's own file are not
/// read here.
pub fn parse(
    text: &str,
    default_port: u16,
    credentials: Option<&Credentials>,
) -> std::result::Result<Vec<Node>, String> {
    check_flow_depth(text)?;
    let file: InventoryFile = serde_yaml_ng::from_str(text).map_err(|e| {
        e.to_string().replace("struct InventoryFile", "a mapping with a `nodes` list").replace(
            "struct InventoryNode",
            "a node (name, address or addresses, network, port, client_command, cpu, iperf3_auth)",
        )
    })?;
    let mut names = HashSet::new();
    let mut nodes = Vec::with_capacity(file.nodes.len());
    for (i, node) in file.nodes.into_iter().enumerate() {
        let at = |field: &str| format!("nodes[{i}].{field}");
        if node.name.trim().is_empty() {
            return Err(format!("{}: a node needs a non-empty name", at("name")));
        }
        if !names.insert((node.name.clone(), node.network)) {
            return Err(format!(
                "{}: '{}' is listed twice on the {} network; a node is listed at most once per network",
                at("name"),
                node.name,
                node.network
            ));
        }
        let addresses = node_addresses(node.address, node.addresses)
            .map_err(|(field, e)| format!("{}: {e} (node '{}')", at(&field), node.name))?;
        let cpu_millis = match node.cpu {
            None => None,
            Some(cores) if cores.is_finite() && (0.001..=4096.0).contains(&cores) => {
                Some((cores * 1000.0).round() as u32)
            }
            Some(cores) => {
                return Err(format!(
                    "{}: {cores} of node '{}' is not a number of cores between 0.001 and 4096",
                    at("cpu"),
                    node.name
                ));
            }
        };
        if node.port == Some(0) {
            return Err(format!("{}: port 0 of node '{}' is not a server port", at("port"), node.name));
        }
        if let Some(j) = node.client_command.iter().position(|arg| arg.is_empty()) {
            return Err(format!(
                "{}[{j}]: empty argument in the command of node '{}'",
                at("client_command"),
                node.name
            ));
        }
        let node_credentials = match node.iperf3_auth {
            None => credentials.cloned(),
            Some(auth) => Some(
                merge_auth(auth, credentials)
                    .map_err(|e| format!("{}: {e} (node '{}')", at("iperf3_auth"), node.name))?,
            ),
        };
        let mut parsed =
            Node::with_addresses(node.name, addresses, node.port.unwrap_or(default_port), node.client_command);
        parsed.network = node.network;
        parsed.cpu_millis = cpu_millis;
        parsed.credentials = node_credentials;
        nodes.push(parsed);
    }
    if nodes.is_empty() {
        return Err("nodes: the inventory lists no node".into());
    }
    Ok(nodes)
}

/// Refuses flow collections nested deeper than [`MAX_FLOW_DEPTH`], before the YAML parser
/// sees them. Brackets inside quoted scalars and comments do not count.
fn check_flow_depth(text: &str) -> std::result::Result<(), String> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut chars = text.chars().peekable();
    let mut previous = '\n';
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' if previous.is_whitespace() => while chars.next_if(|c| *c != '\n').is_some() {},
            '\'' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\'' if chars.next_if_eq(&'\'').is_none() => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(format!("line {line}: lists or mappings nested deeper than {MAX_FLOW_DEPTH} levels"));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    Ok(())
}

/// A node's `iperf3_auth` over the flags' credentials: its own password file is read later.
fn merge_auth(auth: InventoryAuth, flags: Option<&Credentials>) -> std::result::Result<Credentials, String> {
    let username = auth.username.or_else(|| flags.map(|c| c.username.clone()));
    let public_key_file = auth.public_key_file.or_else(|| flags.map(|c| c.public_key_file.clone()));
    let own_password_file = auth.password_file.is_some();
    let password_file = auth.password_file.or_else(|| flags.map(|c| c.password_file.clone()));
    let (Some(username), Some(public_key_file), Some(password_file)) = (username, public_key_file, password_file)
    else {
        return Err("needs username, public_key_file and password_file, here or from the --iperf3-* flags".into());
    };
    let mut credentials = Credentials::new(username, public_key_file, password_file)?;
    if !own_password_file {
        credentials.password = flags.and_then(|c| c.password.clone());
    }
    Ok(credentials)
}

/// A node's addresses from `address` (an IP address or a host name; a host name is measured
/// over IPv4) or `addresses` (IP addresses, one per family). The error names the field.
fn node_addresses(
    single: Option<String>,
    list: Option<Vec<String>>,
) -> std::result::Result<Vec<Address>, (String, String)> {
    match (single, list) {
        (Some(_), Some(_)) => Err(("addresses".into(), "give address or addresses, not both".into())),
        (None, None) => Err(("address".into(), "a node needs an address (or addresses, one per IP family)".into())),
        (None, Some(list)) if list.is_empty() => Err(("addresses".into(), "lists no address".into())),
        (None, Some(list)) => {
            address::parse_ips(list.iter().map(String::as_str)).map_err(|(i, e)| (format!("addresses[{i}]"), e))
        }
        // Anything with a ':' or all digits and dots is meant as an IP address, and must be one.
        (Some(text), None) if text.contains(':') || text.chars().all(|c| c.is_ascii_digit() || c == '.') => {
            address::parse_ip(&text).map(|a| vec![a]).map_err(|e| ("address".into(), e))
        }
        (Some(text), None) if is_valid_host_name(&text) => Ok(vec![Address { family: IpFamily::Ipv4, host: text }]),
        (Some(text), None) => Err(("address".into(), format!("'{text}' is not an IP address or host name"))),
    }
}

/// A host name of letters, digits, '-', '_' and '.' (never an option or a shell word).
fn is_valid_host_name(address: &str) -> bool {
    !address.is_empty()
        && address.len() <= 253
        && !address.starts_with(['-', '.'])
        && address.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_plain(text: &str, default_port: u16) -> std::result::Result<Vec<Node>, String> {
        parse(text, default_port, None)
    }

    #[test]
    fn parses_the_documented_format() {
        let nodes = parse_plain(
            "nodes:\n  - name: n1\n    address: 198.18.0.1\n    port: 5202\n    client_command: [ip, netns, exec, n1]\n    cpu: 0.25\n  - name: n2\n    address: node-2.example\n",
            5201,
        )
        .unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!((nodes[0].cpu_millis, nodes[1].cpu_millis), (Some(250), None));
        assert_eq!(nodes[0].port, 5202);
        assert_eq!(nodes[0].client_command, ["ip", "netns", "exec", "n1"]);
        assert_eq!(nodes[1].port, 5201);
        assert!(nodes[1].client_command.is_empty());
        // A host name is measured over IPv4 (iperf3 -4).
        assert_eq!(nodes[1].address(IpFamily::Ipv4), Some("node-2.example"));
    }

    #[test]
    fn a_node_may_be_listed_once_per_network() {
        let nodes = parse_plain(
            "nodes:\n  - name: n1\n    address: 198.18.0.1\n  - name: n1\n    network: pod\n    address: 198.19.0.1\n",
            5201,
        )
        .unwrap();
        assert_eq!(
            nodes.iter().map(|n| (n.name.as_str(), n.network)).collect::<Vec<_>>(),
            [("n1", Network::Host), ("n1", Network::Pod)]
        );
        let twice = "nodes:\n  - name: n1\n    network: pod\n    address: 198.18.0.1\n  - name: n1\n    network: pod\n    address: 198.19.0.1\n";
        let err = parse_plain(twice, 5201).unwrap_err();
        assert!(err.contains("nodes[1].name: 'n1' is listed twice on the pod network"), "{err}");
        let err =
            parse_plain("nodes:\n  - name: n1\n    network: overlay\n    address: 198.18.0.1\n", 5201).unwrap_err();
        assert!(err.contains("nodes[0].network") && err.contains("expected `host` or `pod`"), "{err}");
    }

    #[test]
    fn a_dual_stack_node_lists_one_address_per_family() {
        let nodes = parse_plain("nodes:\n  - name: n1\n    addresses: [2001:db8::1, 198.18.0.1]\n", 5201).unwrap();
        assert_eq!(nodes[0].address(IpFamily::Ipv4), Some("198.18.0.1"));
        assert_eq!(nodes[0].address(IpFamily::Ipv6), Some("2001:db8::1"));
        let nodes = parse_plain("nodes:\n  - name: n1\n    address: 'fe80::1%eth0'\n", 5201).unwrap();
        assert_eq!(nodes[0].address(IpFamily::Ipv6), Some("fe80::1%eth0"));
    }

    #[test]
    fn errors_name_the_node_and_field() {
        let cases = [
            ("nodes:\n  - name: a\n    address: 1.2.3.4\n  - name: a\n    address: 1.2.3.5\n", "nodes[1].name"),
            ("nodes:\n  - name: a\n    address: '-oProxyCommand=x'\n", "nodes[0].address"),
            ("nodes:\n  - name: a\n    address: 'a b'\n", "nodes[0].address"),
            ("nodes:\n  - name: a\n    address: fe80::1\n", "nodes[0].address: 'fe80::1' is an IPv6 link-local"),
            ("nodes:\n  - name: a\n    address: 198.18.0.300\n", "nodes[0].address: '198.18.0.300' is not an IP"),
            ("nodes:\n  - name: a\n", "nodes[0].address: a node needs an address"),
            ("nodes:\n  - name: a\n    addresses: []\n", "nodes[0].addresses: lists no address"),
            (
                "nodes:\n  - name: a\n    address: 1.2.3.4\n    addresses: [1.2.3.4]\n",
                "nodes[0].addresses: give address or addresses, not both (node 'a')",
            ),
            (
                "nodes:\n  - name: a\n    addresses: [1.2.3.4, 1.2.3.5]\n",
                "nodes[0].addresses[1]: '1.2.3.5' is a second ipv4 address",
            ),
            ("nodes:\n  - name: a\n    addresses: [1.2.3.4, host.example]\n", "nodes[0].addresses[1]: 'host.example'"),
            ("nodes:\n  - name: a\n    address: 1.2.3.4\n    port: 70000\n", "port"),
            ("nodes:\n  - name: a\n    address: 1.2.3.4\n    port: 0\n", "nodes[0].port"),
            ("nodes:\n  - name: a\n    address: 1.2.3.4\n    cpu: 0\n", "nodes[0].cpu"),
            ("nodes:\n  - name: a\n    address: 1.2.3.4\n    cpu: -1\n", "nodes[0].cpu"),
            ("nodes:\n  - name: a\n    adress: 1.2.3.4\n", "adress"),
            ("nodes:\n  - name: ''\n    address: 1.2.3.4\n", "nodes[0].name"),
            (
                "nodes:\n  - name: a\n    address: 1.2.3.4\n    client_command: [ssh, '']\n",
                "nodes[0].client_command[1]",
            ),
            ("nodes: []\n", "no node"),
            ("just text", "nodes"),
        ];
        for (yaml, expected) in cases {
            let err = parse_plain(yaml, 5201).unwrap_err();
            assert!(err.contains(expected), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn names_may_hold_any_characters() {
        let nodes = parse_plain("nodes:\n  - name: \"a b;$(x)\\n\\\"\"\n    address: ::1\n", 5201).unwrap();
        assert_eq!(nodes[0].name, "a b;$(x)\n\"");
    }

    fn flags() -> Credentials {
        let mut c = Credentials::new("mon".into(), "/etc/iperf3/public.pem".into(), "/run/pw".into()).unwrap();
        c.password = Some(Secret::new("from-flags"));
        c
    }

    #[test]
    fn nodes_inherit_the_flags_credentials_and_may_override_them() {
        let yaml = "nodes:
  - name: a
    address: 198.18.0.1
  - name: b
    address: 198.18.0.2
    iperf3_auth: {username: other}
  - name: c
    address: 198.18.0.3
    iperf3_auth: {password_file: /etc/c.password, public_key_file: /etc/c.pem}
";
        let nodes = parse(yaml, 5201, Some(&flags())).unwrap();
        assert_eq!(nodes[0].credentials, Some(flags()));
        let b = nodes[1].credentials.as_ref().unwrap();
        assert_eq!((b.username.as_str(), b.password.as_ref().map(Secret::expose)), ("other", Some("from-flags")));
        let c = nodes[2].credentials.as_ref().unwrap();
        assert_eq!((c.username.as_str(), c.public_key_file.as_str()), ("mon", "/etc/c.pem"));
        assert_eq!((c.password_file.to_str(), c.password.as_ref()), (Some("/etc/c.password"), None), "read by load()");
        assert!(parse(yaml.split("  - name: b").next().unwrap(), 5201, None).unwrap()[0].credentials.is_none());
    }

    #[test]
    fn incomplete_or_unknown_auth_fields_name_the_node() {
        let err = parse("nodes:\n  - name: a\n    address: 1.2.3.4\n    iperf3_auth: {username: mon}\n", 5201, None)
            .unwrap_err();
        assert!(err.contains("nodes[0].iperf3_auth") && err.contains("node 'a'"), "{err}");
        let err = parse("nodes:\n  - name: a\n    address: 1.2.3.4\n    iperf3_auth: {password: x}\n", 5201, None)
            .unwrap_err();
        assert!(err.contains("unknown field `password`"), "{err}");
    }

    #[tokio::test]
    async fn load_reads_each_nodes_password_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.password"), "for-c\n").unwrap();
        let yaml = format!(
            "nodes:\n  - name: a\n    address: 1.2.3.4\n  - name: c\n    address: 1.2.3.5\n    iperf3_auth: {{password_file: {}}}\n",
            dir.path().join("c.password").display()
        );
        let path = dir.path().join("inventory.yaml");
        std::fs::write(&path, &yaml).unwrap();
        let nodes = load(&path, 5201, Some(&flags())).await.unwrap();
        let password =
            |i: usize| nodes[i].credentials.as_ref().unwrap().password.as_ref().unwrap().expose().to_string();
        assert_eq!((password(0), password(1)), ("from-flags".to_string(), "for-c".to_string()));
        std::fs::write(&path, yaml.replace("c.password", "missing.password")).unwrap();
        let err = load(&path, 5201, Some(&flags())).await.unwrap_err().to_string();
        assert!(err.contains("password_file of node 'c'") && err.contains("missing.password"), "{err}");
    }

    #[tokio::test]
    async fn huge_and_binary_files_are_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inventory.yaml");
        let mut huge = String::from("nodes:\n");
        while (huge.len() as u64) <= MAX_INVENTORY_BYTES {
            huge.push_str("  - name: padding-padding-padding-padding\n    address: 198.18.0.1\n");
        }
        std::fs::write(&path, huge).unwrap();
        let err = load(&path, 5201, None).await.unwrap_err().to_string();
        assert!(err.contains("larger than 16 MiB"), "{err}");
        std::fs::write(&path, b"nodes:\n  - name: \xff\xfe\n").unwrap();
        let err = load(&path, 5201, None).await.unwrap_err().to_string();
        assert!(err.contains("not UTF-8 text (invalid bytes at offset 17)"), "{err}");
        // A device claims a size of 0 and never ends.
        let err = load(Path::new("/dev/zero"), 5201, None).await.unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn brackets_in_quotes_and_comments_are_not_nesting() {
        let deep = "[".repeat(100);
        let yaml = format!(
            "# {deep}\nnodes:\n  - name: '{deep}''{deep}'\n    address: 1.2.3.4 # {deep}\n  - name: \"{deep}\\\"{deep}\"\n    address: 1.2.3.5\n    client_command: [[a]]\n"
        );
        let err = parse_plain(&yaml, 5201).unwrap_err();
        assert!(err.contains("nodes[1].client_command[0]: invalid type: sequence"), "{err}");
        let flat = yaml.replace("[[a]]", "[a]");
        assert_eq!(parse_plain(&flat, 5201).unwrap()[0].name, format!("{deep}'{deep}"));
    }

    #[test]
    fn yaml_bombs_and_deep_nesting_fail_fast() {
        // A billion laughs: nine aliases per level, nine levels.
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            let prev = level - 1;
            bomb.push_str(&format!("a{level}: &a{level} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        bomb.push_str("nodes:\n  - name: a\n    address: 1.2.3.4\n    client_command: *a8\n");
        let started = std::time::Instant::now();
        let err = parse_plain(&bomb, 5201).unwrap_err();
        assert!(err.contains("unknown field `a0`"), "{err}");
        // Deep nesting is refused before the parser, whose time grows with the square of the depth.
        let nested = format!("nodes: {}{}\n", "[".repeat(1_000_000), "]".repeat(1_000_000));
        let err = parse_plain(&nested, 5201).unwrap_err();
        assert!(err.contains("line 1: lists or mappings nested deeper than 64 levels"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
    }
}
