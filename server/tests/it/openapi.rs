//! The OpenAPI document at `/openapi.json`: served, OpenAPI 3.1, and every
//! operation in it says who may call it, what it answers, and its errors in
//! the project's shape (OpenAI's under `/v1`). `scripts/api-check.sh` then
//! holds the running server to it with schemathesis.

use serde_json::Value;

use crate::harness::Server;

#[test]
fn the_document_describes_every_route_with_its_callers_and_errors() {
    let server = Server::start();
    let response = server
        .http()
        .get(server.url("/openapi.json"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let doc: Value = response.json().unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["session"]["name"], "infernet_session");

    let paths = doc["paths"].as_object().unwrap();
    // A route of every module: a router whose routes lost their
    // descriptions would be missing here.
    for (path, method) in [
        ("/healthz", "get"),
        ("/nodes", "get"),
        ("/nodes/{peer_id}/ban", "get"),
        ("/api/v1/nodes/heartbeat", "post"),
        ("/api/v1/network", "get"),
        ("/api/v1/jobs", "post"),
        ("/api/v1/jobs/{id}", "get"),
        ("/api/v1/receipts/{id}", "get"),
        ("/api/v1/auth/passkey/sign-in/start", "post"),
        ("/api/v1/account/keys", "post"),
        ("/api/v1/account/keys/{id}/caps", "put"),
        ("/api/v1/enrolments", "post"),
        ("/api/v1/billing/history", "get"),
        ("/api/v1/billing/topups", "post"),
        ("/api/v1/billing/payouts/{id}", "get"),
        ("/api/v1/fleet/commands", "post"),
        ("/api/v1/fleet/events", "get"),
        ("/v1/models", "get"),
        ("/v1/embeddings", "post"),
        ("/v1/chat/completions", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not in the document"
        );
    }

    let mut operations = 0;
    let mut methods = std::collections::BTreeSet::new();
    let mut operation_ids = std::collections::BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            methods.insert(method.to_uppercase());
            let what = format!("{} {path}", method.to_uppercase());
            // Who may call it: `{}` for anyone, else the schemes.
            let security = op["security"].as_array();
            assert!(
                security.is_some_and(|s| !s.is_empty()),
                "{what} does not say who may call it"
            );
            for requirement in security.unwrap() {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(scheme), "{what}: unknown {scheme}");
                }
            }
            assert!(
                op["tags"].as_array().is_some_and(|t| t.len() == 1),
                "{what}: a tag"
            );
            assert!(op["summary"].is_string(), "{what}: a summary");
            // Clients generated from the document name methods by it.
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                !id.is_empty() && operation_ids.insert(id.to_owned()),
                "{what}: operationId {id:?} missing or taken"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{what}: no success answer"
            );
            // Every error answer in the project's shape (OpenAI's on /v1).
            let shape = if path.starts_with("/v1/") {
                "#/components/schemas/OpenAiErrorResponse"
            } else {
                "#/components/schemas/ErrorBody"
            };
            for (status, answer) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        answer["content"]["application/json"]["schema"]["$ref"], shape,
                        "{what} answers {status} in another shape"
                    );
                }
            }
            // Every `{name}` of the path is a declared path parameter.
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                let declared = op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true)
                });
                assert!(declared, "{what}: path parameter {name} not declared");
            }
            // A route that takes a JSON body says which.
            if ["post", "put", "patch"].contains(&method.as_str())
                && op.get("requestBody").is_some()
            {
                assert!(
                    op["requestBody"]["content"]["application/json"]["schema"].is_object(),
                    "{what}: its body's schema"
                );
            }
        }
    }
    assert!(operations >= 60, "only {operations} operations");

    // A page on another origin may call every method the document lists
    // (its browser asks first).
    for method in &methods {
        let r = server
            .http()
            .request(reqwest::Method::OPTIONS, server.url("/api/v1/account"))
            .header("Origin", "https://elsewhere.example")
            .header("Access-Control-Request-Method", method.as_str())
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
            .unwrap();
        let allowed = r
            .headers()
            .get("access-control-allow-methods")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(
            allowed.split(',').any(|m| m.trim() == method),
            "{method} is not allowed from other origins: {allowed:?}"
        );
    }
}
