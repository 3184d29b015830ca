//! The static inventory: a YAML file listing the nodes, for bare-metal and VM fleets and the lab.
//!
//! ```yaml
//! nodes:
//!   - name: n1
//!     address: 198.18.0.1
//!     port: 5201                               # optional, default --port
//!     client_command: [ip, netns, exec, n1]    # optional argv prefix that runs a command on n1
//! ```

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use super::Node;
use crate::error::{Error, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    nodes: Vec<InventoryNode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryNode {
    name: String,
    address: String,
    port: Option<u16>,
    #[serde(default)]
    client_command: Vec<String>,
}

/// Reads and validates an inventory file.
pub async fn load(path: &Path, default_port: u16) -> Result<Vec<Node>> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| Error::Inventory { path: path.to_path_buf(), message: format!("cannot read it: {e}") })?;
    parse(&text, default_port).map_err(|message| Error::Inventory { path: path.to_path_buf(), message })
}

/// Parses inventory YAML; the error names the offending node and field.
pub fn parse(text: &str, default_port: u16) -> std::result::Result<Vec<Node>, String> {
    let file: InventoryFile = serde_yaml_ng::from_str(text).map_err(|e| {
        e.to_string()
            .replace("struct InventoryFile", "a mapping with a `nodes` list")
            .replace("struct InventoryNode", "a node (name, address, port, client_command)")
    })?;
    let mut names = HashSet::new();
    let mut nodes = Vec::with_capacity(file.nodes.len());
    for (i, node) in file.nodes.into_iter().enumerate() {
        let at = |field: &str| format!("nodes[{i}].{field}");
        if node.name.trim().is_empty() {
            return Err(format!("{}: a node needs a non-empty name", at("name")));
        }
        if !names.insert(node.name.clone()) {
            return Err(format!("{}: '{}' is listed twice; node names must be unique", at("name"), node.name));
        }
        if !is_valid_address(&node.address) {
            return Err(format!(
                "{}: '{}' of node '{}' is not an IP address or host name",
                at("address"),
                node.address,
                node.name
            ));
        }
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
        nodes.push(Node::new(node.name, node.address, node.port.unwrap_or(default_port), node.client_command));
    }
    if nodes.is_empty() {
        return Err("nodes: the inventory lists no node".into());
    }
    Ok(nodes)
}

/// An IP address, or a host name of letters, digits, '-', '_' and '.' (never an option or a shell word).
fn is_valid_address(address: &str) -> bool {
    if address.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !address.is_empty()
        && address.len() <= 253
        && !address.starts_with(['-', '.'])
        && address.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_format() {
        let nodes = parse(
            "nodes:\n  - name: n1\n    address: 198.18.0.1\n    port: 5202\n    client_command: [ip, netns, exec, n1]\n  - name: n2\n    address: node-2.example\n",
            5201,
        )
        .unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].port, 5202);
        assert_eq!(nodes[0].client_command, ["ip", "netns", "exec", "n1"]);
        assert_eq!(nodes[1].port, 5201);
        assert!(nodes[1].client_command.is_empty());
    }

    #[test]
    fn errors_name_the_node_and_field() {
        let cases = [
            ("nodes:\n  - name: a\n    address: 1.2.3.4\n  - name: a\n    address: 1.2.3.5\n", "nodes[1].name"),
            ("nodes:\n  - name: a\n    address: '-oProxyCommand=x'\n", "nodes[0].address"),
            ("nodes:\n  - name: a\n    address: 'a b'\n", "nodes[0].address"),
            ("nodes:\n  - name: a\n    address: 1.2.3.4\n    port: 70000\n", "port"),
            ("nodes:\n  - name: a\n    address: 1.2.3.4\n    port: 0\n", "nodes[0].port"),
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
            let err = parse(yaml, 5201).unwrap_err();
            assert!(err.contains(expected), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn names_may_hold_any_characters() {
        let nodes = parse("nodes:\n  - name: \"a b;$(x)\\n\\\"\"\n    address: ::1\n", 5201).unwrap();
        assert_eq!(nodes[0].name, "a b;$(x)\n\"");
    }
}
