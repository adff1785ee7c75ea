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

/// An envelope of `body_bytes` with a plain-text `Body`, as the host would POST it.
fn large_envelope(body_bytes: usize) -> Vec<u8> {
    let head = r#"{"Data":{"req":{"Url":"https://localhost/api/sentinel/webhook","Method":"POST","Query":{},"Headers":{"Content-Type":["application/json"]},"Params":{},"Body":""#;
    let mut v = Vec::with_capacity(body_bytes + 200);
    v.extend_from_slice(head.as_bytes());
    v.resize(v.len() + body_bytes, b'x');
    v.extend_from_slice(br#""}},"Metadata":{"sys":{"MethodName":"SentinelWebhook"}}}"#);
    v
}

fn memory_kb(world: &World, field: &str) -> u64 {
    let pid = world.host.pid().expect("handler pid");
    dss_fake_host::bench_proc::vm_kb(pid, field).expect("read /proc/<pid>/status")
}

/// The envelope is bounded while it streams in: 64 MB ones are refused with 413 while the
/// handler's peak memory grows by far less than one of them (at most 4 MiB of each is kept;
/// the rest is read and dropped a chunk at a time), and a flood of 5 MB calls leaves the
/// resident memory where it was (what the bound kept is given back to the OS).
#[tokio::test]
async fn envelopes_over_the_bound_are_refused_while_streaming_and_memory_stays_flat() {
    let world = World::start().await;
    // Warm up: the first calls allocate the runtime's and the connections' buffers.
    let small = large_envelope(1000);
    for _ in 0..4 {
        world
            .host
            .post_raw("SentinelWebhook", small.clone())
            .await
            .unwrap();
    }
    let hwm_before = memory_kb(&world, "VmHWM:");
    let huge = large_envelope(64 * 1024 * 1024);
    let calls = (0..3).map(|_| world.host.post_raw("SentinelWebhook", huge.clone()));
    for raw in futures::future::join_all(calls).await {
        let raw = raw.expect("the host gets an answer");
        assert_eq!(raw.status, 200, "answered through Outputs.res");
        let reply: Value = serde_json::from_slice(&raw.body).unwrap();
        assert_eq!(reply["Outputs"]["res"]["statusCode"], 413, "{reply}");
    }
    let hwm_after = memory_kb(&world, "VmHWM:");
    let grown_mb = hwm_after.saturating_sub(hwm_before) as f64 / 1024.0;
    assert!(
        grown_mb < 40.0,
        "three concurrent 64 MB envelopes grew the peak by {grown_mb:.1} MB"
    );

    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let rss_before = memory_kb(&world, "VmRSS:");
    let five_mb = large_envelope(5_000_000);
    for _ in 0..4 {
        let calls = (0..25).map(|_| world.host.post_raw("SentinelWebhook", five_mb.clone()));
        for raw in futures::future::join_all(calls).await {
            assert_eq!(raw.expect("answered").status, 200);
        }
    }
    // What the bound kept is given back once no large envelope is held (`host::memory`).
    let rss_after = memory_kb(&world, "VmRSS:");
    let kept_mb = rss_after.saturating_sub(rss_before) as f64 / 1024.0;
    eprintln!(
        "VmHWM {hwm_before} -> {hwm_after} kB; VmRSS {rss_before} -> {rss_after} kB (peak {} kB)",
        memory_kb(&world, "VmHWM:")
    );
    // Kept, 25 concurrent calls would leave up to 25 × 4 MiB = 100 MiB resident; given back,
    // quiet runs leave 0.4–2.7 MB, and a busy machine (other builds, the suite's parallel tests:
    // more threads and their heaps touched) up to about 10 MB.
    assert!(
        kept_mb < 25.0,
        "100 rejected 5 MB calls left {kept_mb:.1} MB more resident"
    );
    // The handler still answers a good call.
    let res = post(&world, "{not json", &[]).await;
    assert_eq!(res.status, 400, "{}", res.body);
}
