//! Decoding with quarantine: each invalid record is set aside with its exact reason, what
//! depends on it fails closed, and everything else is served.

use switchyard_proto::config::v1 as pb;

use super::*;
use crate::testing::{DEFAULT_GUARDRAIL, ORG, SnapshotBuilder, USER, WORKSPACE, key_hash};

fn hash(n: usize) -> [u8; 32] {
    parse_hash(&key_hash(n)).unwrap()
}

fn records(s: &Snapshot) -> Vec<String> {
    s.quarantine
        .records()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Why key `n` is refused, as `<kind> <id>`; `None` when it is served.
fn blocked(s: &Snapshot, n: usize) -> Option<String> {
    let key = s.keys.get(&hash(n)).expect("the key is in the index");
    s.quarantine
        .blocking(key)
        .map(|b| format!("{} {}", b.kind.label(), b.id))
}

/// A second organization with its own workspace and key (key 0), so that every case shows the
/// rest of the snapshot unharmed.
fn with_bystander(builder: SnapshotBuilder) -> SnapshotBuilder {
    builder
        .edit(|r| {
            r.organizations.push(pb::Organization {
                id: "org-other".into(),
                name: "Other".into(),
                credits_usd: "10".into(),
                ..Default::default()
            });
            r.workspaces.push(pb::Workspace {
                id: "ws-other".into(),
                organization_id: "org-other".into(),
                name: "Other".into(),
                ..Default::default()
            });
        })
        .with_inference_key_where(|k| {
            k.organization_id = "org-other".into();
            k.workspace_id = "ws-other".into();
        })
}

fn bystander_served(s: &Snapshot) {
    assert_eq!(blocked(s, 0), None, "another organization's key is served");
    assert!(s.models.contains_key("mock/small"));
}

#[test]
fn a_valid_snapshot_quarantines_nothing() {
    let s = with_bystander(SnapshotBuilder::new())
        .with_inference_key()
        .build();
    assert!(s.quarantine.is_empty());
    assert_eq!(blocked(&s, 1), None);
}

#[test]
fn a_limit_beyond_the_maximum_blocks_only_its_key() {
    let s = with_bystander(SnapshotBuilder::new())
        .with_inference_key_where(|k| k.limit_usd = "2000000000".into())
        .with_inference_key_where(|k| k.limit_usd = "20000000".into())
        .build();
    assert_eq!(
        records(&s),
        [format!(
            "key {}: limit: `2000000000` is above the maximum of 1000000000 USD",
            key_hash(1)
        )]
    );
    assert_eq!(blocked(&s, 1), Some(format!("key {}", key_hash(1))));
    assert_eq!(blocked(&s, 2), None, "twenty million is within range");
    bystander_served(&s);
}

#[test]
fn invalid_keys_are_blocked_or_dropped() {
    let s = with_bystander(SnapshotBuilder::new())
        .with_inference_key_where(|k| k.kind = 0)
        .with_inference_key_where(|k| k.workspace_id = "nowhere".into())
        .with_inference_key_where(|k| k.organization_id = "org-other".into())
        .with_inference_key_where(|k| k.limit_reset = 42)
        .with_inference_key_where(|k| k.hash = "NOT-HEX".into())
        .build();
    let h = |n| key_hash(n);
    assert_eq!(
        records(&s),
        [
            format!("key {}: unknown kind 0", h(1)),
            format!("key {}: unknown workspace nowhere", h(2)),
            format!(
                "key {}: workspace ws-test is not in organization org-other",
                h(3)
            ),
            format!("key {}: unknown limit reset 42", h(4)),
            "key NOT-HEX: hash is not 64 lowercase hex digits".into(),
        ]
    );
    for n in 1..=4 {
        assert_eq!(blocked(&s, n), Some(format!("key {}", h(n))));
    }
    bystander_served(&s);
}

#[test]
fn a_duplicated_key_is_blocked() {
    let s = SnapshotBuilder::new()
        .with_inference_key()
        .edit(|r| {
            let copy = r.keys[0].clone();
            r.keys.push(copy);
        })
        .build();
    assert_eq!(
        records(&s),
        [format!("key {}: duplicate hash", key_hash(0))]
    );
    assert_eq!(blocked(&s, 0), Some(format!("key {}", key_hash(0))));
    assert_eq!(s.keys.len(), 1);
}

#[test]
fn bad_credits_block_the_organization() {
    let s = with_bystander(SnapshotBuilder::new().with_credits("1e6"))
        .with_inference_key()
        .build();
    assert_eq!(
        records(&s),
        ["organization org-test: credits: `1e6` is not a non-negative decimal amount of USD"]
    );
    assert_eq!(blocked(&s, 1), Some("organization org-test".into()));
    bystander_served(&s);
}

#[test]
fn a_workspace_of_no_known_organization_is_blocked() {
    let s = with_bystander(SnapshotBuilder::new())
        .edit(|r| {
            r.workspaces.push(pb::Workspace {
                id: "ws-orphan".into(),
                organization_id: "org-gone".into(),
                name: "Orphan".into(),
                ..Default::default()
            })
        })
        .with_inference_key_where(|k| {
            k.organization_id = "org-gone".into();
            k.workspace_id = "ws-orphan".into();
        })
        .build();
    assert_eq!(
        records(&s),
        ["workspace ws-orphan: unknown organization org-gone"]
    );
    assert_eq!(blocked(&s, 1), Some("workspace ws-orphan".into()));
    bystander_served(&s);
}

fn budget(limit: &str, window: pb::SpendWindow) -> impl FnOnce(&mut pb::Guardrail) {
    let limit = limit.to_owned();
    move |g| {
        g.limit_usd = limit;
        g.reset_interval = window as i32;
    }
}

#[test]
fn an_invalid_guardrail_blocks_its_workspace() {
    type Edit = fn(&mut pb::Guardrail);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "g",
            |g| g.limit_usd = "5".into(),
            "guardrail g: a limit needs a known reset interval (got 0)",
        ),
        (
            "g",
            |g| {
                g.limit_usd = "5".into();
                g.reset_interval = 99;
            },
            "guardrail g: a limit needs a known reset interval (got 99)",
        ),
        (
            "g",
            |g| budget("-5", pb::SpendWindow::Daily)(g),
            "guardrail g: limit: `-5` is not a non-negative decimal amount of USD",
        ),
        (
            "g",
            |g| budget("1000000001", pb::SpendWindow::Daily)(g),
            "guardrail g: limit: `1000000001` is above the maximum of 1000000000 USD",
        ),
        (
            "g",
            |g| g.allowed_models = vec!["".into()],
            "guardrail g: empty id in allowed_models",
        ),
        (
            "a|b",
            |_| {},
            "guardrail a|b: id must be non-empty and free of `|`",
        ),
        (
            "g",
            |g| g.organization_id = "org-other".into(),
            "guardrail g: workspace ws-test is not in organization org-other",
        ),
    ];
    for (id, edit, expected) in cases {
        let s = with_bystander(SnapshotBuilder::new())
            .with_guardrail(id, edit)
            .with_inference_key()
            .build();
        assert_eq!(records(&s), [expected]);
        assert_eq!(
            blocked(&s, 1),
            Some(format!("guardrail {id}")),
            "{expected}: the workspace's keys are refused"
        );
        bystander_served(&s);
    }
}

