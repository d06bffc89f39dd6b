//! `Query`: the events matching every filter set, in seq order, a page at a time.
//!
//! A call scans from its start seq (the cursor's, or the first event stamped at or after
//! `from_time_unix_ms`) towards its end (the last event stamped before `to_time_unix_ms`, and
//! never past the applied seq), reading at most [`QUERY_EVENTS_SCANNED_MAX`] events and keeping
//! at most `limit` matches; `next_cursor` is where the next call goes on, empty once the scan
//! reached the end. Which humans, agents, services and tools an event names is
//! `identity::event_subjects`'s; the kind names come from the descriptor (`records`).
//!
//! The cursor is opaque to the client: base64url of a version byte, the next seq (u64 BE) and
//! the first 8 bytes of the SHA-256 of the filters, so a cursor is refused
//! (`QUERY_CURSOR_INVALID`) unless it decodes canonically, names a seq, and was made for the
//! same filters.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use warrant_identity::{
    StateError, StateRead, audit::history, event_subjects, limits as identity_limits, query,
};
use warrant_proto::{api, log};

use super::records;
use crate::{
    context::Context,
    error::{ApiError, Reason},
    limits::{QUERY_EVENTS_SCANNED_MAX, QUERY_PAGE_DEFAULT, QUERY_PAGE_MAX},
    storage::storage,
    validate,
};

pub(super) async fn query(
    context: &Context,
    request: Request<api::QueryEventsRequest>,
) -> Result<Response<api::QueryEventsResponse>, Status> {
    context.auditor(request.metadata()).await?;
    let request = request.into_inner();
    let consistency = validate::read_consistency(request.read.as_ref())?;
    let mut filter = Filter::parse(&request)?;
    let limit = page_limit(request.limit)?;
    let cursor = match request.cursor.as_str() {
        "" => None,
        cursor => Some(Cursor::decode(cursor, &filter.digest)?),
    };
    let reader = context.read(consistency).await?;
    let applied_seq = query::applied_seq(&reader).map_err(storage)?;
    filter.service_audience = service_audience(&reader, &request.service_id)?;
    let range = seq_range(&reader, &request, cursor, applied_seq).map_err(storage)?;
    let page = scan(&reader, &filter, range, limit).map_err(storage)?;
    let next_cursor = match page.next_seq {
        Some(seq) => Cursor { next_seq: seq }.encode(&filter.digest),
        None => String::new(),
    };
    Ok(Response::new(api::QueryEventsResponse {
        events: page.events,
        next_cursor,
        applied_seq,
    }))
}

/// The page size a request asks for: 0 is the default.
fn page_limit(limit: u32) -> Result<usize, ApiError> {
    let limit = match limit {
        0 => QUERY_PAGE_DEFAULT as u64,
        limit => u64::from(limit),
    };
    validate::in_range("limit", limit, 1, QUERY_PAGE_MAX as u64)?;
    Ok(limit as usize)
}

/// The audience of the service a filter names, so events that name the service only by its
/// audience (a token, a delegation) match too. None for no filter or an unknown service.
fn service_audience(state: &dyn StateRead, service_id: &str) -> Result<Option<String>, ApiError> {
    if service_id.is_empty() {
        return Ok(None);
    }
    Ok(query::service(state, service_id)
        .map_err(storage)?
        .map(|service| service.audience)
        .filter(|audience| !audience.is_empty()))
}

/// What an event must match. Empty fields match everything.
#[derive(Debug, Default)]
struct Filter {
    actor_id: String,
    human_id: String,
    agent_id: String,
    service_id: String,
    service_audience: Option<String>,
    tool: String,
    kinds: Vec<String>,
    decision: Option<log::AccessDecision>,
    from_time_unix_ms: u64,
    to_time_unix_ms: u64,
    /// What the cursor is bound to: the SHA-256 of the request without cursor, limit and read.
    digest: [u8; 8],
}

