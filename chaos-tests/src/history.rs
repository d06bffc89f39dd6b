//! The record of a run, Jepsen-style.
//!
//! Every client call is one [`Op`]: what was called ([`OpF`]), on which node, by which client
//! process, when it was invoked and when it completed (both on the [`Recorder`]'s one monotonic
//! clock), and its [`Outcome`]. The outcome keeps the three cases a checker must tell apart:
//! acknowledged ([`Outcome::Ok`]), definitely not applied ([`Outcome::Fail`]) and indeterminate
//! ([`Outcome::Info`]: a write that timed out may or may not have happened).
//!
//! A finished [`History`] is written as JSON Lines (one op per line) so a failing run's history can
//! be kept beside its schedule and judged again later.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The most ops one history holds: past it the recorder refuses new calls, so a runaway workload
/// stops instead of filling memory (an op is a few hundred bytes; this is well under 100 MiB).
pub const MAX_OPS_PER_HISTORY: usize = 250_000;

/// The most ops about one key (one jti, one human id) that the linearizability checker searches.
/// Workloads move on to a fresh key well before this; the WGL search is exponential in the
/// number of concurrent ops, so a key past it is reported as unknown rather than searched.
pub const MAX_OPS_PER_KEY: usize = 200;

/// The key of ops about the audit log as a whole (checkpoints), which concern no one entity.
pub const AUDIT_KEY: &str = "audit";

/// The code the recorder gives an op whose [`Pending`] was dropped without a completion (the
/// client task ended or panicked mid-call): the call may or may not have taken effect.
pub const ABANDONED_CODE: &str = "abandoned";
/// The code the recorder gives an op still in flight when the history was finished.
pub const UNFINISHED_CODE: &str = "unfinished";
/// Codes the recorder itself writes (not the server nor the transport).
pub const RECORDER_CODES: [&str; 2] = [ABANDONED_CODE, UNFINISHED_CODE];

/// The canonical names of the gRPC status codes, by number (0 is OK).
pub const GRPC_CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The canonical name of a gRPC status code (`tonic::Code as i32`), or None if it is not one.
pub fn grpc_code_name(code: i32) -> Option<&'static str> {
    usize::try_from(code)
        .ok()
        .and_then(|i| GRPC_CODE_NAMES.get(i).copied())
}

/// How fresh a read was asked to be (mirrors `warrant.v1.Consistency`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    Local,
    AtLeast,
    Linearizable,
}

/// Why an attempted delegation must be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelegationFault {
    /// The child asks for a scope its parent does not hold.
    Widen,
    /// The delegation would make the chain loop back on itself.
    Cycle,
}

/// What a client called.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum OpF {
    /// W1: register a human under a unique id.
    RegisterHuman { id: String },
    /// W2: issue a token to an agent; the jti is known only from the reply.
    Issue { agent: String },
    /// W2: verify a token (named by its jti).
    Verify {
        jti: String,
        consistency: Consistency,
    },
    /// W2: revoke a token.
    Revoke { jti: String },
    /// W3: a legal delegation from `parent` (a delegation id, or the human at a chain's root).
    CreateDelegation { parent: String, scopes: Vec<String> },
    /// W3: a delegation that widens its parent's scopes or closes a cycle: must be refused.
    InvalidDelegation {
        parent: String,
        scopes: Vec<String>,
        fault: DelegationFault,
    },
    /// W5: read the audit log's latest checkpoint.
    Checkpoint,
    /// W6: a malformed request (named by its case): must be refused with a documented reason.
    BadInput { case: String },
}

impl OpF {
    /// The entity the op concerns, as known when it is invoked (empty for an issue: its jti
    /// arrives with the reply, and [`Pending::complete`] fills it in).
    pub fn key(&self) -> &str {
        match self {
            OpF::RegisterHuman { id } => id,
            OpF::Issue { .. } => "",
            OpF::Verify { jti, .. } | OpF::Revoke { jti } => jti,
            OpF::CreateDelegation { parent, .. } | OpF::InvalidDelegation { parent, .. } => parent,
            OpF::Checkpoint => AUDIT_KEY,
            OpF::BadInput { case } => case,
        }
    }

    /// Whether the op changes state when it succeeds (what liveness waits for).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            OpF::RegisterHuman { .. }
                | OpF::Issue { .. }
                | OpF::Revoke { .. }
                | OpF::CreateDelegation { .. }
        )
    }
}

/// What a verify said about a token.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyResult {
    Active,
    /// Inactive with reason REVOKED.
    Revoked,
    /// Inactive for any other reason (expired, unknown token...), named.
    OtherInvalid(String),
}

