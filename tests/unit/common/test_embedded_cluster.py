"""The pure parts of the embedded cluster: slot split and CLUSTER NODES parsing."""

from __future__ import annotations

import itertools

from common.embedded_cluster import SLOTS, parse_cluster_nodes, slot_ranges


def test_slots_are_split_into_contiguous_ranges_covering_all() -> None:
    ranges = slot_ranges(3)
    assert ranges == [(0, 5460), (5461, 10922), (10923, 16383)]  # as redis-cli splits them
    for masters in (1, 2, 3, 5, 7):
        ranges = slot_ranges(masters)
        assert ranges[0][0] == 0 and ranges[-1][1] == SLOTS - 1
        assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))


def test_cluster_nodes_lines_become_records() -> None:
    text = (
        "07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected\n"
        "e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 7000 [5461->-abcd]\n"
        "9a1b 127.0.0.1:30002@40002 master,fail - 1426238316232 1426238315000 2 disconnected\n"
    )
    replica, master, dead = parse_cluster_nodes(text)
    assert (replica.role, replica.master_id, replica.port, replica.slots) == ("slave", "e7d1", 30004, ())
    assert (master.role, master.port, master.failed) == ("master", 30001, False)
    assert master.slots == ((0, 5460), (7000, 7000))  # a migrating slot is left out
    assert dead.failed and dead.role == "master"
