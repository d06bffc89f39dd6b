//! The policy reads: a version, the list of versions, the diff between two, and the shadow
//! report. Each passes the read barrier its request names, as every Get does; Get and List
//! answer as of the point `read.as_of` names, Diff and ShadowReport only about now.

use tonic::Code;
use warrant_identity::{StateRead, limits, query};
use warrant_proto::{
    api,
    log::{self, event::Kind as EventKind},
    state::{PolicyActivationRow, PolicyVersionRow},
};

use super::diff;
use crate::{
    context::Context,
    error::{ApiError, Reason},
    limits::SHADOW_REPORT_EVENTS_SCANNED_MAX,
    storage::storage,
    validate,
};

/// Page size when a list or report names none.
const PAGE_SIZE_DEFAULT: u64 = 100;

fn page_size(limit: u32) -> Result<usize, ApiError> {
    let size = if limit == 0 {
        PAGE_SIZE_DEFAULT
    } else {
        u64::from(limit)
    };
    validate::in_range("limit", size, 1, limits::LIST_PAGE_MAX as u64)?;
    Ok(size as usize)
}

fn version_not_found(message: String) -> ApiError {
    ApiError::new(Code::NotFound, Reason::PolicyVersionNotFound, message)
}

/// The version `version` (0: the active one), or POLICY_VERSION_NOT_FOUND.
fn version_row(
    state: &dyn StateRead,
    activation: &PolicyActivationRow,
    version: u32,
) -> Result<PolicyVersionRow, ApiError> {
    let wanted = match version {
        0 if activation.active_version == 0 => {
            return Err(version_not_found(
                "no policy version is active (the delegation's scopes decide alone): ask for a \
                 version by number, or activate one"
                    .to_string(),
            ));
        }
        0 => activation.active_version,
        version => version,
    };
    query::policy_version(state, wanted)
        .map_err(storage)?
        .ok_or_else(|| {
            version_not_found(format!(
                "policy version {wanted} is not published; the latest is {}",
                activation.latest_version
            ))
        })
}

/// A version as the API shows it; `with_text` false for lists.
fn version_reply(
    row: PolicyVersionRow,
    activation: &PolicyActivationRow,
    with_text: bool,
) -> api::PolicyVersion {
    let published = row.published.unwrap_or_default();
    api::PolicyVersion {
        version: published.version,
        text: if with_text {
            published.text
        } else {
            String::new()
        },
        description: published.description,
        attributes: published.attributes,
        policy_ids: published.policy_ids,
        published_seq: row.published_seq,
        published_unix_ms: row.published_unix_ms,
        active: published.version == activation.active_version,
        shadow: published.version == activation.shadow_version,
        text_sha256_hex: hex::encode(published.text_sha256),
    }
}

pub(super) async fn get(
    context: &Context,
    request: api::GetPolicyRequest,
) -> Result<api::PolicyVersion, ApiError> {
    let reader = context
        .read_view(validate::read_options(request.read.as_ref())?)
        .await?;
    let activation = query::policy_activation(&reader).map_err(storage)?;
    let row = version_row(&reader, &activation, request.version)?;
    Ok(version_reply(row, &activation, true))
}

pub(super) async fn list(
    context: &Context,
    request: api::ListPoliciesRequest,
) -> Result<api::ListPoliciesResponse, ApiError> {
    let size = page_size(request.limit)?;
    let reader = context
        .read_view(validate::read_options(request.read.as_ref())?)
        .await?;
    let activation = query::policy_activation(&reader).map_err(storage)?;
    let rows =
        query::list_policy_versions(&reader, request.after_version, size).map_err(storage)?;
    let versions: Vec<api::PolicyVersion> = rows
        .into_iter()
        .map(|row| version_reply(row, &activation, false))
        .collect();
    let next_after_version = match versions.last() {
        Some(last) if versions.len() == size => last.version,
        _ => 0,
    };
    Ok(api::ListPoliciesResponse {
        versions,
        active_version: activation.active_version,
        shadow_version: activation.shadow_version,
        next_after_version,
    })
}

