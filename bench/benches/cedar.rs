//! What a policy decision costs: one Cedar evaluation (entities, context and the authorizer)
//! against sets of 10, 100 and 1,000 published policies plus the built-in permit, as apply and
//! the ASYNC edge run it per tool call. Also what the cache saves: compiling a stored version
//! (a miss), and validating a text (publish, at the edge and again in apply).

use divan::Bencher;
use warrant_identity::policy::{
    self, CompiledPolicy, PolicyAction, PolicyPrincipal, PolicyRequest,
};
use warrant_proto::{
    log::{self, CallerAttribute, PolicyAttribute, PolicyAttributeType, caller_attribute::Value},
    state::{AgentRow, DelegationRow, HumanRow, ServiceRow},
};

fn main() {
    divan::main();
}

/// 0 is the anchor: the built-in alone, the fixed cost of building the entities and the request.
const SIZES: [usize; 4] = [0, 10, 100, 1000];

/// `n` forbids, each about its own tool and an amount, none of which matches the request: every
/// one is evaluated, the worst case for a set that allows.
fn policies(n: usize) -> String {
    (0..n)
        .map(|idx| {
            format!(
                "@id(\"rule-{idx}\")\nforbid(principal, action == Action::\"call\", resource)\n\
                 when {{ resource == Tool::\"fx-mcp/tool-{idx}\" || (context.attributes has \
                 amount && context.attributes.amount > {}) }};\n",
                1_000_000 + idx
            )
        })
        .collect()
}

fn attributes() -> Vec<PolicyAttribute> {
    vec![PolicyAttribute {
        name: "amount".to_owned(),
        r#type: PolicyAttributeType::Long as i32,
    }]
}

struct Rows {
    alice: HumanRow,
    bot: AgentRow,
    fx: ServiceRow,
    delegation: DelegationRow,
    scopes: Vec<String>,
    attributes: Vec<CallerAttribute>,
}

fn rows() -> Rows {
    Rows {
        alice: HumanRow {
            human_id: "alice".to_owned(),
            email: "alice@example.com".to_owned(),
            ..HumanRow::default()
        },
        bot: AgentRow {
            agent_id: "assistant".to_owned(),
            owner_human_id: "alice".to_owned(),
            kind: "assistant".to_owned(),
            ..AgentRow::default()
        },
        fx: ServiceRow {
            service_id: "fx-mcp".to_owned(),
            audience: "https://fx.example/mcp".to_owned(),
            ..ServiceRow::default()
        },
        delegation: DelegationRow {
            created: Some(log::DelegationCreated {
                delegation_id: "d1".to_owned(),
                depth: 1,
                task: "convert invoices".to_owned(),
                agent_chain: vec!["assistant".to_owned()],
                ..log::DelegationCreated::default()
            }),
            ..DelegationRow::default()
        },
        scopes: vec!["convert".to_owned(), "transfer".to_owned()],
        attributes: vec![CallerAttribute {
            name: "amount".to_owned(),
            value: Some(Value::LongValue(50)),
        }],
    }
}

fn request(rows: &Rows) -> PolicyRequest<'_> {
    PolicyRequest {
        action: PolicyAction::Call,
        principal: PolicyPrincipal::Agent(&rows.bot),
        on_behalf_of: Some(&rows.alice),
        agent_chain: std::slice::from_ref(&rows.bot),
        delegation: Some(&rows.delegation),
        service: &rows.fx,
        tool: "convert",
        task: "convert invoices",
        scopes: &rows.scopes,
        time_unix_s: 1_700_000_000,
        attributes: &rows.attributes,
        grantee: None,
    }
}

/// One decision against a compiled set of `n` policies.
#[divan::bench(args = SIZES)]
fn evaluate(bencher: Bencher, n: usize) {
    let text = policies(n);
    let compiled = CompiledPolicy::compile(&text, &attributes());
    let rows = rows();
    let request = request(&rows);
    assert!(
        compiled.evaluate(&request).allowed,
        "the bench request is allowed"
    );
    bencher.bench(|| divan::black_box(&compiled).evaluate(divan::black_box(&request)));
}

/// Compiling a stored version of `n` policies: what a cache miss costs.
#[divan::bench(args = SIZES, sample_count = 20)]
fn compile(bencher: Bencher, n: usize) {
    let text = policies(n);
    let attributes = attributes();
    bencher.bench(|| CompiledPolicy::compile(divan::black_box(&text), &attributes));
}

/// Validating a text of `n` policies strictly against the schema (PublishPolicy).
#[divan::bench(args = SIZES, sample_count = 20)]
fn validate(bencher: Bencher, n: usize) {
    let text = policies(n);
    let attributes = attributes();
    bencher.bench(|| policy::validate(divan::black_box(&text), &attributes).expect("valid"));
}
