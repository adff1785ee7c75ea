//! Bad input: a clear 4xx, one log line with the reason, and no upstream write.

use super::*;

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_writes_nothing() {
    let world = World::start().await;
    let (_, name) = one_synced(&world, 91).await;
    let good = analyst_closes(&world, &name);
    world.sims.reset_counters();

    let mut other_ws = good.clone();
    other_ws["object"]["id"] = Value::String(
        good["object"]["id"]
            .as_str()
            .unwrap()
            .replace(wellknown::WORKSPACE_NAME, "law-someone-else"),
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    let mut not_ours = good.clone();
    not_ours["object"]["id"] = Value::String(
        good["object"]["id"]
            .as_str()
            .unwrap()
            .replace(&name, &unknown),
    );
    not_ours["object"]["name"] = Value::String(unknown.clone());
    let mut not_a_uuid = not_ours.clone();
    not_a_uuid["object"]["id"] = Value::String(
        good["object"]["id"]
            .as_str()
            .unwrap()
            .replace(&name, "3177"),
    );
    not_a_uuid["object"]["name"] = Value::String("3177".into());
    let mut just_over = good.to_string();
    just_over.push_str(&" ".repeat(1024 * 1024 + 1 - just_over.len()));
    let five_mb = format!("{{\"pad\":\"{}\"}}", "x".repeat(5_000_000));

    let cases: Vec<(String, u16, &str)> = vec![
        (just_over, 413, "at most 1048576"),
        (five_mb, 413, "larger than 1048576"),
        ("{not json".into(), 400, "not JSON"),
        ("[1,2]".into(), 400, "not a Sentinel incident trigger"),
        (r#"{"workspaceId":"w"}"#.into(), 400, "`object`"),
        (r#"{"object":{"name":"n"}}"#.into(), 400, "`object.id`"),
        (other_ws.to_string(), 403, "another workspace"),
        (not_ours.to_string(), 404, "not one this sync manages"),
        (not_a_uuid.to_string(), 404, "not one this sync manages"),
    ];
    for (body, status, reason) in cases {
        let res = post(&world, &body, &[]).await;
        let head: String = body.chars().take(40).collect();
        assert_eq!(res.status, status, "{head}: {}", res.body);
        assert!(
            json(&res)["error"].as_str().unwrap_or("").contains(reason),
            "{head}: {}",
            res.body
        );
        let lines: Vec<_> = res
            .reply
            .logs
            .iter()
            .filter(|l| l.contains("rejected"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one log line per rejection: {:?}",
            res.reply.logs
        );
        assert!(lines[0].contains(&status.to_string()), "{lines:?}");
    }
    // An absent body (the host drops a chunked caller's body) is refused too.
    let res = world
        .host
        .invoke_http("SentinelWebhook", &HttpCall::new("POST"))
        .await
        .unwrap();
    assert_eq!(res.status, 400, "{}", res.body);

    assert_eq!(defender_writes(&world), 0, "no Defender write");
    assert_eq!(sentinel_writes(&world), 0, "no Sentinel write");
    // The good body still works afterwards: the handler is fine.
    let res = post(&world, &good.to_string(), &[]).await;
    assert_eq!(res.status, 200, "{}", res.body);
}