pub(super) async fn diff(
    context: &Context,
    request: api::DiffPoliciesRequest,
) -> Result<api::DiffPoliciesResponse, ApiError> {
    let consistency = validate::read_consistency(request.read.as_ref())?;
    let reader = context.read(consistency).await?;
    let activation = query::policy_activation(&reader).map_err(storage)?;
    let from = version_row(&reader, &activation, request.from_version)?;
    let to = version_row(&reader, &activation, request.to_version)?;
    let (from, to) = (
        from.published.unwrap_or_default(),
        to.published.unwrap_or_default(),
    );
    let diff = diff::diff(
        &from.text,
        &to.text,
        &format!("version {}", from.version),
        &format!("version {}", to.version),
    )
    .map_err(|e| ApiError::internal(format!("a published policy text does not parse: {e}")))?;
    Ok(api::DiffPoliciesResponse {
        added_policy_ids: diff.added,
        removed_policy_ids: diff.removed,
        changed_policy_ids: diff.changed,
        unified_diff: diff.unified,
    })
}

/// The receipts in `[from_seq, to_seq]` whose shadow decision differs from the enforced one.
/// One call scans at most [`SHADOW_REPORT_EVENTS_SCANNED_MAX`] events and returns at most
/// `limit` changes; `next_seq` says where to go on.
pub(super) async fn shadow_report(
    context: &Context,
    request: api::ShadowReportRequest,
) -> Result<api::ShadowReportResponse, ApiError> {
    let size = page_size(request.limit)?;
    let consistency = validate::read_consistency(request.read.as_ref())?;
    let reader = context.read(consistency).await?;
    let applied_seq = query::applied_seq(&reader).map_err(storage)?;
    let from_seq = request.from_seq.max(1);
    let to_seq = match request.to_seq {
        0 => applied_seq,
        to_seq => to_seq.min(applied_seq),
    };
    if request.to_seq != 0 && request.to_seq < from_seq {
        return Err(ApiError::invalid_field(
            Reason::ValueOutOfRange,
            "to_seq",
            format!(
                "to_seq {} is before from_seq {from_seq}; allowed: 0 (the applied seq) or a seq \
                 at or after from_seq",
                request.to_seq
            ),
        ));
    }
    let scan = scan_receipts(&reader, from_seq, to_seq, size).map_err(storage)?;
    Ok(api::ShadowReportResponse {
        changes: scan.changes,
        next_seq: scan.next_seq,
        compared: scan.compared,
    })
}

/// What one bounded scan found.
#[derive(Debug, Default, PartialEq)]
struct ReceiptScan {
    changes: Vec<api::Receipt>,
    /// The first seq not scanned: `to_seq + 1` when the range is done.
    next_seq: u64,
    compared: u64,
}

/// Scans events `[from_seq, to_seq]` in pages, stopping after
/// [`SHADOW_REPORT_EVENTS_SCANNED_MAX`] events or `changes_max` changes.
fn scan_receipts(
    state: &dyn StateRead,
    from_seq: u64,
    to_seq: u64,
    changes_max: usize,
) -> Result<ReceiptScan, warrant_identity::StateError> {
    let mut scan = ReceiptScan {
        next_seq: from_seq,
        ..Default::default()
    };
    let mut scanned = 0;
    while scan.next_seq <= to_seq
        && scanned < SHADOW_REPORT_EVENTS_SCANNED_MAX
        && scan.changes.len() < changes_max
    {
        let left = usize::try_from(to_seq - scan.next_seq + 1).unwrap_or(usize::MAX);
        let page = left
            .min(SHADOW_REPORT_EVENTS_SCANNED_MAX - scanned)
            .min(limits::EVENTS_PAGE_MAX);
        let events = query::events(state, scan.next_seq, page)?;
        if events.is_empty() {
            scan.next_seq = to_seq + 1;
            break;
        }
        for event in events {
            scanned += 1;
            scan.next_seq = event.seq + 1;
            if let Some(EventKind::AccessDecided(receipt)) = event.kind {
                compare(&mut scan, event.seq, receipt);
            }
            if scan.changes.len() == changes_max {
                break;
            }
        }
    }
    Ok(scan)
}