impl Filter {
    /// Validates the request's filters.
    fn parse(request: &api::QueryEventsRequest) -> Result<Filter, ApiError> {
        if !request.actor_id.is_empty() {
            identity_limits::validate_actor_id("actor_id", &request.actor_id)?;
        }
        for (field, value) in [
            ("human_id", &request.human_id),
            ("agent_id", &request.agent_id),
            ("service_id", &request.service_id),
            ("tool", &request.tool),
        ] {
            if !value.is_empty() {
                identity_limits::validate_id(field, value)?;
            }
        }
        let decision = match log::AccessDecision::try_from(request.decision) {
            Ok(log::AccessDecision::Unspecified) => None,
            Ok(decision) => Some(decision),
            Err(_) => {
                return Err(ApiError::invalid_field(
                    Reason::FieldInvalid,
                    "decision",
                    format!(
                        "decision {} is unknown; allowed: ALLOW, DENY, or unset",
                        request.decision
                    ),
                ));
            }
        };
        if request.to_time_unix_ms != 0 && request.to_time_unix_ms < request.from_time_unix_ms {
            return Err(ApiError::invalid_field(
                Reason::ValueOutOfRange,
                "to_time_unix_ms",
                format!(
                    "to_time_unix_ms {} is before from_time_unix_ms {}; allowed: 0 (no bound) or \
                     a time at or after from_time_unix_ms",
                    request.to_time_unix_ms, request.from_time_unix_ms
                ),
            ));
        }
        Ok(Filter {
            actor_id: request.actor_id.clone(),
            human_id: request.human_id.clone(),
            agent_id: request.agent_id.clone(),
            service_id: request.service_id.clone(),
            service_audience: None,
            tool: request.tool.clone(),
            kinds: kinds(&request.kinds)?,
            decision,
            from_time_unix_ms: request.from_time_unix_ms,
            to_time_unix_ms: request.to_time_unix_ms,
            digest: filter_digest(request),
        })
    }

    /// Whether `event` matches every filter set.
    fn matches(&self, event: &log::Event) -> bool {
        let in_time = self.from_time_unix_ms <= event.time_unix_ms
            && (self.to_time_unix_ms == 0 || event.time_unix_ms < self.to_time_unix_ms);
        if !in_time {
            return false;
        }
        if !self.actor_id.is_empty()
            && event.actor.as_ref().map(|a| a.id.as_str()) != Some(&self.actor_id)
        {
            return false;
        }
        let kind = event.kind.as_ref();
        if !self.kinds.is_empty()
            && !kind.is_some_and(|k| {
                self.kinds
                    .iter()
                    .any(|it| it == event_subjects::kind_name(k))
            })
        {
            return false;
        }
        if let Some(decision) = self.decision {
            match kind {
                Some(log::event::Kind::AccessDecided(d)) if d.decision == decision as i32 => {}
                _ => return false,
            }
        }
        self.matches_subjects(event)
    }

    fn matches_subjects(&self, event: &log::Event) -> bool {
        if self.human_id.is_empty()
            && self.agent_id.is_empty()
            && self.service_id.is_empty()
            && self.tool.is_empty()
        {
            return true;
        }
        let subjects = event_subjects::subjects(event);
        let named = |ids: &[&str], id: &str| id.is_empty() || ids.contains(&id);
        let service = self.service_id.is_empty()
            || subjects.services.contains(&self.service_id.as_str())
            || self
                .service_audience
                .as_deref()
                .is_some_and(|audience| subjects.audiences.contains(&audience));
        named(&subjects.humans, &self.human_id)
            && named(&subjects.agents, &self.agent_id)
            && named(&subjects.tools, &self.tool)
            && service
    }
}