#[test]
fn duplicate_or_second_default_guardrails_block_the_workspace() {
    let s = SnapshotBuilder::new()
        .with_guardrail("g", |_| {})
        .with_guardrail("g", |_| {})
        .with_inference_key()
        .build();
    assert_eq!(
        records(&s),
        [
            "guardrail g: duplicate guardrail id",
            "guardrail g: duplicate guardrail id"
        ]
    );
    assert_eq!(blocked(&s, 0), Some("guardrail g".into()));

    let s = SnapshotBuilder::new()
        .with_default_guardrail(|_| {})
        .with_guardrail("second", |g| g.is_default = true)
        .with_inference_key()
        .build();
    assert_eq!(
        records(&s),
        ["guardrail second: workspace ws-test has a second default guardrail"]
    );
    assert_eq!(blocked(&s, 0), Some("guardrail second".into()));
}

#[test]
fn an_assignment_to_a_missing_or_foreign_guardrail_blocks_its_holder() {
    let h = key_hash(1);
    let s = with_bystander(SnapshotBuilder::new())
        .with_default_guardrail(|_| {})
        .with_inference_key()
        .assign_guardrail_to_last_key("missing")
        .with_inference_key()
        .assign_guardrail_to_last_key(DEFAULT_GUARDRAIL)
        .build();
    assert_eq!(
        records(&s),
        [
            format!("key_guardrails {h}: unknown guardrail missing"),
            format!(
                "key_guardrails {}: guardrail {DEFAULT_GUARDRAIL} is a workspace default and \
                 cannot be assigned",
                key_hash(2)
            ),
        ]
    );
    assert_eq!(blocked(&s, 1), Some(format!("key_guardrails {h}")));
    assert_eq!(
        blocked(&s, 2),
        Some(format!("key_guardrails {}", key_hash(2)))
    );
    bystander_served(&s);

    // A member's assignment to a guardrail that was itself set aside blocks the member.
    let s = with_bystander(SnapshotBuilder::new())
        .with_workspace("ws-team")
        .with_guardrail("bad", |g| {
            g.workspace_id = "ws-team".into();
            g.limit_usd = "x".into();
        })
        .assign_guardrail_to_member(USER, "bad")
        .with_inference_key()
        .build();
    assert!(records(&s).contains(&format!(
        "member_guardrails {ORG}|{USER}: guardrail bad was set aside"
    )));
    assert_eq!(
        blocked(&s, 1),
        Some(format!("member_guardrails {ORG}|{USER}"))
    );
    bystander_served(&s);

    // Assignments of keys or members that do not exist block nothing.
    let s = SnapshotBuilder::new()
        .with_guardrail("g", |_| {})
        .edit(|r| {
            r.key_guardrails.push(pb::KeyGuardrails {
                key_hash: "ab".repeat(32),
                guardrail_ids: vec!["g".into()],
            });
            r.member_guardrails.push(pb::MemberGuardrails {
                organization_id: "org-gone".into(),
                user_id: USER.into(),
                guardrail_ids: vec!["g".into()],
            });
        })
        .with_inference_key()
        .build();
    assert_eq!(
        records(&s),
        [
            format!("key_guardrails {}: unknown key", "ab".repeat(32)),
            format!("member_guardrails org-gone|{USER}: unknown organization or empty user id"),
        ]
    );
    assert_eq!(blocked(&s, 0), None);
}