/// Counts a receipt with a shadow decision, and keeps it if the shadow decided otherwise.
fn compare(scan: &mut ReceiptScan, seq: u64, receipt: log::AccessDecided) {
    let Some(shadow) = &receipt.shadow else {
        return;
    };
    scan.compared += 1;
    if shadow.decision != receipt.decision {
        scan.changes.push(api::Receipt {
            seq,
            decision: Some(receipt),
        });
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use warrant_identity::{InMemoryState, WriteSet, keys};

    use super::*;

    fn receipt(decision: log::AccessDecision, shadow: Option<log::AccessDecision>) -> EventKind {
        EventKind::AccessDecided(log::AccessDecided {
            decision: decision as i32,
            shadow: shadow.map(|it| log::ShadowDecision {
                policy_version: 2,
                decision: it as i32,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn state_with(kinds: Vec<EventKind>) -> InMemoryState {
        let mut writes = WriteSet::new();
        for (i, kind) in kinds.into_iter().enumerate() {
            let seq = i as u64 + 1;
            let event = log::Event {
                seq,
                kind: Some(kind),
                ..Default::default()
            };
            writes.put(keys::event(seq), event.encode_to_vec());
        }
        let mut state = InMemoryState::new();
        state.apply_writes(&writes);
        state
    }

    #[test]
    fn the_report_lists_receipts_whose_shadow_differs_and_says_where_to_go_on() {
        use log::AccessDecision::{Allow, Deny};
        let state = state_with(vec![
            receipt(Allow, Some(Deny)),
            receipt(Allow, None),
            EventKind::PolicyActivated(log::PolicyActivated::default()),
            receipt(Deny, Some(Deny)),
            receipt(Deny, Some(Allow)),
        ]);
        let all = scan_receipts(&state, 1, 5, 100).expect("scan");
        let seqs: Vec<u64> = all.changes.iter().map(|it| it.seq).collect();
        assert_eq!((seqs, all.compared, all.next_seq), (vec![1, 5], 3, 6));
        // A full page stops at the change that filled it.
        let first = scan_receipts(&state, 1, 5, 1).expect("scan");
        assert_eq!((first.changes.len(), first.next_seq), (1, 2));
        let rest = scan_receipts(&state, first.next_seq, 5, 1).expect("scan");
        assert_eq!(rest.changes[0].seq, 5);
        // Past the last event: the range is done.
        assert_eq!(scan_receipts(&state, 6, 9, 10).expect("scan").next_seq, 10);
    }

    #[test]
    fn version_zero_is_the_active_one_and_an_unknown_version_is_not_found() {
        let mut writes = WriteSet::new();
        let published = log::PolicyPublished {
            version: 1,
            text: "permit(principal, action, resource);".to_string(),
            text_sha256: vec![0xab, 0x01],
            ..Default::default()
        };
        let row = PolicyVersionRow {
            published: Some(published),
            published_seq: 4,
            ..Default::default()
        };
        writes.put(
            [b"pv\0".as_slice(), &1u32.to_be_bytes()].concat(),
            row.encode_to_vec(),
        );
        let mut state = InMemoryState::new();
        state.apply_writes(&writes);

        let none_active = PolicyActivationRow {
            latest_version: 1,
            ..Default::default()
        };
        let refused = version_row(&state, &none_active, 0).expect_err("none is active");
        assert_eq!(refused.reason, Reason::PolicyVersionNotFound);
        assert_eq!(
            version_row(&state, &none_active, 1).expect("published"),
            row
        );
        let unknown = version_row(&state, &none_active, 2).expect_err("not published");
        assert_eq!(unknown.code, Code::NotFound);

        let active = PolicyActivationRow {
            active_version: 1,
            latest_version: 1,
            ..Default::default()
        };
        let got = version_row(&state, &active, 0).expect("the active one");
        let full = version_reply(got.clone(), &active, true);
        assert_eq!(
            (
                full.version,
                full.active,
                full.shadow,
                full.text_sha256_hex.as_str()
            ),
            (1, true, false, "ab01")
        );
        assert!(!full.text.is_empty());
        assert!(
            version_reply(got, &active, false).text.is_empty(),
            "lists omit the text"
        );
    }
}
