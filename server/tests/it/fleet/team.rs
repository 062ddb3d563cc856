//! Team access to an owner's fleet: viewer, manager, revoked.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{command, enrolled_node, fleet_nodes, Events};
use crate::harness::{client_with_key, temp_dir, Server};
use crate::wallet::{browser, create_key, sign_in, Wallet};

#[test]
fn a_team_member_sees_or_runs_an_owners_fleet_as_their_role_until_revoked() {
    let server = Server::start();
    let owner = browser(&server);
    sign_in(
        &server,
        &owner,
        &Wallet::from_seed(b"fleet owner of a team, wallet!!!"),
    );
    let owner_id = server.account_of(&owner);
    // A token made on the server's own machine, without a browser.
    let (status, out, err) = server.admin(&["enrol-token", &owner_id, "--name", "cli"]);
    assert!(status.success(), "{err}");
    let made: Value = serde_json::from_str(out.trim()).unwrap();
    let token = made["secret"].as_str().unwrap().to_owned();
    assert!(token.starts_with("enr-inf-"), "{made}");
    assert_eq!(made["token"]["name"], "cli");
    let node = enrolled_node(&server, Some(&token), &temp_dir("node").join("node.key"));
    let member = browser(&server);
    sign_in(
        &server,
        &member,
        &Wallet::from_seed(b"a member of the team, a wallet!!"),
    );
    let member_id = server.account_of(&member);
    let as_member = |path: &str| server.url(&format!("{path}?fleet={owner_id}"));

    // Not in the team: the owner's fleet does not exist for them.
    let r = member.get(as_member("/api/v1/fleet/nodes")).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = member
        .get(server.url("/api/v1/fleet/nodes?fleet=not-an-account"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A viewer sees the fleet, and may not command it (audited, naming them).
    let grant = |role: &str| {
        owner
            .put(server.url(&format!("/api/v1/fleet/team/{member_id}")))
            .json(&json!({ "role": role }))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(grant("viewer"), StatusCode::NO_CONTENT);
    let seen: Value = member
        .get(as_member("/api/v1/fleet/nodes"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(seen["nodes"][0]["node_id"], node.peer_id.as_str());
    let team: Value = member
        .get(server.url("/api/v1/fleet/team"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(team["fleets"][0]["account"], owner_id.as_str());
    assert_eq!(team["fleets"][0]["role"], "viewer");
    let pause = json!({ "nodes": [node.peer_id], "action": { "type": "pause" } });
    let r = member
        .post(as_member("/api/v1/fleet/commands"))
        .json(&pause)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Their own fleet is still their own (and empty).
    assert!(fleet_nodes(&server, &member).is_empty());

    // A manager runs it; the audit log says who.
    assert_eq!(grant("manager"), StatusCode::NO_CONTENT);
    let (status, body) = command(&server, &member, pause.clone());
    assert_eq!(status, StatusCode::NOT_FOUND, "not without ?fleet=: {body}");
    let r = member
        .post(as_member("/api/v1/fleet/commands"))
        .json(&pause)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let sent: Value = r.json().unwrap();
    assert!(
        sent["commands"][0]["issued_by"]
            .as_str()
            .unwrap()
            .contains(member_id.as_str()),
        "{sent}"
    );
    let log: Value = owner
        .get(server.url("/api/v1/fleet/commands"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let statuses: Vec<&str> = log["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    // Newest first: the manager's, the attempt without ?fleet=, the viewer's.
    assert_eq!(statuses.len(), 3, "{log}");
    assert_eq!(&statuses[1..], ["refused", "refused"]);
    assert!(log["commands"][1]["detail"]
        .as_str()
        .unwrap()
        .contains("does not operate"));
    assert!(log["commands"][2]["issued_by"]
        .as_str()
        .unwrap()
        .contains(&format!("team member {member_id} as viewer")));
    let team: Value = owner
        .get(server.url("/api/v1/fleet/team"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(team["members"][0]["account"], member_id.as_str());
    assert_eq!(team["members"][0]["role"], "manager");

    // Revoked: gone at once, and the member's open event stream ends.
    let watching = Events::open_at(
        &server,
        &member,
        &format!("/api/v1/fleet/events?fleet={owner_id}"),
    );
    let r = owner
        .delete(server.url(&format!("/api/v1/fleet/team/{member_id}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        watching.ends_within(Duration::from_secs(15)),
        "the stream ends with the membership"
    );
    let r = member.get(as_member("/api/v1/fleet/nodes")).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Only the owner's browser session manages the team.
    let r = owner
        .put(server.url(&format!("/api/v1/fleet/team/{owner_id}")))
        .json(&json!({ "role": "viewer" }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (key, key_id) = create_key(&server, &owner, "fleet", &["fleet:read", "fleet:write"]);
    let r = client_with_key(&key)
        .put(server.url(&format!("/api/v1/fleet/team/{member_id}")))
        .json(&json!({ "role": "viewer" }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A revoked key's open event stream ends too.
    let watching = Events::open(&server, &client_with_key(&key));
    let r = owner
        .delete(server.url(&format!("/api/v1/account/keys/{key_id}")))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    assert!(
        watching.ends_within(Duration::from_secs(15)),
        "the stream ends with its key"
    );
}