#[test]
fn a_bad_workspace_budget_blocks_the_workspace() {
    let s = with_bystander(SnapshotBuilder::new())
        .with_workspace_budget(WORKSPACE, crate::Window::Daily, "1", false)
        .with_workspace_budget(WORKSPACE, crate::Window::Daily, "2", false)
        .with_inference_key()
        .build();
    assert_eq!(
        records(&s),
        ["workspace_budget ws-test|daily: two daily budgets"]
    );
    assert_eq!(
        blocked(&s, 1),
        Some("workspace_budget ws-test|daily".into())
    );
    bystander_served(&s);

    let s = SnapshotBuilder::new()
        .with_workspace_budget(WORKSPACE, crate::Window::Daily, "", false)
        .edit(|r| {
            r.workspace_budgets.push(pb::WorkspaceBudget {
                workspace_id: "nope".into(),
                interval: pb::SpendWindow::Daily as i32,
                limit_usd: "1".into(),
                include_byok: false,
            })
        })
        .with_inference_key()
        .build();
    assert_eq!(
        records(&s),
        [
            "workspace_budget ws-test|daily: limit: `` is not a non-negative decimal amount of USD",
            "workspace_budget nope|daily: unknown workspace",
        ]
    );
    assert_eq!(
        blocked(&s, 0),
        Some("workspace_budget ws-test|daily".into())
    );
}