/// The typed result of an acknowledged op.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "value", rename_all = "snake_case")]
pub enum Value {
    /// Acknowledged, nothing more to say (register, revoke, a bad input wrongly accepted).
    Ack,
    Issued {
        jti: String,
    },
    Verified {
        result: VerifyResult,
    },
    DelegationCreated {
        id: String,
    },
    Checkpoint {
        size: u64,
        root: String,
        /// The signed note itself, for checking the final log's consistency with it.
        note: String,
    },
}

/// How an op ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged by the server.
    Ok(Value),
    /// Definitely did not take effect: a failed read, or a write refused with a reason the API
    /// documents as "not applied". `code` is the gRPC code's name, `reason` the ErrorInfo reason.
    Fail { code: String, reason: String },
    /// Indeterminate: timeout, unavailable, connection lost. A write may or may not have
    /// happened. `code` is the gRPC code's name or a transport class ("unreachable").
    Info { code: String, reason: String },
}

impl Outcome {
    /// The (code, reason) of a Fail or Info outcome.
    pub fn error(&self) -> Option<(&str, &str)> {
        match self {
            Outcome::Ok(_) => None,
            Outcome::Fail { code, reason } | Outcome::Info { code, reason } => Some((code, reason)),
        }
    }
}

/// One client call, invoked and completed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history (invocation order when recorded by a [`Recorder`]).
    pub index: usize,
    /// The client task that made the call (one call in flight per process).
    pub process: u32,
    /// The node the call was sent to.
    pub node: u64,
    pub f: OpF,
    /// The entity the op concerns (a jti, a human id...).
    pub key: String,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub outcome: Outcome,
}

impl Op {
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }
    pub fn is_fail(&self) -> bool {
        matches!(self.outcome, Outcome::Fail { .. })
    }
    pub fn is_info(&self) -> bool {
        matches!(self.outcome, Outcome::Info { .. })
    }
}

/// One line a human can read: `#12 p3 n2 [100..250] revoke key=abc -> ok ack`.
impl fmt::Display for Op {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let f = serde_json::to_string(&self.f).map_err(|_| fmt::Error)?;
        let outcome = match &self.outcome {
            Outcome::Ok(value) => {
                format!(
                    "ok {}",
                    serde_json::to_string(value).map_err(|_| fmt::Error)?
                )
            }
            Outcome::Fail { code, reason } => format!("fail {code} {reason}"),
            Outcome::Info { code, reason } => format!("info {code} {reason}"),
        };
        write!(
            out,
            "#{} p{} n{} [{}..{}] {} key={} -> {}",
            self.index,
            self.process,
            self.node,
            self.invoke_ns,
            self.complete_ns,
            f,
            self.key,
            outcome
        )
    }
}

