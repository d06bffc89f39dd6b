//! Size limits and field validation rules, shared by `apply` and the API layer.
//!
//! The API layer validates requests with these helpers so that bad input gets a precise error
//! before it is proposed; `apply` runs the same checks again because the log is an input too: a
//! replica must reach the same verdict on every entry ever committed, whoever proposed it.
//!
//! Lengths are in UTF-8 bytes, because bytes are what the rows and the log store.

/// Longest id in bytes: human, agent, service, credential and tool ids (tool names are scopes).
pub const ID_LEN_MAX: usize = 64;
/// Longest idempotency key in bytes.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;
/// Longest human display name in bytes.
pub const DISPLAY_NAME_LEN_MAX: usize = 256;
/// Longest email address in bytes (RFC 5321's path limit).
pub const EMAIL_LEN_MAX: usize = 254;
/// Longest agent or tool description in bytes.
pub const DESCRIPTION_LEN_MAX: usize = 1024;
/// Longest agent kind in bytes.
pub const AGENT_KIND_LEN_MAX: usize = 64;
/// Longest service audience in bytes.
pub const AUDIENCE_LEN_MAX: usize = 256;
/// Most tools one service may declare.
pub const TOOLS_PER_SERVICE_MAX: usize = 256;
/// Most scopes one token may carry.
pub const SCOPES_PER_TOKEN_MAX: usize = 64;
/// Most credentials one agent may hold.
pub const CREDENTIALS_PER_AGENT_MAX: usize = 8;
/// Longest argon2id PHC string in bytes.
pub const PHC_HASH_LEN_MAX: usize = 512;
/// Longest token id (`jti`) in bytes.
pub const JTI_LEN_MAX: usize = 64;
/// Longest signing key id in bytes.
pub const KEY_ID_LEN_MAX: usize = 128;
/// Longest revocation reason in bytes.
pub const REASON_LEN_MAX: usize = 512;
/// Longest token lifetime.
pub const TOKEN_TTL_SECONDS_MAX: u32 = 86_400;
/// Most commands `apply` decides in one batch; the rest are rejected.
pub const COMMANDS_PER_BATCH_MAX: usize = 4096;
/// Most events one `query::events` page returns.
pub const EVENTS_PAGE_MAX: usize = 1000;
/// Most rows one list page returns.
pub const LIST_PAGE_MAX: usize = 500;
/// Most items each list of an effective-access answer holds (delegations, each principal's
/// sessions, devices); the answer says when one was cut.
pub const EFFECTIVE_ACCESS_ITEMS_MAX: usize = 256;
/// Most delegations held by one agent an effective-access answer examines for the human asked
/// about: past them the answer is marked truncated rather than reading without bound.
pub const EFFECTIVE_ACCESS_DELEGATIONS_SCANNED_MAX: usize = 4096;
/// Longest actor id in bytes. Actors are named by the API layer (admins, nodes and principals),
/// so this is looser than [`ID_LEN_MAX`]; it bounds the idempotency keys and events they appear in.
pub const ACTOR_ID_LEN_MAX: usize = 256;
/// Longest on-behalf-of chain an actor may carry.
pub const ON_BEHALF_OF_MAX: usize = 16;
/// Exact length of a command's request digest (SHA-256).
pub const REQUEST_DIGEST_LEN: usize = 32;
/// Exact length of an Ed25519 public key.
pub const ED25519_PUBLIC_KEY_LEN: usize = 32;
/// The prefix every argon2id PHC string starts with.
pub const ARGON2ID_PHC_PREFIX: &str = "$argon2id$";
/// Longest chain of agents below a human: H→A→B is depth 2. Bounds the `act` nesting in a
/// token and the links verify walks.
pub const DELEGATION_DEPTH_MAX: u32 = 8;
/// Most audiences one delegation may cover.
pub const AUDIENCES_PER_DELEGATION_MAX: usize = 16;
/// Longest delegation task description in bytes.
pub const TASK_LEN_MAX: usize = 1024;
/// Longest delegation lifetime, counted from when it is committed.
pub const DELEGATION_TTL_SECONDS_MAX: u64 = 30 * 86_400;
/// Longest session lifetime.
pub const SESSION_TTL_SECONDS_MAX: u32 = 7 * 86_400;
/// Longest upstream issuer URL in bytes.
pub const ISSUER_LEN_MAX: usize = 256;
/// Longest upstream subject in bytes (OpenID Connect Core §2: at most 255 ASCII characters).
pub const FEDERATED_SUBJECT_LEN_MAX: usize = 255;
/// How long after its `exp` a spent client assertion is remembered. Apply refuses assertions
/// older than this (it could no longer tell a replay), so a replay is caught by the edge's clock
/// check or by apply's, as long as the leader's clock is within this of the API node's.
pub const ASSERTION_RETENTION_S: u64 = 3600;
/// Most spent assertions one batch forgets, so pruning never makes a batch slow.
pub const ASSERTIONS_PRUNED_PER_BATCH_MAX: usize = 64;
/// Longest client assertion `jti` in bytes.
pub const ASSERTION_JTI_LEN_MAX: usize = 128;
/// Longest device name in bytes.
pub const DEVICE_NAME_LEN_MAX: usize = 128;
/// Longest device platform in bytes.
pub const PLATFORM_LEN_MAX: usize = 64;
/// Most credentials one `ChangeCredentials` may add or remove.
pub const CREDENTIAL_CHANGES_MAX: usize = CREDENTIALS_PER_AGENT_MAX;
/// Most humans one `RegisterHumans` may register. One import then adds at most as many events
/// as a full proposer entry of single registrations does (1024 commands), so one command never
/// makes an entry's apply much longer than today's largest. The request's byte limit (64 KiB at
/// the API) is the other bound, and the smaller one for larger records: 1000 records of an id,
/// a name and an email (about 60 bytes each) fit, federated ones (about 120 bytes) fit about
/// 500 to a request. The command is no larger than the request (an import carries no password
/// hashes), so its entry stays far below the peer message limit (64 MiB).
pub const HUMANS_PER_IMPORT_MAX: usize = 1000;

