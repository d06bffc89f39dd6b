//! The auditor's reads against an in-process single-node Warrant: `Watch` resumed after a
//! disconnect under writes (gapless, no duplicate), the per-node stream bound, `Query` pages
//! and cursors, and `as_of` refused where a call answers only about now.

use std::time::Instant;

use tonic::{Code, Streaming, transport::Channel};
use tonic_types::StatusExt;
use warrant_api::limits;
use warrant_proto::api::{
    self, AsOf, Consistency, ReadOptions, as_of, audit_service_client::AuditServiceClient,
    identity_service_client::IdentityServiceClient, token_service_client::TokenServiceClient,
};

mod support;

use support::{WAIT_MAX, admin, first_write, human, start};

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// The seqs of the next message of a watch.
async fn next_seqs(stream: &mut Streaming<api::WatchResponse>) -> Vec<u64> {
    let message = tokio::time::timeout(WAIT_MAX, stream.message())
        .await
        .expect("a message in time")
        .expect("no error")
        .expect("the stream is open");
    assert!(message.events.len() <= limits::WATCH_EVENTS_PER_MESSAGE_MAX);
    message.events.iter().map(|e| e.seq).collect()
}

/// Watches from 1 while 60 humans are registered, drops the stream part way, resumes from the
/// last seq received + 1, and checks every seq up to the applied one came exactly once, in order.
async fn watch_resumes_without_gap_or_duplicate(channel: &Channel) {
    let mut audit = AuditServiceClient::new(channel.clone());
    let writer = {
        let mut identity = IdentityServiceClient::new(channel.clone());
        tokio::spawn(async move {
            for i in 0..60 {
                identity
                    .register_human(admin(human(&format!("watched-{i}"))))
                    .await
                    .expect("a write commits");
            }
        })
    };
    let mut seen: Vec<u64> = Vec::new();
    let mut stream = audit
        .watch(admin(api::WatchRequest { from_seq: 1 }))
        .await
        .expect("Watch")
        .into_inner();
    while seen.len() < 20 {
        seen.extend(next_seqs(&mut stream).await);
    }
    drop(stream);
    tokio::time::timeout(WAIT_MAX, writer)
        .await
        .expect("writes in time")
        .expect("writer");
    let applied = audit
        .list_events(admin(api::ListEventsRequest {
            from_seq: 1,
            limit: 1,
            read: None,
        }))
        .await
        .expect("ListEvents")
        .into_inner()
        .applied_seq;
    let resume = seen.last().copied().expect("seen some") + 1;
    let mut stream = audit
        .watch(admin(api::WatchRequest { from_seq: resume }))
        .await
        .expect("Watch again")
        .into_inner();
    while seen.last().copied().unwrap_or(0) < applied {
        seen.extend(next_seqs(&mut stream).await);
    }
    assert_eq!(
        seen,
        (1..=applied).collect::<Vec<_>>(),
        "gapless, no duplicate"
    );
}

/// WATCHERS_MAX streams are served at once; the next is WATCHERS_BUSY until one goes away.
async fn streams_are_bounded_per_node(channel: &Channel) {
    let mut audit = AuditServiceClient::new(channel.clone());
    let mut held = Vec::new();
    for _ in 0..limits::WATCHERS_MAX {
        let stream = audit
            .watch(admin(api::WatchRequest { from_seq: 0 }))
            .await
            .expect("a slot")
            .into_inner();
        held.push(stream);
    }
    let busy = audit
        .watch(admin(api::WatchRequest { from_seq: 0 }))
        .await
        .expect_err("no slot");
    assert_eq!(
        (busy.code(), reason(&busy).as_str()),
        (Code::ResourceExhausted, "WATCHERS_BUSY")
    );
    held.pop();
    // The slot comes back when the server sees the client gone: wait for it, bounded.
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        match audit.watch(admin(api::WatchRequest { from_seq: 0 })).await {
            Ok(_) => break,
            Err(status) if reason(&status) == "WATCHERS_BUSY" && Instant::now() < deadline => {
                tokio::task::yield_now().await;
            }
            Err(status) => panic!("no slot came back: {status:?}"),
        }
    }
}