/// What can go wrong recording, writing or reading a history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("the history is full ({limit} ops)")]
    Full { limit: usize },
    #[error("op at position {position} has index {index}")]
    BadIndex { position: usize, index: usize },
    #[error("op {index} completes ({complete_ns}) before it is invoked ({invoke_ns})")]
    CompletesBeforeInvoke {
        index: usize,
        invoke_ns: u64,
        complete_ns: u64,
    },
    #[error("history line {line}: {source}")]
    Json {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("history i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A finished run's ops, in index order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    ops: Vec<Op>,
}

impl History {
    /// A history of these ops, checked: index equal to position, completion not before
    /// invocation, at most [`MAX_OPS_PER_HISTORY`].
    pub fn from_ops(ops: Vec<Op>) -> Result<Self, HistoryError> {
        if ops.len() > MAX_OPS_PER_HISTORY {
            return Err(HistoryError::Full {
                limit: MAX_OPS_PER_HISTORY,
            });
        }
        for (position, op) in ops.iter().enumerate() {
            if op.index != position {
                return Err(HistoryError::BadIndex {
                    position,
                    index: op.index,
                });
            }
            if op.complete_ns < op.invoke_ns {
                return Err(HistoryError::CompletesBeforeInvoke {
                    index: op.index,
                    invoke_ns: op.invoke_ns,
                    complete_ns: op.complete_ns,
                });
            }
        }
        Ok(History { ops })
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The ops grouped by key, each group in index order.
    pub fn by_key(&self) -> BTreeMap<&str, Vec<&Op>> {
        let mut groups: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
        for op in &self.ops {
            groups.entry(op.key.as_str()).or_default().push(op);
        }
        groups
    }

    /// The acknowledged write that completed first at or after `ns` (liveness after a heal).
    pub fn first_acknowledged_write_after(&self, ns: u64) -> Option<&Op> {
        self.ops
            .iter()
            .filter(|op| op.f.is_write() && op.is_ok() && op.complete_ns >= ns)
            .min_by_key(|op| op.complete_ns)
    }

    /// JSON Lines: one op per line, each line ending in a newline.
    pub fn write_jsonl<W: Write>(&self, mut out: W) -> Result<(), HistoryError> {
        for (line, op) in self.ops.iter().enumerate() {
            serde_json::to_writer(&mut out, op).map_err(|source| HistoryError::Json {
                line: line + 1,
                source,
            })?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    }

    pub fn to_jsonl(&self) -> String {
        let mut bytes = Vec::new();
        // Writing to a Vec cannot fail, and every Op serialises (plain strings and numbers).
        self.write_jsonl(&mut bytes)
            .expect("an in-memory history serialises");
        String::from_utf8(bytes).expect("serde_json writes UTF-8")
    }

    /// Reads JSON Lines (blank lines skipped) and checks the result as [`History::from_ops`].
    pub fn read_jsonl<R: BufRead>(input: R) -> Result<Self, HistoryError> {
        let mut ops = Vec::new();
        for (number, line) in input.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            if ops.len() == MAX_OPS_PER_HISTORY {
                return Err(HistoryError::Full {
                    limit: MAX_OPS_PER_HISTORY,
                });
            }
            let op = serde_json::from_str(&line).map_err(|source| HistoryError::Json {
                line: number + 1,
                source,
            })?;
            ops.push(op);
        }
        History::from_ops(ops)
    }

    pub fn from_jsonl(text: &str) -> Result<Self, HistoryError> {
        History::read_jsonl(text.as_bytes())
    }

    pub fn write_file(&self, path: &Path) -> Result<(), HistoryError> {
        let file = std::fs::File::create(path)?;
        self.write_jsonl(std::io::BufWriter::new(file))
    }

    pub fn read_file(path: &Path) -> Result<Self, HistoryError> {
        History::read_jsonl(BufReader::new(std::fs::File::open(path)?))
    }
}

/// One recorded op and whether its completion is still to come.
struct Slot {
    op: Op,
    open: bool,
}

struct RecorderInner {
    origin: Instant,
    slots: Mutex<Vec<Slot>>,
}

/// Records a run's ops from many client tasks. Cheap to clone (one shared log).
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Recorder {
            inner: Arc::new(RecorderInner {
                origin: Instant::now(),
                slots: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Nanoseconds since the recorder's origin: the clock of every op's times, for the nemesis
    /// to stamp its heals on the same clock.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.inner.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn slots(&self) -> MutexGuard<'_, Vec<Slot>> {
        // A client task that panicked while holding the lock left the log whole (every write
        // under it is a single push or assignment), so its poison is no reason to lose the run.
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the invocation of `f` by `process` on `node`; complete the returned [`Pending`]
    /// when the reply (or the failure) arrives.
    pub fn invoke(&self, process: u32, node: u64, f: OpF) -> Result<Pending, HistoryError> {
        let mut slots = self.slots();
        if slots.len() >= MAX_OPS_PER_HISTORY {
            return Err(HistoryError::Full {
                limit: MAX_OPS_PER_HISTORY,
            });
        }
        // Stamped under the lock, so index order is invocation order.
        let invoke_ns = self.now_ns();
        let index = slots.len();
        let key = f.key().to_owned();
        slots.push(Slot {
            op: Op {
                index,
                process,
                node,
                f,
                key,
                invoke_ns,
                complete_ns: invoke_ns,
                outcome: Outcome::Info {
                    code: UNFINISHED_CODE.to_owned(),
                    reason: "no reply was recorded".to_owned(),
                },
            },
            open: true,
        });
        Ok(Pending {
            recorder: self.clone(),
            index,
            completed: false,
        })
    }

    fn complete(&self, index: usize, outcome: Outcome) {
        let mut slots = self.slots();
        let complete_ns = self.now_ns();
        let Some(slot) = slots.get_mut(index) else {
            return;
        };
        if let Outcome::Ok(Value::Issued { jti }) = &outcome
            && slot.op.key.is_empty()
        {
            slot.op.key = jti.clone();
        }
        slot.op.complete_ns = complete_ns;
        slot.op.outcome = outcome;
        slot.open = false;
    }

    /// How many ops have been invoked so far.
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The history so far. Ops still in flight are recorded as indeterminate ([`UNFINISHED_CODE`])
    /// completing now: they may yet take effect.
    pub fn finish(&self) -> History {
        let slots = self.slots();
        let now = self.now_ns();
        let ops = slots
            .iter()
            .map(|slot| {
                let mut op = slot.op.clone();
                if slot.open {
                    op.complete_ns = now.max(op.invoke_ns);
                }
                op
            })
            .collect();
        History { ops }
    }
}

/// An invoked op waiting for its outcome. Dropping it uncompleted records the op as
/// indeterminate ([`ABANDONED_CODE`]): the call may have reached the server.
#[must_use = "complete the pending op with its outcome"]
pub struct Pending {
    recorder: Recorder,
    index: usize,
    completed: bool,
}

impl Pending {
    /// The op's index in the history.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Records the op's outcome, stamped now. An issue's jti becomes the op's key.
    pub fn complete(mut self, outcome: Outcome) {
        self.completed = true;
        self.recorder.complete(self.index, outcome);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.completed {
            self.recorder.complete(
                self.index,
                Outcome::Info {
                    code: ABANDONED_CODE.to_owned(),
                    reason: "the client task ended before the reply".to_owned(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify_active() -> Outcome {
        Outcome::Ok(Value::Verified {
            result: VerifyResult::Active,
        })
    }

    #[test]
    fn recorder_stamps_both_ends_in_order_and_keys_issues_by_jti() {
        let recorder = Recorder::new();
        let issue = recorder
            .invoke(1, 2, OpF::Issue { agent: "a1".into() })
            .expect("room in the history");
        let register = recorder
            .invoke(2, 3, OpF::RegisterHuman { id: "h1".into() })
            .expect("room in the history");
        register.complete(Outcome::Ok(Value::Ack));
        issue.complete(Outcome::Ok(Value::Issued { jti: "j1".into() }));
        let history = recorder.finish();
        let ops = history.ops();
        assert_eq!(ops.len(), 2);
        assert_eq!((ops[0].index, ops[0].key.as_str()), (0, "j1"));
        assert_eq!(
            (ops[1].process, ops[1].node, ops[1].key.as_str()),
            (2, 3, "h1")
        );
        assert!(ops[0].invoke_ns <= ops[1].invoke_ns);
        assert!(ops[1].complete_ns <= ops[0].complete_ns);
        assert!(ops.iter().all(|op| op.invoke_ns <= op.complete_ns));
    }

    #[test]
    fn dropped_and_unfinished_ops_are_indeterminate() {
        let recorder = Recorder::new();
        drop(
            recorder
                .invoke(0, 1, OpF::Revoke { jti: "j".into() })
                .expect("room"),
        );
        let in_flight = recorder.invoke(1, 1, OpF::Checkpoint).expect("room");
        let history = recorder.finish();
        let codes: Vec<_> = history
            .ops()
            .iter()
            .map(|op| op.outcome.error().map(|(code, _)| code.to_owned()))
            .collect();
        assert_eq!(
            codes,
            vec![
                Some(ABANDONED_CODE.to_owned()),
                Some(UNFINISHED_CODE.to_owned())
            ]
        );
        in_flight.complete(verify_active());
        assert!(recorder.finish().ops()[1].is_ok());
    }

    #[test]
    fn recorder_is_shared_across_threads() {
        const THREADS: u32 = 4;
        const OPS_PER_THREAD: usize = 50;
        let recorder = Recorder::new();
        let handles: Vec<_> = (0..THREADS)
            .map(|process| {
                let recorder = recorder.clone();
                std::thread::spawn(move || {
                    for n in 0..OPS_PER_THREAD {
                        let id = format!("h-{process}-{n}");
                        let pending = recorder
                            .invoke(process, 1, OpF::RegisterHuman { id })
                            .expect("room");
                        pending.complete(Outcome::Ok(Value::Ack));
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("client thread finishes");
        }
        let history = recorder.finish();
        assert_eq!(history.len(), THREADS as usize * OPS_PER_THREAD);
        assert!(History::from_ops(history.ops().to_vec()).is_ok());
    }

    #[test]
    fn jsonl_round_trips_every_kind_of_op() {
        let fs = vec![
            (
                OpF::RegisterHuman { id: "h".into() },
                Outcome::Ok(Value::Ack),
            ),
            (
                OpF::Issue { agent: "a".into() },
                Outcome::Ok(Value::Issued { jti: "j".into() }),
            ),
            (
                OpF::Verify {
                    jti: "j".into(),
                    consistency: Consistency::Linearizable,
                },
                Outcome::Ok(Value::Verified {
                    result: VerifyResult::OtherInvalid("EXPIRED".into()),
                }),
            ),
            (
                OpF::Revoke { jti: "j".into() },
                Outcome::Info {
                    code: "unreachable".into(),
                    reason: "connection refused".into(),
                },
            ),
            (
                OpF::CreateDelegation {
                    parent: "h".into(),
                    scopes: vec!["read".into()],
                },
                Outcome::Ok(Value::DelegationCreated { id: "d1".into() }),
            ),
            (
                OpF::InvalidDelegation {
                    parent: "d1".into(),
                    scopes: vec!["write".into()],
                    fault: DelegationFault::Widen,
                },
                Outcome::Fail {
                    code: "PERMISSION_DENIED".into(),
                    reason: "SCOPE_WIDENING".into(),
                },
            ),
            (
                OpF::Checkpoint,
                Outcome::Ok(Value::Checkpoint {
                    size: 7,
                    root: "ab".into(),
                    note: "origin\n7\nqw==\n".into(),
                }),
            ),
            (
                OpF::BadInput {
                    case: "long".into(),
                },
                Outcome::Fail {
                    code: "INVALID_ARGUMENT".into(),
                    reason: "FIELD_TOO_LONG".into(),
                },
            ),
        ];
        let ops = fs
            .into_iter()
            .enumerate()
            .map(|(index, (f, outcome))| Op {
                index,
                process: 1,
                node: 1,
                key: f.key().to_owned(),
                f,
                invoke_ns: 10 * index as u64,
                complete_ns: 10 * index as u64 + 5,
                outcome,
            })
            .collect();
        let history = History::from_ops(ops).expect("well-formed");
        let text = history.to_jsonl();
        assert_eq!(text.lines().count(), history.len());
        assert_eq!(History::from_jsonl(&text).expect("reads back"), history);

        let path =
            std::env::temp_dir().join(format!("warrant-history-{}.jsonl", std::process::id()));
        history.write_file(&path).expect("writes");
        let read_back = History::read_file(&path).expect("reads");
        std::fs::remove_file(&path).expect("removes");
        assert_eq!(read_back, history);
    }

    #[test]
    fn malformed_histories_are_refused_with_where() {
        let op = Op {
            index: 1,
            process: 0,
            node: 0,
            f: OpF::Checkpoint,
            key: AUDIT_KEY.into(),
            invoke_ns: 5,
            complete_ns: 9,
            outcome: Outcome::Ok(Value::Ack),
        };
        assert!(matches!(
            History::from_ops(vec![op.clone()]),
            Err(HistoryError::BadIndex {
                position: 0,
                index: 1
            })
        ));
        let backwards = Op {
            index: 0,
            complete_ns: 4,
            ..op
        };
        assert!(matches!(
            History::from_ops(vec![backwards]),
            Err(HistoryError::CompletesBeforeInvoke { index: 0, .. })
        ));
        assert!(matches!(
            History::from_jsonl("\n{not json}\n"),
            Err(HistoryError::Json { line: 2, .. })
        ));
    }

    #[test]
    fn grpc_code_names_are_canonical() {
        assert_eq!(grpc_code_name(0), Some("OK"));
        assert_eq!(grpc_code_name(14), Some("UNAVAILABLE"));
        assert_eq!(grpc_code_name(16), Some("UNAUTHENTICATED"));
        assert_eq!(grpc_code_name(17), None);
        assert_eq!(grpc_code_name(-1), None);
    }

    #[test]
    fn first_acknowledged_write_after_ignores_reads_failures_and_earlier_writes() {
        let op = |index: usize, f: OpF, complete_ns: u64, outcome: Outcome| Op {
            index,
            process: 0,
            node: 0,
            key: f.key().to_owned(),
            f,
            invoke_ns: 0,
            complete_ns,
            outcome,
        };
        let info = Outcome::Info {
            code: "UNAVAILABLE".into(),
            reason: "NOT_LEADER".into(),
        };
        let history = History::from_ops(vec![
            op(
                0,
                OpF::RegisterHuman { id: "a".into() },
                5,
                Outcome::Ok(Value::Ack),
            ),
            op(1, OpF::Checkpoint, 20, Outcome::Ok(Value::Ack)),
            op(2, OpF::RegisterHuman { id: "b".into() }, 25, info),
            op(
                3,
                OpF::RegisterHuman { id: "c".into() },
                40,
                Outcome::Ok(Value::Ack),
            ),
            op(
                4,
                OpF::Revoke { jti: "j".into() },
                30,
                Outcome::Ok(Value::Ack),
            ),
        ])
        .expect("well-formed");
        let first = history.first_acknowledged_write_after(10).expect("a write");
        assert_eq!(first.index, 4);
        assert!(history.first_acknowledged_write_after(41).is_none());
    }
}