// Access decisions (Authorize, receipts, auth failures, budgets).

/// Most ASYNC receipts one `RecordAccessDecisions` carries. A receipt is about 1 KiB at most
/// with full chains and policy ids, so a full command stays near 256 KiB, well inside an entry.
pub const RECEIPTS_PER_RECORD_MAX: usize = 256;
/// Most aggregate entries one `RecordAuthFailures` carries: each becomes one event, so
/// unauthenticated traffic adds at most this many events per flush per node.
pub const AUTH_FAILURES_PER_RECORD_MAX: usize = 64;
/// The longest stable reason code of an auth-failure entry.
pub const AUTH_FAILURE_REASON_LEN_MAX: usize = 64;
/// The largest call budget (total or per tool): far past any real budget, and small enough that
/// spending one unit per event can never overflow a u64.
pub const BUDGET_UNITS_MAX: u64 = 1_000_000_000;
/// The longest human-readable message of an ASYNC receipt or an invalid token.
pub const ACCESS_MESSAGE_LEN_MAX: usize = 1024;

// Relationships between the limits, checked at compile time. Agent kinds share the id charset and
// must fit wherever an id fits; a batch position must fit the event's u32 field.
const _: () = assert!(AGENT_KIND_LEN_MAX <= ID_LEN_MAX);
const _: () = assert!(ID_LEN_MAX <= ACTOR_ID_LEN_MAX);
const _: () = assert!(SCOPES_PER_TOKEN_MAX <= TOOLS_PER_SERVICE_MAX);
const _: () = assert!(COMMANDS_PER_BATCH_MAX <= u32::MAX as usize);

/// A field that breaks a rule: which field, what was wrong, and what is allowed.
///
/// Its `Display` form is meant for humans and goes into rejection messages verbatim.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}; allowed: {allowed}")]
pub struct FieldError {
    /// Which kind of rule it broke: the API turns this into its reason code.
    pub kind: FieldProblem,
    /// The field's name as the request spells it, e.g. `credentials[2].credential_id`.
    pub field: String,
    /// What was wrong, e.g. `is empty`.
    pub problem: String,
    /// What the rule allows, e.g. `1 to 64 bytes`.
    pub allowed: String,
}

/// The kinds of field rule, each with its own reason code at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldProblem {
    /// A required value is empty (`FIELD_REQUIRED`).
    Empty,
    /// A value is longer than its limit (`FIELD_TOO_LONG`).
    TooLong,
    /// Any other rule: charset, shape, range, uniqueness (`FIELD_INVALID`).
    Invalid,
}

