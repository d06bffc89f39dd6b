//! A linearizability checker: Wing & Gong's search with Lowe's memoisation (as in Knossos and
//! Porcupine), over a history partitioned per key.
//!
//! A history is linearizable if every acknowledged op can be given one instant between its
//! invocation and its completion at which it takes effect, such that the ops in instant order
//! are a legal sequential run of the [`Model`] producing every observed output. Per-key
//! partitioning is sound because the ops of different keys touch independent objects
//! (linearizability is compositional, Herlihy & Wing's locality; Porcupine's "P-compositionality").
//!
//! The three outcomes of [`crate::history`]: `Fail` ops did not take effect and are dropped;
//! `Info` ops may take effect at any instant after their invocation, or never (their completion
//! is +infinity); an `Info` read constrains nothing and is dropped too.
//!
//! The search is exponential in the worst case, so it is bounded: a key with more than
//! `max_ops_per_key` ops or a search past `step_budget` steps is [`Unknown`], which is reported
//! apart from a proof of non-linearizability.

use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;

use crate::history::{
    Consistency, History, MAX_OPS_PER_KEY, Op, OpF, Outcome, Value, VerifyResult,
};

/// Search steps (one per event the search looks at) allowed for one key.
pub const STEP_BUDGET: u64 = 2_000_000;
/// Search steps allowed, over all attempts, for shrinking one key's counterexample.
pub const SHRINK_STEP_BUDGET: u64 = 2_000_000;

/// A sequential specification of one object (one key's worth of state).
pub trait Model {
    type State: Clone + Eq + Hash + fmt::Debug;

    /// The object's state before any op.
    fn init(&self) -> Self::State;

    /// Whether the model judges this op at all (others of the same key are left out).
    fn relevant(&self, op: &Op) -> bool;

    /// Whether the op only reads: an indeterminate read says nothing and is dropped, and a
    /// counterexample is shrunk by dropping reads.
    fn is_read_only(&self, op: &Op) -> bool;

    /// The state after `op` takes effect in `state`, if `op` is legal there with the output it
    /// was observed to return. An `Info` op has no observed output: only its effect counts.
    fn step(&self, state: &Self::State, op: &Op) -> Option<Self::State>;
}

/// Bounds on the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_ops_per_key: usize,
    pub step_budget: u64,
    pub shrink_step_budget: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ops_per_key: MAX_OPS_PER_KEY,
            step_budget: STEP_BUDGET,
            shrink_step_budget: SHRINK_STEP_BUDGET,
        }
    }
}

/// Why a key could not be judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unknown {
    BudgetExhausted { steps: u64 },
    TooManyOps { ops: usize, limit: usize },
}

impl fmt::Display for Unknown {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unknown::BudgetExhausted { steps } => {
                write!(out, "unknown (budget exhausted after {steps} steps)")
            }
            Unknown::TooManyOps { ops, limit } => {
                write!(out, "unknown (too many ops: {ops}, limit {limit})")
            }
        }
    }
}

/// Why one key's ops are not linearizable, for a human.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counterexample {
    pub key: String,
    /// The longest linearizable prefix the search found: op indices in linearization order.
    pub longest_prefix: Vec<usize>,
    /// The model state after that prefix (its Debug form).
    pub state_after_prefix: String,
    /// The op that completed, after that prefix, with no legal instant to take effect.
    pub stuck: Option<usize>,
    /// The op indices of a small subset that alone is not linearizable: every acknowledged
    /// write of the key and as few other ops as shrinking found.
    pub minimal: Vec<usize>,
    /// All of the above as text, with the minimal ops written out.
    pub description: String,
}

/// The verdict on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    Linearizable,
    NotLinearizable(Counterexample),
    Unknown(Unknown),
}

/// The verdicts on every key of a history that the model judges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub keys_checked: usize,
    pub ops_checked: usize,
    pub not_linearizable: Vec<Counterexample>,
    pub unknown: Vec<(String, Unknown)>,
}