/// Query pages through the human registrations with a cursor bound to its filters.
async fn query_pages_with_a_cursor(channel: &Channel) {
    let mut audit = AuditServiceClient::new(channel.clone());
    let filters = api::QueryEventsRequest {
        kinds: vec!["human_registered".to_owned()],
        limit: 7,
        ..Default::default()
    };
    let mut found = Vec::new();
    let mut cursor = String::new();
    for _ in 0..100 {
        let page = audit
            .query(admin(api::QueryEventsRequest {
                cursor: cursor.clone(),
                ..filters.clone()
            }))
            .await
            .expect("Query")
            .into_inner();
        assert!(page.events.len() <= 7);
        found.extend(page.events);
        cursor = page.next_cursor;
        if cursor.is_empty() {
            break;
        }
    }
    assert!(cursor.is_empty(), "the range ends");
    // "first", then the 60 watched registrations.
    assert_eq!(found.len(), 61);
    assert!(found.windows(2).all(|w| w[0].seq < w[1].seq));
    let first = audit
        .query(admin(filters.clone()))
        .await
        .expect("Query")
        .into_inner();
    let other_filters = audit
        .query(admin(api::QueryEventsRequest {
            kinds: vec!["token_issued".to_owned()],
            cursor: first.next_cursor,
            ..filters.clone()
        }))
        .await
        .expect_err("a cursor from other filters");
    assert_eq!(reason(&other_filters), "QUERY_CURSOR_INVALID");
    let unknown = audit
        .query(admin(api::QueryEventsRequest {
            kinds: vec!["HumanRegistered".to_owned()],
            ..Default::default()
        }))
        .await
        .expect_err("an unknown kind");
    assert_eq!(reason(&unknown), "EVENT_KIND_UNKNOWN");
}

/// as_of is refused by calls about now, and a point past the applied seq is AS_OF_AHEAD.
async fn as_of_is_refused_where_it_cannot_be_answered(channel: &Channel) {
    let at_seq = |seq| ReadOptions {
        consistency: Consistency::Local as i32,
        at_least_seq: 0,
        as_of: Some(AsOf {
            point: Some(as_of::Point::Seq(seq)),
        }),
    };
    let mut tokens = TokenServiceClient::new(channel.clone());
    let verify = tokens
        .verify(admin(api::VerifyRequest {
            token: "x.y.z".to_owned(),
            read: Some(at_seq(1)),
            ..Default::default()
        }))
        .await
        .expect_err("Verify answers about now");
    assert_eq!(
        (verify.code(), reason(&verify).as_str()),
        (Code::InvalidArgument, "AS_OF_NOT_SUPPORTED")
    );
    let mut identity = IdentityServiceClient::new(channel.clone());
    let ahead = identity
        .get_human(admin(api::GetHumanRequest {
            human_id: "first".to_owned(),
            read: Some(at_seq(1_000_000)),
        }))
        .await
        .expect_err("past the applied seq");
    assert_eq!(
        (ahead.code(), reason(&ahead).as_str()),
        (Code::OutOfRange, "AS_OF_AHEAD")
    );
    assert!(ahead.message().contains("applied seq"), "{ahead:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_auditors_reads_on_one_node() {
    let data_dir = tempfile::tempdir().expect("a temp dir");
    let support::Started { channel, stop, .. } = start(data_dir.path()).await;
    let mut identity = IdentityServiceClient::new(channel.clone());
    first_write(&mut identity, "first").await;
    watch_resumes_without_gap_or_duplicate(&channel).await;
    streams_are_bounded_per_node(&channel).await;
    query_pages_with_a_cursor(&channel).await;
    as_of_is_refused_where_it_cannot_be_answered(&channel).await;
    let _ = stop.send(());
}
