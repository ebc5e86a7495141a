//! The fixtures are the files of `configs/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use c19_testkit::fixtures;

#[test]
fn the_fixtures_are_the_files_in_configs() {
    assert_eq!(fixtures::LOCAL, include_str!("../../../configs/local.yml"));
    for (node, file) in [
        include_str!("../../../configs/cluster-node-0.yml"),
        include_str!("../../../configs/cluster-node-1.yml"),
        include_str!("../../../configs/cluster-node-2.yml"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(fixtures::cluster_node(node as u16), file, "node {node}");
    }
}