impl Report {
    /// Every key judged and found linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.not_linearizable.is_empty() && self.unknown.is_empty()
    }
}

/// Checks every key of `history` the model finds relevant ops for.
pub fn check_history<M: Model>(model: &M, history: &History, limits: &Limits) -> Report {
    let mut report = Report::default();
    for (key, ops) in history.by_key() {
        let relevant: Vec<&Op> = ops.into_iter().filter(|op| model.relevant(op)).collect();
        if relevant.is_empty() {
            continue;
        }
        report.keys_checked += 1;
        report.ops_checked += relevant.len();
        match check_key(model, key, &relevant, limits) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::NotLinearizable(counterexample) => {
                report.not_linearizable.push(counterexample);
            }
            KeyVerdict::Unknown(why) => report.unknown.push((key.to_owned(), why)),
        }
    }
    report
}

/// Checks one key's ops (all of that key, in any order; ops the model finds irrelevant, `Fail`
/// ops and indeterminate reads are dropped first).
pub fn check_key<M: Model>(model: &M, key: &str, ops: &[&Op], limits: &Limits) -> KeyVerdict {
    let mut ops: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|op| model.relevant(op) && !op.is_fail())
        .filter(|op| !(op.is_info() && model.is_read_only(op)))
        .collect();
    ops.sort_by_key(|op| op.index);
    if ops.len() > limits.max_ops_per_key {
        return KeyVerdict::Unknown(Unknown::TooManyOps {
            ops: ops.len(),
            limit: limits.max_ops_per_key,
        });
    }
    let (search, steps) = search(model, &ops, limits.step_budget);
    match search {
        Search::Linearizable => KeyVerdict::Linearizable,
        Search::OutOfBudget => KeyVerdict::Unknown(Unknown::BudgetExhausted { steps }),
        Search::Stuck(deepest) => {
            let minimal = shrink(model, ops.clone(), limits.shrink_step_budget);
            KeyVerdict::NotLinearizable(counterexample(key, &ops, &deepest, &minimal))
        }
    }
}

/// The furthest the search got: the deepest stack of linearized ops.
struct Deepest<S> {
    /// Local op ids in linearization order.
    prefix: Vec<usize>,
    state: S,
    /// The local id of the op whose completion ended that prefix's extension.
    stuck: Option<usize>,
}

enum Search<S> {
    Linearizable,
    Stuck(Deepest<S>),
    OutOfBudget,
}

/// Which ops are linearized, as bits over local op ids (the memo key, with the state).
#[derive(Clone, PartialEq, Eq, Hash)]
struct OpSet(Vec<u64>);

impl OpSet {
    fn new(ops: usize) -> Self {
        OpSet(vec![0; ops.div_ceil(64)])
    }
    fn with(&self, id: usize) -> Self {
        let mut set = self.clone();
        set.0[id / 64] |= 1 << (id % 64);
        set
    }
    fn contains(&self, id: usize) -> bool {
        self.0[id / 64] & (1 << (id % 64)) != 0
    }
    fn without(&mut self, id: usize) {
        self.0[id / 64] &= !(1 << (id % 64));
    }
}

const NIL: usize = usize::MAX;

/// The ops' invocations and completions as one time-ordered doubly linked list (entry 0 is the
/// head), from which the search lifts an op's two events and puts them back, in stack order.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Per entry: the op it belongs to.
    op: Vec<usize>,
    /// Per entry: for an invocation, its completion entry (NIL for an `Info` op, which never
    /// completes); None for a completion.
    completion: Vec<Option<usize>>,
}