impl FieldError {
    /// A field that breaks a rule other than emptiness or length, from its three parts.
    pub fn new(
        field: impl Into<String>,
        problem: impl Into<String>,
        allowed: impl Into<String>,
    ) -> Self {
        Self {
            kind: FieldProblem::Invalid,
            field: field.into(),
            problem: problem.into(),
            allowed: allowed.into(),
        }
    }

    /// The same error for a field inside `parent`, e.g. `email` inside `humans[3]` becomes
    /// `humans[3].email`: how a list's rule names the item that broke a rule for one item.
    pub fn within(self, parent: &str) -> Self {
        Self {
            field: format!("{parent}.{}", self.field),
            ..self
        }
    }

    fn of_kind(kind: FieldProblem, field: &str, problem: String, allowed: String) -> Self {
        Self {
            kind,
            ..Self::new(field, problem, allowed)
        }
    }
}

/// Checks an id: 1 to [`ID_LEN_MAX`] ASCII letters, digits, `.`, `_` or `-`, starting with a
/// letter or digit. Used for human, agent, service, credential and tool ids.
pub fn validate_id(field: &str, value: &str) -> Result<(), FieldError> {
    validate_name(field, value, ID_LEN_MAX)
}

/// Checks a name with the id charset and a custom length limit (e.g. an agent kind, up to
/// [`AGENT_KIND_LEN_MAX`]).
pub fn validate_name(field: &str, value: &str, len_max: usize) -> Result<(), FieldError> {
    let allowed = || {
        format!(
            "1 to {len_max} ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    };
    check_len(field, value, 1, len_max, allowed)?;
    if let Some(first) = value.chars().next()
        && !first.is_ascii_alphanumeric()
    {
        return Err(FieldError::new(
            field,
            format!("starts with {}", describe_char(first)),
            allowed(),
        ));
    }
    check_chars(field, value, is_name_char, allowed)
}

/// The longest operator id: one DNS label, as the operator's certificate names it.
pub const OPERATOR_ID_LEN_MAX: usize = 63;

/// Checks an operator id: a DNS label (1 to [`OPERATOR_ID_LEN_MAX`] lowercase ASCII letters,
/// digits or `-`, starting and ending with a letter or digit), because a client certificate
/// names the operator as `<operator_id>.operator.warrant.internal`.
pub fn validate_operator_id(field: &str, value: &str) -> Result<(), FieldError> {
    let allowed = || {
        format!(
            "1 to {OPERATOR_ID_LEN_MAX} lowercase ASCII letters, digits or '-', starting and \
             ending with a letter or digit"
        )
    };
    check_len(field, value, 1, OPERATOR_ID_LEN_MAX, allowed)?;
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !edge_ok(value.chars().next()) || !edge_ok(value.chars().last()) {
        return Err(FieldError::new(field, "starts or ends with '-'", allowed()));
    }
    check_chars(
        field,
        value,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
        allowed,
    )
}

/// Checks a token id (`jti`): 1 to [`JTI_LEN_MAX`] ASCII letters, digits, `.`, `_` or `-`.
///
/// Unlike an id it may start with any of those characters, because the API node generates jtis
/// as base64url, which can start with `-` or `_`.
pub fn validate_jti(field: &str, value: &str) -> Result<(), FieldError> {
    let allowed = || format!("1 to {JTI_LEN_MAX} ASCII letters, digits, '.', '_' or '-'");
    check_len(field, value, 1, JTI_LEN_MAX, allowed)?;
    check_chars(field, value, is_name_char, allowed)
}

/// Checks optional free text: up to `len_max` bytes of UTF-8 without control characters. Empty
/// text is allowed; see [`validate_required_text`] otherwise.
pub fn validate_text(field: &str, value: &str, len_max: usize) -> Result<(), FieldError> {
    let allowed = || format!("up to {len_max} bytes of text without control characters");
    check_len(field, value, 0, len_max, allowed)?;
    check_chars(field, value, |it| !it.is_control(), allowed)
}

/// Checks required free text: 1 to `len_max` bytes of UTF-8 without control characters.
pub fn validate_required_text(field: &str, value: &str, len_max: usize) -> Result<(), FieldError> {
    let allowed = || format!("1 to {len_max} bytes of text without control characters");
    check_len(field, value, 1, len_max, allowed)?;
    check_chars(field, value, |it| !it.is_control(), allowed)
}

/// Checks an idempotency key: 1 to [`IDEMPOTENCY_KEY_LEN_MAX`] printable ASCII characters
/// (`!` to `~`, no space).
pub fn validate_idempotency_key(field: &str, value: &str) -> Result<(), FieldError> {
    validate_printable_ascii(field, value, IDEMPOTENCY_KEY_LEN_MAX)
}

/// Checks a service audience (an RFC 8707 resource, usually a URI): 1 to [`AUDIENCE_LEN_MAX`]
/// printable ASCII characters without whitespace.
pub fn validate_audience(field: &str, value: &str) -> Result<(), FieldError> {
    validate_printable_ascii(field, value, AUDIENCE_LEN_MAX)
}

/// Checks a signing key id: 1 to [`KEY_ID_LEN_MAX`] printable ASCII characters without
/// whitespace (it becomes a JWK `kid`).
pub fn validate_key_id(field: &str, value: &str) -> Result<(), FieldError> {
    validate_printable_ascii(field, value, KEY_ID_LEN_MAX)
}

/// Checks an argon2id PHC string: printable ASCII, starting with [`ARGON2ID_PHC_PREFIX`], at most
/// [`PHC_HASH_LEN_MAX`] bytes. Only the shape is checked; apply never runs argon2.
pub fn validate_argon2id_phc(field: &str, value: &str) -> Result<(), FieldError> {
    let allowed = || {
        format!(
            "an argon2id PHC string starting with '{ARGON2ID_PHC_PREFIX}', up to \
             {PHC_HASH_LEN_MAX} printable ASCII characters"
        )
    };
    check_len(field, value, 1, PHC_HASH_LEN_MAX, allowed)?;
    check_chars(field, value, is_printable_ascii, allowed)?;
    if !value.starts_with(ARGON2ID_PHC_PREFIX) {
        return Err(FieldError::new(
            field,
            format!("does not start with '{ARGON2ID_PHC_PREFIX}'"),
            allowed(),
        ));
    }
    Ok(())
}

/// Checks an upstream OIDC issuer or subject, or a client assertion `jti`: 1 to `len_max`
/// printable ASCII characters without whitespace.
pub fn validate_opaque(field: &str, value: &str, len_max: usize) -> Result<(), FieldError> {
    validate_printable_ascii(field, value, len_max)
}

/// Checks an actor id: 1 to [`ACTOR_ID_LEN_MAX`] bytes of text without control characters.
pub fn validate_actor_id(field: &str, value: &str) -> Result<(), FieldError> {
    validate_required_text(field, value, ACTOR_ID_LEN_MAX)
}

fn validate_printable_ascii(field: &str, value: &str, len_max: usize) -> Result<(), FieldError> {
    let allowed = || format!("1 to {len_max} printable ASCII characters ('!' to '~', no spaces)");
    check_len(field, value, 1, len_max, allowed)?;
    check_chars(field, value, is_printable_ascii, allowed)
}

fn check_len(
    field: &str,
    value: &str,
    len_min: usize,
    len_max: usize,
    allowed: impl Fn() -> String,
) -> Result<(), FieldError> {
    let len = value.len();
    if len < len_min {
        return Err(FieldError::of_kind(
            FieldProblem::Empty,
            field,
            "is empty".to_owned(),
            allowed(),
        ));
    }
    if len_max < len {
        return Err(FieldError::of_kind(
            FieldProblem::TooLong,
            field,
            format!("is {len} bytes long"),
            allowed(),
        ));
    }
    Ok(())
}

fn check_chars(
    field: &str,
    value: &str,
    is_allowed: impl Fn(char) -> bool,
    allowed: impl Fn() -> String,
) -> Result<(), FieldError> {
    match value.char_indices().find(|(_, it)| !is_allowed(*it)) {
        // The offending character is escaped, never echoed raw: it may be a control character.
        Some((offset, it)) => Err(FieldError::new(
            field,
            format!("contains {} at byte {offset}", describe_char(it)),
            allowed(),
        )),
        None => Ok(()),
    }
}

fn is_name_char(it: char) -> bool {
    it.is_ascii_alphanumeric() || matches!(it, '.' | '_' | '-')
}

fn is_printable_ascii(it: char) -> bool {
    matches!(it, '!'..='~')
}

fn describe_char(it: char) -> String {
    format!("'{}'", it.escape_debug())
}

// Access policies (Cedar).

/// Largest policy text in bytes. Every version is kept in the log and in state, and compiling
/// one is linear in its size; 256 KiB holds a thousand policies of a few lines each.
pub const POLICY_TEXT_BYTES_MAX: usize = 256 * 1024;
/// Most policies one published text may define (the built-in `warrant.delegation` not counted):
/// evaluation is linear in the number of policies.
pub const POLICIES_PER_SET_MAX: usize = 1024;
/// Most caller attributes a published version may declare.
pub const POLICY_ATTRIBUTES_MAX: usize = 32;
/// Most caller attributes one Authorize may carry.
pub const CALLER_ATTRIBUTES_MAX: usize = 32;
/// Longest caller attribute name in bytes (a Cedar identifier: `[A-Za-z_][A-Za-z0-9_]*`).
pub const ATTRIBUTE_NAME_LEN_MAX: usize = 64;
/// Longest string value of a caller attribute in bytes.
pub const ATTRIBUTE_STRING_LEN_MAX: usize = 1024;
/// Longest description of a policy version in bytes.
pub const POLICY_DESCRIPTION_LEN_MAX: usize = 1024;
/// How many earlier active versions `RollbackPolicy` can step back through; older ones are
/// forgotten, so the activation row stays small.
pub const POLICY_ROLLBACK_DEPTH_MAX: usize = 64;
/// Most errors one refusal of a policy text lists: the first `POLICY_ERRORS_MAX - 1` in
/// position order, then one entry saying how many more there were. Bounds the outcome stored
/// under the idempotency key.
pub const POLICY_ERRORS_MAX: usize = 64;
/// Most policy versions one `query::list_policy_versions` page returns.
pub const POLICY_VERSIONS_PAGE_MAX: usize = 100;

const _: () = assert!(2 <= POLICY_ERRORS_MAX);
const _: () = assert!(CALLER_ATTRIBUTES_MAX <= POLICY_ATTRIBUTES_MAX);

/// Checks a caller attribute name: 1 to [`ATTRIBUTE_NAME_LEN_MAX`] bytes forming a Cedar
/// identifier (an ASCII letter or `_`, then ASCII letters, digits or `_`), so a policy can
/// read it as `context.attributes.<name>`.
pub fn validate_attribute_name(field: &str, value: &str) -> Result<(), FieldError> {
    let allowed = || {
        format!(
            "1 to {ATTRIBUTE_NAME_LEN_MAX} ASCII letters, digits or '_', starting with a letter \
             or '_'"
        )
    };
    check_len(field, value, 1, ATTRIBUTE_NAME_LEN_MAX, allowed)?;
    if let Some(first) = value.chars().next()
        && !(first.is_ascii_alphabetic() || first == '_')
    {
        return Err(FieldError::new(
            field,
            format!("starts with {}", describe_char(first)),
            allowed(),
        ));
    }
    check_chars(
        field,
        value,
        |it| it.is_ascii_alphanumeric() || it == '_',
        allowed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `validate` on `value` and compares the verdict with `expected`: `None` for valid,
    /// or the rendered error.
    fn check(
        validate: impl Fn(&str, &str) -> Result<(), FieldError>,
        value: &str,
        expected: Option<&str>,
    ) {
        let actual = validate("f", value).err().map(|it| it.to_string());
        assert_eq!(actual.as_deref(), expected, "value {value:?}");
    }

    const ID_RULE: &str =
        "1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit";

    #[test]
    fn ids() {
        let long = "a".repeat(ID_LEN_MAX + 1);
        let longest = "a".repeat(ID_LEN_MAX);
        let cases: &[(&str, Option<String>)] = &[
            ("alice", None),
            ("a", None),
            ("A0._-z", None),
            (&longest, None),
            ("", Some(format!("f is empty; allowed: {ID_RULE}"))),
            (
                &long,
                Some(format!("f is 65 bytes long; allowed: {ID_RULE}")),
            ),
            ("-a", Some(format!("f starts with '-'; allowed: {ID_RULE}"))),
            (".a", Some(format!("f starts with '.'; allowed: {ID_RULE}"))),
            (
                "a b",
                Some(format!("f contains ' ' at byte 1; allowed: {ID_RULE}")),
            ),
            (
                "a\0",
                Some(format!("f contains '\\0' at byte 1; allowed: {ID_RULE}")),
            ),
            (
                "ab/c",
                Some(format!("f contains '/' at byte 2; allowed: {ID_RULE}")),
            ),
            ("é", Some(format!("f starts with 'é'; allowed: {ID_RULE}"))),
            (
                "aé",
                Some(format!("f contains 'é' at byte 1; allowed: {ID_RULE}")),
            ),
        ];
        for (value, expected) in cases {
            check(validate_id, value, expected.as_deref());
        }
    }

    #[test]
    fn jtis() {
        check(validate_jti, "-_abc.9", None);
        check(validate_jti, &"j".repeat(JTI_LEN_MAX), None);
        check(
            validate_jti,
            "",
            Some("f is empty; allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-'"),
        );
        check(
            validate_jti,
            "a=",
            Some(
                "f contains '=' at byte 1; allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-'",
            ),
        );
    }

    #[test]
    fn text() {
        let rule = "up to 8 bytes of text without control characters";
        let optional = |field: &str, value: &str| validate_text(field, value, 8);
        check(optional, "", None);
        check(optional, "Zoë Ω", None);
        check(
            optional,
            "a\tb",
            Some(&format!("f contains '\\t' at byte 1; allowed: {rule}")),
        );
        check(
            optional,
            "\u{7f}",
            Some(&format!(
                "f contains '\\u{{7f}}' at byte 0; allowed: {rule}"
            )),
        );
        check(
            optional,
            "\u{85}",
            Some(&format!(
                "f contains '\\u{{85}}' at byte 0; allowed: {rule}"
            )),
        );
        // Eight characters but nine bytes: the limit is in bytes.
        check(
            optional,
            "ééééa",
            Some(&format!("f is 9 bytes long; allowed: {rule}")),
        );

        let required = |field: &str, value: &str| validate_required_text(field, value, 8);
        check(required, "x", None);
        check(
            required,
            "",
            Some("f is empty; allowed: 1 to 8 bytes of text without control characters"),
        );
    }

    #[test]
    fn printable_ascii() {
        let rule = "1 to 128 printable ASCII characters ('!' to '~', no spaces)";
        check(validate_idempotency_key, "!~azAZ09{}", None);
        check(
            validate_idempotency_key,
            &"k".repeat(IDEMPOTENCY_KEY_LEN_MAX),
            None,
        );
        check(
            validate_idempotency_key,
            "",
            Some(&format!("f is empty; allowed: {rule}")),
        );
        check(
            validate_idempotency_key,
            "a b",
            Some(&format!("f contains ' ' at byte 1; allowed: {rule}")),
        );
        check(
            validate_idempotency_key,
            &"k".repeat(IDEMPOTENCY_KEY_LEN_MAX + 1),
            Some(&format!("f is 129 bytes long; allowed: {rule}")),
        );
        check(validate_audience, "https://mcp.example.com/tools", None);
        check(
            validate_audience,
            "https://ex\u{e9}.com",
            Some(
                "f contains 'é' at byte 10; allowed: 1 to 256 printable ASCII characters \
                 ('!' to '~', no spaces)",
            ),
        );
        check(validate_key_id, "node-1/2024-01", None);
        check(
            validate_key_id,
            &"k".repeat(KEY_ID_LEN_MAX + 1),
            Some(
                "f is 129 bytes long; allowed: 1 to 128 printable ASCII characters ('!' to '~', no spaces)",
            ),
        );
    }

    #[test]
    fn argon2id_phc() {
        let rule = "an argon2id PHC string starting with '$argon2id$', up to 512 printable ASCII \
                    characters";
        check(
            validate_argon2id_phc,
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            None,
        );
        check(
            validate_argon2id_phc,
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            Some(&format!(
                "f does not start with '$argon2id$'; allowed: {rule}"
            )),
        );
        check(
            validate_argon2id_phc,
            "",
            Some(&format!("f is empty; allowed: {rule}")),
        );
        check(
            validate_argon2id_phc,
            &format!("$argon2id${}", "a".repeat(PHC_HASH_LEN_MAX)),
            Some(&format!("f is 522 bytes long; allowed: {rule}")),
        );
    }
}