/// The kind filter: each a field name of `Event`'s `kind` oneof, as the descriptor names them.
fn kinds(requested: &[String]) -> Result<Vec<String>, ApiError> {
    let names = records::kind_names()?;
    validate::list_len("kinds", requested.len(), 0, names.len())?;
    for (i, kind) in requested.iter().enumerate() {
        if !names.contains(kind) {
            let shown: String = kind.chars().take(64).collect();
            return Err(ApiError::invalid_field(
                Reason::EventKindUnknown,
                &format!("kinds[{i}]"),
                format!(
                    "kinds[{i}] {shown:?} names no event kind; allowed: {}",
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(requested.to_vec())
}

/// The digest a cursor is bound to: the request's filters, without where to resume, how many
/// to return or how fresh to read.
fn filter_digest(request: &api::QueryEventsRequest) -> [u8; 8] {
    let filters = api::QueryEventsRequest {
        cursor: String::new(),
        limit: 0,
        read: None,
        ..request.clone()
    };
    let digest = Sha256::digest(filters.encode_to_vec());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Where a query goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    next_seq: u64,
}

/// The cursor layout's version byte.
const CURSOR_VERSION: u8 = 1;
/// Version, seq (u64 BE), filter digest.
const CURSOR_BYTES: usize = 1 + 8 + 8;

impl Cursor {
    fn encode(self, digest: &[u8; 8]) -> String {
        let mut bytes = Vec::with_capacity(CURSOR_BYTES);
        bytes.push(CURSOR_VERSION);
        bytes.extend_from_slice(&self.next_seq.to_be_bytes());
        bytes.extend_from_slice(digest);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A cursor this node made for these filters, or QUERY_CURSOR_INVALID.
    fn decode(cursor: &str, digest: &[u8; 8]) -> Result<Cursor, ApiError> {
        let invalid = |why: &str| {
            ApiError::invalid_field(
                Reason::QueryCursorInvalid,
                "cursor",
                format!(
                    "cursor {why}; allowed: the next_cursor of a previous page of the same query, \
                     unchanged, or empty to start over"
                ),
            )
        };
        // Longer than any cursor is refused before decoding.
        if cursor.len() > CURSOR_BYTES.div_ceil(3) * 4 {
            return Err(invalid("is longer than any cursor"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| invalid("is not base64url"))?;
        let Ok(bytes) = <[u8; CURSOR_BYTES]>::try_from(bytes.as_slice()) else {
            return Err(invalid("has the wrong length"));
        };
        if bytes[0] != CURSOR_VERSION {
            return Err(invalid("has an unknown version"));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[1..9]);
        let decoded = Cursor {
            next_seq: u64::from_be_bytes(seq),
        };
        if decoded.next_seq == 0 {
            return Err(invalid("names seq 0"));
        }
        if bytes[9..] != digest[..] {
            return Err(invalid("was made for other filters"));
        }
        // One spelling per cursor: trailing bits set in the last character are refused.
        if decoded.encode(digest) != cursor {
            return Err(invalid("is not in canonical form"));
        }
        Ok(decoded)
    }
}

/// The seqs a call may scan: `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SeqRange {
    first: u64,
    last: u64,
}

/// The range of this call: from the cursor (or the first event stamped at or after the start
/// time) to the last event stamped before the end time, never past the applied seq.
fn seq_range(
    state: &dyn StateRead,
    request: &api::QueryEventsRequest,
    cursor: Option<Cursor>,
    applied_seq: u64,
) -> Result<SeqRange, StateError> {
    let first = match (cursor, request.from_time_unix_ms) {
        (Some(cursor), _) => cursor.next_seq,
        (None, 0) => 1,
        (None, from) => history::seq_at_time(state, from - 1)? + 1,
    };
    let last = match request.to_time_unix_ms {
        0 => applied_seq,
        to => history::seq_at_time(state, to - 1)?.min(applied_seq),
    };
    Ok(SeqRange { first, last })
}

/// One page of matches.
#[derive(Debug, Default, PartialEq)]
struct Page {
    events: Vec<log::Event>,
    /// Where the next call goes on; None when the range is done.
    next_seq: Option<u64>,
}

/// Scans `range` in store pages, stopping after [`QUERY_EVENTS_SCANNED_MAX`] events or `limit`
/// matches.
fn scan(
    state: &dyn StateRead,
    filter: &Filter,
    range: SeqRange,
    limit: usize,
) -> Result<Page, StateError> {
    let mut page = Page::default();
    let mut next = range.first;
    let mut scanned = 0;
    while next <= range.last && scanned < QUERY_EVENTS_SCANNED_MAX && page.events.len() < limit {
        let left = usize::try_from(range.last - next + 1).unwrap_or(usize::MAX);
        let want = left
            .min(QUERY_EVENTS_SCANNED_MAX - scanned)
            .min(identity_limits::EVENTS_PAGE_MAX);
        let events = query::events(state, next, want)?;
        if events.is_empty() {
            next = range.last + 1;
            break;
        }
        for event in events {
            if event.seq > range.last {
                next = range.last + 1;
                break;
            }
            scanned += 1;
            next = event.seq + 1;
            if filter.matches(&event) {
                page.events.push(event);
                if page.events.len() == limit {
                    break;
                }
            }
        }
    }
    page.next_seq = (next <= range.last).then_some(next);
    Ok(page)
}

#[cfg(test)]
mod tests {
    use tonic::Code;
    use warrant_identity::{InMemoryState, WriteSet, keys};

    use super::*;

    fn decided(decision: log::AccessDecision, tool: &str) -> log::event::Kind {
        log::event::Kind::AccessDecided(log::AccessDecided {
            decision: decision as i32,
            principal_kind: log::PrincipalKind::Agent as i32,
            principal_id: "a1".to_string(),
            on_behalf_of_human_id: "alice".to_string(),
            service_id: "calendar".to_string(),
            tool: tool.to_string(),
            ..Default::default()
        })
    }

    fn state_with(kinds: Vec<log::event::Kind>) -> InMemoryState {
        let mut writes = WriteSet::new();
        for (i, kind) in kinds.into_iter().enumerate() {
            let seq = i as u64 + 1;
            let event = log::Event {
                seq,
                time_unix_ms: 1000 * seq,
                actor: Some(log::Actor {
                    kind: log::PrincipalKind::Admin as i32,
                    id: if seq.is_multiple_of(2) {
                        "ops"
                    } else {
                        "admin"
                    }
                    .to_string(),
                    on_behalf_of: vec![],
                }),
                kind: Some(kind),
                ..Default::default()
            };
            writes.put(keys::event(seq), event.encode_to_vec());
        }
        let mut state = InMemoryState::new();
        state.apply_writes(&writes);
        state
    }

    fn request() -> api::QueryEventsRequest {
        api::QueryEventsRequest::default()
    }

    fn seqs(page: &Page) -> Vec<u64> {
        page.events.iter().map(|e| e.seq).collect()
    }

    fn sample() -> InMemoryState {
        use log::AccessDecision::{Allow, Deny};
        state_with(vec![
            decided(Allow, "read"),
            log::event::Kind::HumanRegistered(log::HumanRegistered {
                human_id: "bob".to_string(),
                ..Default::default()
            }),
            decided(Deny, "write"),
            log::event::Kind::TokenIssued(log::TokenIssued {
                subject: "alice".to_string(),
                subject_kind: log::PrincipalKind::Human as i32,
                agent_id: "a1".to_string(),
                audience: "https://calendar.example".to_string(),
                scopes: vec!["read".to_string()],
                ..Default::default()
            }),
            decided(Allow, "write"),
        ])
    }

    fn all() -> SeqRange {
        SeqRange { first: 1, last: 5 }
    }

    #[test]
    fn filters_select_by_kind_decision_subject_and_actor() {
        let state = sample();
        let cases: Vec<(api::QueryEventsRequest, Vec<u64>)> = vec![
            (request(), vec![1, 2, 3, 4, 5]),
            (
                api::QueryEventsRequest {
                    kinds: vec!["access_decided".to_string()],
                    ..request()
                },
                vec![1, 3, 5],
            ),
            (
                api::QueryEventsRequest {
                    decision: log::AccessDecision::Deny as i32,
                    ..request()
                },
                vec![3],
            ),
            (
                api::QueryEventsRequest {
                    human_id: "alice".to_string(),
                    ..request()
                },
                vec![1, 3, 4, 5],
            ),
            (
                api::QueryEventsRequest {
                    tool: "write".to_string(),
                    agent_id: "a1".to_string(),
                    ..request()
                },
                vec![3, 5],
            ),
            (
                api::QueryEventsRequest {
                    actor_id: "ops".to_string(),
                    ..request()
                },
                vec![2, 4],
            ),
            (
                api::QueryEventsRequest {
                    from_time_unix_ms: 2000,
                    to_time_unix_ms: 4000,
                    ..request()
                },
                vec![2, 3],
            ),
        ];
        for (request, want) in cases {
            let filter = Filter::parse(&request).expect("valid");
            let page = scan(&state, &filter, all(), 100).expect("scan");
            assert_eq!(seqs(&page), want, "{request:?}");
            assert_eq!(page.next_seq, None);
        }
    }

    #[test]
    fn a_service_filter_matches_its_id_and_its_audience() {
        let state = sample();
        let mut filter = Filter::parse(&api::QueryEventsRequest {
            service_id: "calendar".to_string(),
            ..request()
        })
        .expect("valid");
        let by_id = scan(&state, &filter, all(), 100).expect("scan");
        assert_eq!(seqs(&by_id), vec![1, 3, 5]);
        filter.service_audience = Some("https://calendar.example".to_string());
        let with_audience = scan(&state, &filter, all(), 100).expect("scan");
        assert_eq!(seqs(&with_audience), vec![1, 3, 4, 5]);
    }

    #[test]
    fn pages_go_on_from_the_cursor_until_the_range_is_done() {
        let state = sample();
        let filter = Filter::parse(&request()).expect("valid");
        let first = scan(&state, &filter, all(), 2).expect("scan");
        assert_eq!((seqs(&first), first.next_seq), (vec![1, 2], Some(3)));
        let rest = scan(&state, &filter, SeqRange { first: 3, last: 5 }, 3).expect("scan");
        assert_eq!((seqs(&rest), rest.next_seq), (vec![3, 4, 5], None));
        // A range capped below the stored events stops at its end.
        let capped = scan(&state, &filter, SeqRange { first: 1, last: 2 }, 100).expect("scan");
        assert_eq!((seqs(&capped), capped.next_seq), (vec![1, 2], None));
        // Nothing left.
        let empty = scan(&state, &filter, SeqRange { first: 6, last: 5 }, 100).expect("scan");
        assert_eq!(empty, Page::default());
    }

    #[test]
    fn a_call_scans_a_bounded_number_of_events_and_says_where_to_go_on() {
        let n = QUERY_EVENTS_SCANNED_MAX + 10;
        let mut writes = WriteSet::new();
        for seq in 1..=n as u64 {
            let event = log::Event {
                seq,
                kind: Some(log::event::Kind::TokenRevoked(log::TokenRevoked::default())),
                ..Default::default()
            };
            writes.put(keys::event(seq), event.encode_to_vec());
        }
        let mut state = InMemoryState::new();
        state.apply_writes(&writes);
        let filter = Filter::parse(&api::QueryEventsRequest {
            kinds: vec!["human_registered".to_string()],
            ..request()
        })
        .expect("valid");
        let range = SeqRange {
            first: 1,
            last: n as u64,
        };
        let page = scan(&state, &filter, range, 10).expect("scan");
        assert!(page.events.is_empty(), "a short page, here empty");
        assert_eq!(page.next_seq, Some(QUERY_EVENTS_SCANNED_MAX as u64 + 1));
        let rest = scan(
            &state,
            &filter,
            SeqRange {
                first: QUERY_EVENTS_SCANNED_MAX as u64 + 1,
                ..range
            },
            10,
        )
        .expect("scan");
        assert_eq!(rest, Page::default(), "done");
    }

    #[test]
    fn cursors_round_trip_and_anything_else_is_refused() {
        let digest = filter_digest(&request());
        let cursor = Cursor { next_seq: 42 };
        let text = cursor.encode(&digest);
        assert_eq!(Cursor::decode(&text, &digest).expect("round trip"), cursor);
        let other = filter_digest(&api::QueryEventsRequest {
            agent_id: "a1".to_string(),
            ..request()
        });
        let zero = Cursor { next_seq: 0 }.encode(&digest);
        let mut bad_version = URL_SAFE_NO_PAD.decode(&text).expect("b64");
        bad_version[0] = 2;
        let bad_version = URL_SAFE_NO_PAD.encode(bad_version);
        let mut trailing = text.clone();
        // The last character carries 2 unused bits: flip one of them.
        let last = trailing.pop().expect("non-empty");
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet
            .iter()
            .position(|c| *c == last as u8)
            .expect("b64 char");
        trailing.push(alphabet[index ^ 1] as char);
        for (cursor, digest) in [
            ("not base64!", digest),
            ("AAAA", digest),
            (&"A".repeat(100), digest),
            (zero.as_str(), digest),
            (bad_version.as_str(), digest),
            (trailing.as_str(), digest),
            (text.as_str(), other),
        ] {
            let refused = Cursor::decode(cursor, &digest).expect_err(cursor);
            assert_eq!(
                (refused.code, refused.reason),
                (Code::InvalidArgument, Reason::QueryCursorInvalid),
                "{cursor}"
            );
        }
        // Limit, read options and the cursor itself are not part of the filters.
        assert_eq!(
            filter_digest(&api::QueryEventsRequest {
                limit: 7,
                cursor: text,
                ..request()
            }),
            digest
        );
    }

    #[test]
    fn bad_filters_are_refused_with_their_field() {
        let unknown = Filter::parse(&api::QueryEventsRequest {
            kinds: vec!["access_decided".to_string(), "AccessDecided".to_string()],
            ..request()
        })
        .expect_err("unknown kind");
        assert_eq!(unknown.reason, Reason::EventKindUnknown);
        assert_eq!(unknown.metadata, vec![("field", "kinds[1]".to_string())]);
        let decision = Filter::parse(&api::QueryEventsRequest {
            decision: 9,
            ..request()
        })
        .expect_err("unknown decision");
        assert_eq!(decision.reason, Reason::FieldInvalid);
        let times = Filter::parse(&api::QueryEventsRequest {
            from_time_unix_ms: 10,
            to_time_unix_ms: 5,
            ..request()
        })
        .expect_err("reversed");
        assert_eq!(times.reason, Reason::ValueOutOfRange);
        let id = Filter::parse(&api::QueryEventsRequest {
            agent_id: "no spaces".to_string(),
            ..request()
        })
        .expect_err("bad id");
        assert_eq!(id.code, Code::InvalidArgument);
        assert_eq!(page_limit(0).expect("default"), QUERY_PAGE_DEFAULT);
        assert_eq!(page_limit(1000).expect("max"), QUERY_PAGE_MAX);
        assert_eq!(
            page_limit(1001).expect_err("over").reason,
            Reason::ValueOutOfRange
        );
    }
}