#[test]
fn an_invalid_endpoint_leaves_its_route_and_a_model_without_one_is_unavailable() {
    let s = SnapshotBuilder::new()
        .with_model("m", &["a", "b"])
        .with_model("gone", &["a"])
        .edit(|r| {
            let m = r.models.iter_mut().find(|m| m.id == "m").unwrap();
            m.endpoints[0].base_url = "ftp://x".into();
            let gone = r.models.iter_mut().find(|m| m.id == "gone").unwrap();
            gone.endpoints[0].price = Some(pb::Price {
                prompt: "abc".into(),
                ..Default::default()
            });
        })
        .build();
    assert_eq!(
        records(&s),
        [
            "endpoint m|a: base URL \"ftp://x\": scheme must be http or https",
            "endpoint gone|a: price prompt: `abc` is not a non-negative decimal amount of USD",
            "model gone: no valid provider endpoint",
        ]
    );
    let m = &s.models["m"];
    assert_eq!(m.endpoints.len(), 1);
    assert_eq!(m.endpoints[0].provider_id, "b");
    assert!(!s.models.contains_key("gone"));
    assert_eq!(
        s.quarantine.model("gone").map(|b| b.kind),
        Some(RecordKind::Model)
    );
    assert!(s.models.contains_key("mock/small"));
}

#[test]
fn an_unusable_byok_credential_is_never_sent_but_keeps_its_restrictions() {
    let s = SnapshotBuilder::new()
        .with_inference_key()
        .with_byok("bad", "mock", |c| {
            c.api_key = "line\nbreak".into();
            c.is_byok_only = true;
        })
        .with_byok("hashes", "mock", |c| {
            c.allowed_key_hashes = vec!["zz".into()]
        })
        .build();
    assert_eq!(
        records(&s),
        [
            "byok_credential bad: key is not usable as a bearer token",
            "byok_credential hashes: allowed_key_hashes names a malformed hash",
        ]
    );
    let key = s.keys.get(&hash(0)).unwrap();
    let own = s.byok.of_workspace(WORKSPACE);
    assert_eq!(own.len(), 2);
    assert!(own.iter().all(|c| !c.applies_to("mock/small", key)));
    assert!(own.iter().any(|c| c.excludes_gateway_for("mock/small")));
    assert_eq!(blocked(&s, 0), None);
}

#[test]
fn snapshots_without_resources_are_refused_whole() {
    let message = pb::Snapshot {
        version: 3,
        ..Default::default()
    };
    assert!(matches!(
        Snapshot::decode(message, &no_resolver),
        Err(SnapshotError::MissingResources)
    ));
}

mod key_deltas {
    use super::*;

    fn key(n: u64, workspace: &str, disabled: bool) -> pb::Key {
        pb::Key {
            hash: key_hash(1000 + n as usize),
            kind: pb::KeyKind::Inference as i32,
            owner_user_id: USER.into(),
            organization_id: ORG.into(),
            workspace_id: workspace.into(),
            disabled,
            limit_usd: if n.is_multiple_of(3) {
                "5".into()
            } else {
                String::new()
            },
            ..Default::default()
        }
    }

    /// What a snapshot serves, in a form two snapshots can be compared by: every key with why
    /// it is refused, and the quarantine records, sorted.
    fn served(s: &Snapshot) -> (Vec<String>, Vec<String>) {
        let mut keys: Vec<String> = s
            .keys
            .iter()
            .map(|k| format!("{k:?} blocked={:?}", s.quarantine.blocking(k)))
            .collect();
        keys.sort();
        let mut records = records(s);
        records.sort();
        (keys, records)
    }

    /// A whole snapshot of `keys` at `version`.
    fn whole(keys: &std::collections::BTreeMap<String, pb::Key>, version: u64) -> Snapshot {
        SnapshotBuilder::new()
            .epoch("e1")
            .version(version)
            .edit(|r| r.keys = keys.values().cloned().collect())
            .build()
    }

