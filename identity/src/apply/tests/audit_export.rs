//! The audit stream's progress: only a node's own, forward only, never past the events before
//! the command, and itself an event.

use super::*;

fn progress(through_seq: u64, node_id: u64) -> log::RecordAuditExportProgress {
    log::RecordAuditExportProgress {
        through_seq,
        node_id,
    }
}

fn exported(replica: &Replica) -> u64 {
    query::audit_exported(&replica.state).unwrap()
}

#[test]
fn progress_moves_forward_as_an_event_and_counts_itself_next_time() {
    let mut replica = Replica::world();
    let last = replica.seq();
    assert_eq!(exported(&replica), 0);
    let (_, event) = check_accepted(&mut replica, progress(last, 1).by(node(1)));
    assert_eq!(
        event.kind,
        Some(EventKind::AuditExportProgressed(
            log::AuditExportProgressed {
                through_seq: last,
                previous_through_seq: 0,
                node_id: 1,
            }
        ))
    );
    assert_eq!(exported(&replica), last);
    // The progress event itself is exported next; a later progress covers it.
    let (_, event) = check_accepted(&mut replica, progress(last + 1, 2).by(node(2)));
    assert_eq!(
        event.kind,
        Some(EventKind::AuditExportProgressed(
            log::AuditExportProgressed {
                through_seq: last + 1,
                previous_through_seq: last,
                node_id: 2,
            }
        ))
    );
    assert_eq!(exported(&replica), last + 1);
}

#[test]
fn equal_progress_is_a_no_op() {
    let mut replica = Replica::world();
    let last = replica.seq();
    check_accepted(&mut replica, progress(last, 1).by(node(1)));
    check_unchanged(&mut replica, progress(last, 1).by(node(1)).key("again"));
    assert_eq!(exported(&replica), last);
}

#[test]
fn progress_never_goes_back_nor_past_the_log() {
    let replica = Replica::world();
    let last = replica.seq();
    check_rejected(
        replica.clone(),
        progress(last + 1, 1).by(node(1)),
        RejectReason::InvalidCommand,
        &format!(
            "through_seq is {} but the last event before this command is {last}; allowed: at \
             most {last}",
            last + 1
        ),
    );
    let mut ahead = replica;
    check_accepted(&mut ahead, progress(last, 1).by(node(1)));
    check_rejected(
        ahead,
        progress(last - 1, 1).by(node(1)),
        RejectReason::InvalidCommand,
        &format!(
            "through_seq is {} but the audit stream was already exported through {last}; \
             allowed: {last} or more (progress only moves forward)",
            last - 1
        ),
    );
}

#[test]
fn only_a_node_records_progress_and_only_its_own() {
    let cases = [
        (
            progress(1, 1).by(admin()),
            "only a node may record the audit stream's progress",
        ),
        (
            progress(1, 1).by(node(2)),
            "progress of node 1's exporter; allowed: a node records only its own progress",
        ),
    ];
    for (command, message) in cases {
        check_rejected(
            Replica::world(),
            command,
            RejectReason::PermissionDenied,
            message,
        );
    }
}