impl Events {
    fn new(ops: &[&Op]) -> Self {
        // Calls sort before returns at the same instant: ops touching in time are concurrent.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (id, op) in ops.iter().enumerate() {
            events.push((op.invoke_ns, false, id));
            if !op.is_info() {
                events.push((op.complete_ns, true, id));
            }
        }
        events.sort_unstable();
        let entries = events.len() + 1;
        let mut list = Events {
            next: (1..=entries)
                .map(|n| if n == entries { NIL } else { n })
                .collect(),
            prev: (0..entries).map(|n| n.wrapping_sub(1)).collect(),
            op: vec![NIL; entries],
            completion: vec![None; entries],
        };
        let mut return_entry = vec![NIL; ops.len()];
        for (position, &(_, is_return, id)) in events.iter().enumerate() {
            list.op[position + 1] = id;
            if is_return {
                return_entry[id] = position + 1;
            }
        }
        for (position, &(_, is_return, id)) in events.iter().enumerate() {
            if !is_return {
                list.completion[position + 1] = Some(return_entry[id]);
            }
        }
        list
    }

    fn first(&self) -> usize {
        self.next[0]
    }

    fn unlink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev] = entry;
        if next != NIL {
            self.prev[next] = entry;
        }
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        if let Some(completion) = self.completion[call].filter(|&entry| entry != NIL) {
            self.unlink(completion);
        }
    }

    fn unlift(&mut self, call: usize) {
        if let Some(completion) = self.completion[call].filter(|&entry| entry != NIL) {
            self.relink(completion);
        }
        self.relink(call);
    }
}

/// For each indeterminate op, the latest indeterminate op invoked before it with the same call.
///
/// Such twins never complete and have no output, so they are interchangeable: whatever instant a
/// later twin could take effect at, the earlier one could too. The search therefore linearizes a
/// twin only after its earlier one, which turns k repeated timed-out revokes from 2^k subsets to
/// try into k + 1 (Knossos and Porcupine search them all).
fn earlier_twins(ops: &[&Op]) -> Vec<Option<usize>> {
    let mut by_invocation: Vec<usize> = (0..ops.len()).filter(|&id| ops[id].is_info()).collect();
    by_invocation.sort_by_key(|&id| (ops[id].invoke_ns, ops[id].index));
    let mut twins = vec![None; ops.len()];
    let mut latest: Vec<usize> = Vec::new();
    for id in by_invocation {
        match latest.iter_mut().find(|twin| ops[**twin].f == ops[id].f) {
            Some(twin) => {
                twins[id] = Some(*twin);
                *twin = id;
            }
            None => latest.push(id),
        }
    }
    twins
}

/// The WGL search. Returns the verdict and the steps it took.
fn search<M: Model>(model: &M, ops: &[&Op], budget: u64) -> (Search<M::State>, u64) {
    let mut remaining = ops.iter().filter(|op| !op.is_info()).count();
    if remaining == 0 {
        return (Search::Linearizable, 0);
    }
    let mut events = Events::new(ops);
    let twins = earlier_twins(ops);
    let mut state = model.init();
    let mut linearized = OpSet::new(ops.len());
    let mut seen: HashSet<(OpSet, M::State)> = HashSet::new();
    let mut calls: Vec<(usize, M::State)> = Vec::new();
    let mut deepest = Deepest {
        prefix: Vec::new(),
        state: state.clone(),
        stuck: None,
    };
    let mut on_deepest = true;
    let mut entry = events.first();
    let mut steps = 0;
    loop {
        if steps >= budget {
            return (Search::OutOfBudget, steps);
        }
        steps += 1;
        let call = (entry != NIL && events.completion[entry].is_some()).then_some(entry);
        if let Some(call) = call {
            let id = events.op[call];
            // Lowe's memo: a (linearized set, state) pair already explored cannot succeed now.
            let twin_waiting = twins[id].is_some_and(|twin| !linearized.contains(twin));
            let legal = (!twin_waiting)
                .then(|| model.step(&state, ops[id]))
                .flatten();
            let fresh = legal.filter(|next| seen.insert((linearized.with(id), next.clone())));
            if let Some(next) = fresh {
                linearized = linearized.with(id);
                calls.push((call, std::mem::replace(&mut state, next)));
                events.lift(call);
                if !ops[id].is_info() {
                    remaining -= 1;
                    if remaining == 0 {
                        return (Search::Linearizable, steps);
                    }
                }
                if calls.len() > deepest.prefix.len() {
                    deepest.prefix = calls.iter().map(|&(call, _)| events.op[call]).collect();
                    deepest.state = state.clone();
                    deepest.stuck = None;
                    on_deepest = true;
                }
                entry = events.first();
            } else {
                entry = events.next[call];
            }
            continue;
        }
        // A completion (or the list's end): that op was not linearized before it returned, so
        // undo the latest choice and try the next candidate after it.
        if on_deepest && deepest.stuck.is_none() && entry != NIL {
            deepest.stuck = Some(events.op[entry]);
        }
        let Some((call, previous)) = calls.pop() else {
            return (Search::Stuck(deepest), steps);
        };
        on_deepest = false;
        let id = events.op[call];
        linearized.without(id);
        state = previous;
        if !ops[id].is_info() {
            remaining += 1;
        }
        events.unlift(call);
        entry = events.next[call];
    }
}