    #[test]
    fn deltas_serve_exactly_what_the_whole_snapshot_of_the_same_keys_serves() {
        let mut keys = std::collections::BTreeMap::new();
        for n in 0..300 {
            let k = key(n, WORKSPACE, false);
            keys.insert(k.hash.clone(), k);
        }
        let mut live = whole(&keys, 1);
        // A fixed pseudo-random walk: creations, changes, removals and invalid records, enough
        // of them to merge the overlay into the base more than once.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        let mut merged = 0;
        for version in 2..700u64 {
            let mut delta = pb::KeyDelta {
                epoch: "e1".into(),
                from_version: version - 1,
                version,
                ..Default::default()
            };
            for _ in 0..1 + next(8) {
                let n = next(2000);
                match next(5) {
                    0 => {
                        let hash = key_hash(1000 + n as usize);
                        keys.remove(&hash);
                        delta.removed.push(hash);
                    }
                    // An unknown workspace: kept and blocked, as in a whole snapshot.
                    1 => delta.upserted.push(key(n, "ws-missing", false)),
                    2 => delta.upserted.push(key(n, WORKSPACE, true)),
                    _ => delta.upserted.push(key(n, WORKSPACE, false)),
                }
            }
            // The last record of a hash wins, as in the store; a delta carries each once.
            let mut seen = std::collections::HashSet::new();
            delta.upserted.reverse();
            delta.upserted.retain(|k| seen.insert(k.hash.clone()));
            delta.removed.retain(|h| !seen.contains(h));
            for k in &delta.upserted {
                keys.insert(k.hash.clone(), k.clone());
            }
            let before = live.keys.len();
            let overlay = live.keys.overlay_len();
            live = live.apply_key_delta(delta).unwrap();
            if live.keys.overlay_len() < overlay {
                merged += 1;
            }
            if live.keys.len() != before || version % 50 == 0 {
                let expected = whole(&keys, version);
                assert_eq!(live.keys.len(), expected.keys.len(), "version {version}");
                assert_eq!(served(&live), served(&expected), "version {version}");
                for h in keys.keys() {
                    assert!(live.keys.get_hex(h).is_some(), "{h} at {version}");
                }
            }
        }
        assert_eq!(live.version, 699);
        assert!(
            merged > 0,
            "the overlay was merged into the base at least once"
        );
    }

    #[test]
    fn a_delta_that_does_not_follow_the_served_version_is_refused() {
        let s = SnapshotBuilder::new()
            .epoch("e1")
            .version(5)
            .with_inference_key()
            .build();
        let delta = |epoch: &str, from_version| pb::KeyDelta {
            epoch: epoch.into(),
            from_version,
            version: from_version + 1,
            removed: vec![key_hash(0)],
            ..Default::default()
        };
        for (epoch, from) in [("e1", 4), ("e1", 6), ("e2", 5)] {
            assert!(matches!(
                s.apply_key_delta(delta(epoch, from)),
                Err(SnapshotError::Gap { .. })
            ));
        }
        let next = s.apply_key_delta(delta("e1", 5)).unwrap();
        assert_eq!(next.version, 6);
        assert!(next.keys.get(&hash(0)).is_none());
        assert!(
            s.keys.get(&hash(0)).is_some(),
            "the served snapshot is untouched"
        );
    }

    #[test]
    fn a_fixed_key_is_no_longer_blocked_and_a_broken_one_is() {
        let s = SnapshotBuilder::new()
            .epoch("e1")
            .version(1)
            .with_inference_key_where(|k| k.workspace_id = "ws-missing".into())
            .build();
        assert_eq!(blocked(&s, 0), Some(format!("key {}", key_hash(0))));
        let mut fixed = s.keys.get(&hash(0)).map(|_| pb::Key {
            hash: key_hash(0),
            kind: pb::KeyKind::Inference as i32,
            owner_user_id: USER.into(),
            organization_id: ORG.into(),
            workspace_id: WORKSPACE.into(),
            ..Default::default()
        });
        let s = s
            .apply_key_delta(pb::KeyDelta {
                epoch: "e1".into(),
                from_version: 1,
                version: 2,
                upserted: fixed.take().into_iter().collect(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(blocked(&s, 0), None);
        assert!(s.quarantine.is_empty());
    }
}