/// Drops reads and indeterminate ops one at a time while what is left stays non-linearizable.
/// (Dropping an acknowledged write could fail the rest for another reason, such as a revoke of
/// a token never issued, which would explain nothing.)
fn shrink<'a, M: Model>(model: &M, mut kept: Vec<&'a Op>, budget: u64) -> Vec<&'a Op> {
    let mut spent = 0;
    let mut position = kept.len();
    while position > 0 && spent < budget {
        position -= 1;
        if !(model.is_read_only(kept[position]) || kept[position].is_info()) {
            continue;
        }
        let mut candidate = kept.clone();
        candidate.remove(position);
        let (result, steps) = search(model, &candidate, budget - spent);
        spent += steps;
        if matches!(result, Search::Stuck(_)) {
            kept = candidate;
        }
    }
    kept
}

fn counterexample<S: fmt::Debug>(
    key: &str,
    ops: &[&Op],
    deepest: &Deepest<S>,
    minimal: &[&Op],
) -> Counterexample {
    let longest_prefix: Vec<usize> = deepest.prefix.iter().map(|&id| ops[id].index).collect();
    let stuck = deepest.stuck.map(|id| ops[id].index);
    let state_after_prefix = format!("{:?}", deepest.state);
    let mut description = format!(
        "key {key}: not linearizable ({} ops). These {} alone cannot be linearized:\n",
        ops.len(),
        minimal.len()
    );
    for op in minimal {
        description.push_str(&format!("  {op}\n"));
    }
    let prefix: Vec<String> = longest_prefix
        .iter()
        .map(|index| format!("#{index}"))
        .collect();
    description.push_str(&format!(
        "Longest linearizable prefix ({} ops): [{}] reaching {state_after_prefix}",
        prefix.len(),
        prefix.join(", ")
    ));
    if let Some(stuck) = stuck {
        description.push_str(&format!(
            "; then #{stuck} completed with no legal instant to take effect"
        ));
    }
    Counterexample {
        key: key.to_owned(),
        longest_prefix,
        state_after_prefix,
        stuck,
        minimal: minimal.iter().map(|op| op.index).collect(),
        description,
    }
}

/// One token's lifecycle, keyed by jti.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TokenState {
    /// Not issued yet.
    #[default]
    Absent,
    Active,
    Revoked,
}

/// The model of W2: issue, revoke and LINEARIZABLE verify of one jti. Verifies at weaker
/// consistency may be stale by design and are not judged.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenModel;

impl Model for TokenModel {
    type State = TokenState;

    fn init(&self) -> TokenState {
        TokenState::Absent
    }

    fn relevant(&self, op: &Op) -> bool {
        match &op.f {
            // An issue whose reply was lost has no jti (its key is empty): nobody can name it.
            OpF::Issue { .. } => !op.key.is_empty(),
            OpF::Verify { consistency, .. } => *consistency == Consistency::Linearizable,
            OpF::Revoke { .. } => true,
            _ => false,
        }
    }

    fn is_read_only(&self, op: &Op) -> bool {
        matches!(op.f, OpF::Verify { .. })
    }

    fn step(&self, state: &TokenState, op: &Op) -> Option<TokenState> {
        match (&op.f, state) {
            // jtis are unique: a second issue of one would be a bug, never legal.
            (OpF::Issue { .. }, TokenState::Absent) => Some(TokenState::Active),
            // Revoking is idempotent; a token nobody was issued cannot be revoked.
            (OpF::Revoke { .. }, TokenState::Active | TokenState::Revoked) => {
                Some(TokenState::Revoked)
            }
            (OpF::Verify { .. }, _) => verify_step(*state, &op.outcome),
            _ => None,
        }
    }
}

/// A verify is legal if what it saw is the state: Active sees Active, Revoked sees Revoked, and
/// any other invalidity (unknown token before the issue, expired...) is legal anywhere.
fn verify_step(state: TokenState, outcome: &Outcome) -> Option<TokenState> {
    let Outcome::Ok(Value::Verified { result }) = outcome else {
        // A verify with no verdict (Info) constrains nothing; an acknowledged verify with some
        // other value is a malformed record and fits no state.
        return matches!(outcome, Outcome::Info { .. }).then_some(state);
    };
    let legal = match result {
        VerifyResult::Active => state == TokenState::Active,
        VerifyResult::Revoked => state == TokenState::Revoked,
        VerifyResult::OtherInvalid(_) => true,
    };
    legal.then_some(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const J: &str = "j1";

    fn op(f: OpF, invoke_ns: u64, complete_ns: u64, outcome: Outcome) -> Op {
        Op {
            index: 0,
            process: 0,
            node: 1,
            key: f.key().to_owned(),
            f,
            invoke_ns,
            complete_ns,
            outcome,
        }
    }

    fn issue(jti: &str, from: u64, to: u64) -> Op {
        let mut issued = op(
            OpF::Issue { agent: "a".into() },
            from,
            to,
            Outcome::Ok(Value::Issued { jti: jti.into() }),
        );
        issued.key = jti.into();
        issued
    }

    fn revoke(from: u64, to: u64) -> Op {
        op(
            OpF::Revoke { jti: J.into() },
            from,
            to,
            Outcome::Ok(Value::Ack),
        )
    }

    fn revoke_info(from: u64, to: u64) -> Op {
        let outcome = Outcome::Info {
            code: "DEADLINE_EXCEEDED".into(),
            reason: "deadline".into(),
        };
        op(OpF::Revoke { jti: J.into() }, from, to, outcome)
    }

    fn revoke_fail(from: u64, to: u64) -> Op {
        let outcome = Outcome::Fail {
            code: "UNAVAILABLE".into(),
            reason: "NOT_LEADER".into(),
        };
        op(OpF::Revoke { jti: J.into() }, from, to, outcome)
    }

    fn read(jti: &str, consistency: Consistency, from: u64, to: u64, result: VerifyResult) -> Op {
        let f = OpF::Verify {
            jti: jti.into(),
            consistency,
        };
        op(f, from, to, Outcome::Ok(Value::Verified { result }))
    }

    fn verify(from: u64, to: u64, result: VerifyResult) -> Op {
        read(J, Consistency::Linearizable, from, to, result)
    }

    fn history(mut ops: Vec<Op>) -> History {
        for (index, op) in ops.iter_mut().enumerate() {
            op.index = index;
            op.process = u32::try_from(index).expect("small test histories");
        }
        History::from_ops(ops).expect("well-formed test history")
    }

    use VerifyResult::{Active, OtherInvalid, Revoked};

    fn unknown_token() -> VerifyResult {
        OtherInvalid("UNKNOWN_TOKEN".into())
    }

    /// (name, ops, linearizable)
    fn cases() -> Vec<(&'static str, Vec<Op>, bool)> {
        vec![
            ("empty", vec![], true),
            (
                "sequential lifecycle",
                vec![
                    issue(J, 0, 10),
                    verify(20, 30, Active),
                    revoke(40, 50),
                    verify(60, 70, Revoked),
                ],
                true,
            ),
            (
                "stale read after revoke ack",
                vec![issue(J, 0, 10), revoke(20, 30), verify(40, 50, Active)],
                false,
            ),
            (
                "Active after a Revoked read, no new issue",
                vec![
                    issue(J, 0, 10),
                    revoke(20, 100),
                    verify(30, 40, Revoked),
                    verify(50, 60, Active),
                ],
                false,
            ),
            (
                "Revoked before any revoke was invoked",
                vec![issue(J, 0, 10), verify(20, 30, Revoked), revoke(40, 50)],
                false,
            ),
            (
                "verify concurrent with revoke sees Active",
                vec![issue(J, 0, 10), revoke(20, 40), verify(25, 35, Active)],
                true,
            ),
            (
                "verify concurrent with revoke sees Revoked",
                vec![issue(J, 0, 10), revoke(20, 40), verify(25, 35, Revoked)],
                true,
            ),
            (
                "two concurrent verifies on either side of a revoke",
                vec![
                    issue(J, 0, 10),
                    revoke(20, 60),
                    verify(25, 50, Revoked),
                    verify(30, 55, Active),
                ],
                true,
            ),
            (
                "indeterminate revoke that never happened",
                vec![issue(J, 0, 10), revoke_info(20, 30), verify(40, 50, Active)],
                true,
            ),
            (
                "indeterminate revoke that happened",
                vec![
                    issue(J, 0, 10),
                    revoke_info(20, 30),
                    verify(40, 50, Revoked),
                ],
                true,
            ),
            (
                "indeterminate revoke that happened late",
                vec![
                    issue(J, 0, 10),
                    revoke_info(20, 30),
                    verify(40, 50, Active),
                    verify(60, 70, Revoked),
                ],
                true,
            ),
            (
                "indeterminate revoke cannot undo itself",
                vec![
                    issue(J, 0, 10),
                    revoke_info(20, 30),
                    verify(40, 50, Revoked),
                    verify(60, 70, Active),
                ],
                false,
            ),
            (
                "indeterminate revoke cannot take effect before its invocation",
                vec![
                    issue(J, 0, 10),
                    verify(15, 18, Revoked),
                    revoke_info(20, 30),
                ],
                false,
            ),
            (
                "failed revoke did not happen",
                vec![
                    issue(J, 0, 10),
                    revoke_fail(20, 30),
                    verify(40, 50, Revoked),
                ],
                false,
            ),
            (
                "failed revoke leaves the token active",
                vec![issue(J, 0, 10), revoke_fail(20, 30), verify(40, 50, Active)],
                true,
            ),
            (
                "Active verify concurrent with the issue",
                vec![verify(5, 15, Active), issue(J, 0, 10)],
                true,
            ),
            (
                "Active verify before the issue was invoked",
                vec![verify(0, 4, Active), issue(J, 5, 10)],
                false,
            ),
            (
                "unknown token before the issue, other invalidity anywhere",
                vec![
                    verify(0, 4, unknown_token()),
                    issue(J, 5, 10),
                    verify(20, 30, OtherInvalid("EXPIRED".into())),
                    revoke(40, 50),
                    verify(60, 70, unknown_token()),
                ],
                true,
            ),
            (
                "stale LOCAL read is not judged",
                vec![
                    issue(J, 0, 10),
                    revoke(20, 30),
                    read(J, Consistency::Local, 40, 50, Active),
                ],
                true,
            ),
            (
                "indeterminate verify constrains nothing",
                vec![
                    issue(J, 0, 10),
                    revoke(20, 30),
                    op(
                        OpF::Verify {
                            jti: J.into(),
                            consistency: Consistency::Linearizable,
                        },
                        40,
                        50,
                        Outcome::Info {
                            code: "unreachable".into(),
                            reason: "reset".into(),
                        },
                    ),
                ],
                true,
            ),
            (
                "ops touching in time are concurrent",
                vec![issue(J, 0, 10), revoke(20, 30), verify(30, 40, Active)],
                true,
            ),
            (
                "repeated revokes are idempotent",
                vec![
                    issue(J, 0, 10),
                    revoke(20, 30),
                    revoke(25, 35),
                    verify(40, 50, Revoked),
                ],
                true,
            ),
            (
                "a jti issued twice",
                vec![issue(J, 0, 10), issue(J, 20, 30)],
                false,
            ),
            (
                "other keys are independent",
                vec![
                    issue(J, 0, 10),
                    issue("j2", 0, 10),
                    revoke(20, 30),
                    read("j2", Consistency::Linearizable, 40, 50, Active),
                    verify(40, 50, Revoked),
                ],
                true,
            ),
        ]
    }

    #[test]
    fn table_of_known_histories() {
        for (name, ops, expected) in cases() {
            let report = check_history(&TokenModel, &history(ops), &Limits::default());
            assert!(report.unknown.is_empty(), "{name}: {:?}", report.unknown);
            assert_eq!(report.is_linearizable(), expected, "{name}: {report:?}");
        }
    }

    #[test]
    fn counterexample_names_the_key_and_the_ops_involved() {
        let ops = vec![
            issue(J, 0, 10),
            verify(12, 14, Active),
            verify(15, 18, Active),
            revoke(20, 30),
            verify(40, 50, Revoked),
            verify(60, 70, Active),
            verify(80, 90, Revoked),
            issue("fine", 0, 10),
        ];
        let report = check_history(&TokenModel, &history(ops), &Limits::default());
        assert_eq!(report.keys_checked, 2);
        assert_eq!(report.not_linearizable.len(), 1);
        let found = &report.not_linearizable[0];
        assert_eq!(found.key, J);
        // The issue, the revoke and the stale read explain it; the other reads are shrunk away.
        assert_eq!(found.minimal, vec![0, 3, 5]);
        assert_eq!(found.longest_prefix, vec![0, 1, 2, 3, 4]);
        assert_eq!(found.state_after_prefix, "Revoked");
        assert_eq!(found.stuck, Some(5));
        assert!(found.description.contains("#5 "), "{}", found.description);
        assert!(
            found.description.contains("key j1"),
            "{}",
            found.description
        );
    }

    #[test]
    fn budget_and_size_limits_are_unknown_not_failures() {
        let ops = vec![issue(J, 0, 10), revoke(20, 30), verify(40, 50, Active)];
        let tight = Limits {
            step_budget: 2,
            ..Limits::default()
        };
        let report = check_history(&TokenModel, &history(ops.clone()), &tight);
        assert!(report.not_linearizable.is_empty());
        assert_eq!(
            report.unknown,
            vec![(J.to_owned(), Unknown::BudgetExhausted { steps: 2 })]
        );
        assert!(report.unknown[0].1.to_string().contains("budget exhausted"));

        let small = Limits {
            max_ops_per_key: 2,
            ..Limits::default()
        };
        let report = check_history(&TokenModel, &history(ops), &small);
        assert_eq!(
            report.unknown,
            vec![(J.to_owned(), Unknown::TooManyOps { ops: 3, limit: 2 })]
        );
    }

    #[test]
    fn many_concurrent_indeterminate_revokes_stay_within_budget() {
        const REVOKES: u64 = 40;
        let mut ops = vec![issue(J, 0, 10)];
        ops.extend((0..REVOKES).map(|n| revoke_info(20 + n, 25 + n)));
        ops.extend((0..REVOKES).map(|n| verify(100 + 10 * n, 105 + 10 * n, Active)));
        ops.push(verify(1000, 1010, Revoked));
        let report = check_history(&TokenModel, &history(ops), &Limits::default());
        assert!(report.is_linearizable(), "{report:?}");
    }

    /// What a client does next in a generated sequential run.
    #[derive(Clone, Copy, Debug)]
    enum Act {
        Verify,
        VerifyOther,
        Revoke,
        /// An indeterminate revoke, and whether it took effect.
        RevokeInfo(bool),
    }

    fn act() -> impl Strategy<Value = Act> {
        prop_oneof![
            4 => Just(Act::Verify),
            1 => Just(Act::VerifyOther),
            1 => Just(Act::Revoke),
            1 => any::<bool>().prop_map(Act::RevokeInfo),
        ]
    }

    /// A sequential run of the token model: each op in its own interval, in order.
    fn sequential_run(acts: &[Act], gaps: &[(u64, u64)]) -> Vec<Op> {
        let mut state = TokenState::Active;
        let mut ops = vec![issue(J, 0, 10)];
        let mut now = 10;
        for (act, &(gap, length)) in acts.iter().zip(gaps.iter().cycle()) {
            let from = now + 1 + gap;
            now = from + length;
            ops.push(match act {
                Act::Verify if state == TokenState::Active => verify(from, now, Active),
                Act::Verify => verify(from, now, Revoked),
                Act::VerifyOther => verify(from, now, OtherInvalid("EXPIRED".into())),
                Act::Revoke => revoke(from, now),
                Act::RevokeInfo(_) => revoke_info(from, now),
            });
            if matches!(act, Act::Revoke | Act::RevokeInfo(true)) {
                state = TokenState::Revoked;
            }
        }
        ops
    }

    fn flipped(result: &VerifyResult) -> Option<VerifyResult> {
        match result {
            Active => Some(Revoked),
            Revoked => Some(Active),
            OtherInvalid(_) => None,
        }
    }

    proptest! {
        #[test]
        fn sequential_runs_are_linearizable(
            acts in prop::collection::vec(act(), 0..40),
            gaps in prop::collection::vec((0u64..5, 0u64..5), 1..8),
        ) {
            let report = check_history(&TokenModel, &history(sequential_run(&acts, &gaps)), &Limits::default());
            prop_assert!(report.is_linearizable(), "{:?}", report);
        }

        /// Flipping an Active/Revoked read that no indeterminate op could explain (it comes
        /// before any) changes what the run means, and must be rejected.
        #[test]
        fn a_flipped_read_is_rejected(
            acts in prop::collection::vec(act(), 1..40),
            gaps in prop::collection::vec((0u64..5, 0u64..5), 1..8),
            choice in any::<prop::sample::Index>(),
        ) {
            let mut ops = sequential_run(&acts, &gaps);
            let first_info = ops.iter().position(Op::is_info).unwrap_or(ops.len());
            let flippable: Vec<usize> = (0..first_info)
                .filter(|&i| matches!(&ops[i].outcome, Outcome::Ok(Value::Verified { result }) if flipped(result).is_some()))
                .collect();
            prop_assume!(!flippable.is_empty());
            let target = flippable[choice.index(flippable.len())];
            if let Outcome::Ok(Value::Verified { result }) = &mut ops[target].outcome {
                *result = flipped(result).expect("chosen among flippable reads");
            }
            let report = check_history(&TokenModel, &history(ops), &Limits::default());
            prop_assert_eq!(report.not_linearizable.len(), 1, "{:?}", report);
        }

        /// Ops spread around real linearization points, overlapping freely, are accepted.
        #[test]
        fn concurrent_runs_around_real_instants_are_linearizable(
            acts in prop::collection::vec((act(), 0u64..60, 0u64..60), 0..30),
        ) {
            let mut state = TokenState::Active;
            let mut ops = vec![issue(J, 0, 10)];
            for (n, &(act, before, after)) in acts.iter().enumerate() {
                let instant = 100 * (n as u64 + 1);
                let (from, to) = (instant - before, instant + after);
                let took_effect = matches!(act, Act::Revoke | Act::RevokeInfo(true));
                ops.push(match act {
                    Act::Verify if state == TokenState::Active => verify(from, to, Active),
                    Act::Verify => verify(from, to, Revoked),
                    Act::VerifyOther => verify(from, to, OtherInvalid("EXPIRED".into())),
                    Act::Revoke => revoke(from, to),
                    Act::RevokeInfo(_) => revoke_info(from, to),
                });
                if took_effect {
                    state = TokenState::Revoked;
                }
            }
            let report = check_history(&TokenModel, &history(ops), &Limits::default());
            prop_assert!(report.is_linearizable(), "{:?}", report);
        }
    }
}
