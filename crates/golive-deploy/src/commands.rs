//! The commands of a deployment after its first run: sign, decide, done,
//! gate, rollback, finish, and status. Each decides from the kept state
//! under the deployment's write lock and appends what it decided; the
//! caller prints the outcome.

use crate::lifecycle::{self, Gate, OpenItem, Tally, complete, states};
use crate::procedure::{self, Runner, StepRun};
use crate::time::seconds_between;
use crate::{At, Error, Kept, Listener, RefusalKind as K, Result, Source};
use golive_engine::roster::{Person, Roster};
use golive_runbook::{ItemKind, Runbook, StageKind, Target};
use golive_store::{NewEvent, Store, WriteLock};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A deployment opened for a command: its store, its row, and its runbook,
/// checked unchanged since the deployment started.
pub struct Deployment {
    pub store: Store,
    pub row: golive_store::Deployment,
    pub rb: Runbook,
    /// The people who may act, when the caller has them (a server's
    /// people); otherwise each command reads the roster file it is given,
    /// the one beside the runbook, or the document's Contact Information.
    pub people: Option<Roster>,
    /// The state version (the kept state's event number) the caller saw
    /// when it asked for the write: the command is refused, recording
    /// nothing, when the deployment moved on since. Checked once, under the
    /// write lock, at the command's first read of the state.
    pub seen: std::sync::Mutex<Option<i64>>,
    /// The time the commands judge by (pending approvals' reminders and
    /// expiry): now, unless a caller sets it (a test's clock).
    pub clock: Option<jiff::Timestamp>,
}

impl Deployment {
    /// Open `row` of `store` with `source`, the runbook as read from the
    /// row's `runbook_path` now: refused when its content is not the one
    /// the deployment started from.
    pub fn new(store: Store, row: golive_store::Deployment, source: &Source) -> Result<Deployment> {
        if source.sha256 != row.runbook_sha256 {
            return Err(Error::Invalid(crate::Refusal {
                kind: K::RunbookChanged,
                message: format!(
                    "{} changed since deployment {} started (sha256 {} then, {} now): sign-offs and status refer to the document as it was",
                    row.runbook_path,
                    row.id,
                    &row.runbook_sha256[..12.min(row.runbook_sha256.len())],
                    &source.sha256[..12]
                ),
                at: None,
            }));
        }
        Ok(Deployment {
            store,
            rb: source.runbook(),
            row,
            people: None,
            seen: std::sync::Mutex::new(None),
            clock: None,
        })
    }

    /// Open `row` of `store` with a runbook imported already (a server
    /// keeps them parsed, by hash): refused when its text is not the one
    /// the deployment started from.
    pub fn with_runbook(
        store: Store,
        row: golive_store::Deployment,
        rb: Runbook,
    ) -> Result<Deployment> {
        let sha = crate::runbook_sha256(&rb);
        if sha != row.runbook_sha256 {
            return Err(Error::Invalid(crate::Refusal {
                kind: K::RunbookChanged,
                message: format!(
                    "the runbook given for deployment {} is not the one it started from (sha256 {} then, {} given)",
                    row.id,
                    &row.runbook_sha256[..12.min(row.runbook_sha256.len())],
                    &sha[..12]
                ),
                at: None,
            }));
        }
        Ok(Deployment {
            store,
            rb,
            row,
            people: None,
            seen: std::sync::Mutex::new(None),
            clock: None,
        })
    }

    /// The deployment's id.
    pub fn id(&self) -> &str {
        &self.row.id
    }

    /// Its state: as kept, or replayed from the chain (with a note to the
    /// listener) when the kept one is not current.
    pub async fn kept(&self, l: &dyn Listener) -> Result<Kept> {
        let (k, note) = Kept::read(&self.store, &self.row.id).await?;
        if let Some(n) = note {
            l.note(&n);
        }
        let seen = self.seen.lock().ok().and_then(|mut s| s.take());
        if let Some(seen) = seen
            && seen != k.seq
        {
            return Err(Error::refused(
                K::MovedOn,
                format!(
                    "deployment {} moved on: this was asked at version {seen}, it is at version {} now; look at it again and retry",
                    self.row.id, k.seq
                ),
            ));
        }
        Ok(k)
    }

    /// Its write lock: held from a command's read of the state to its append.
    pub async fn lock(&self) -> Result<WriteLock> {
        Ok(self.store.lock(&self.row.id).await?)
    }

    /// The time the commands judge by.
    pub fn now(&self) -> jiff::Timestamp {
        self.clock.unwrap_or_else(jiff::Timestamp::now)
    }

    /// The kept state with the pending approvals whose signatures expired
    /// by now recorded as expired first (under the caller's write lock):
    /// an expired signature never completes an approval.
    async fn kept_expiring(&self, l: &dyn Listener, decision_roles: &[String]) -> Result<Kept> {
        let k = self.kept(l).await?;
        let expired = crate::approval::expired(&self.rb, &k, decision_roles, self.now());
        if expired.is_empty() {
            return Ok(k);
        }
        for e in &expired {
            l.note(&format!(
                "{}: the signatures of {} expired (pending longer than the document's expire_after): they must be given again",
                e.data["label"].as_str().unwrap_or("?"),
                e.data["signed"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            ));
        }
        self.append(&expired).await?;
        Ok(Kept::read(&self.store, &self.row.id).await?.0)
    }

    /// `golive status` and the server's worker: record the pending
    /// approvals that expired by now (the lifecycle's rule, not the
    /// caller's): how many.
    pub async fn expire_approvals(&self, l: &dyn Listener) -> Result<usize> {
        let _lock = self.lock().await?;
        let roster = self.roster(None).ok();
        let roles = roster
            .map(|r| lifecycle::roles(&self.rb, &r.team).decision)
            .unwrap_or_else(|| lifecycle::decision_signers(&self.rb));
        let before = self.kept(l).await?.seq;
        let after = self.kept_expiring(l, &roles).await?.seq;
        Ok((after - before).max(0) as usize)
    }

    async fn append(&self, events: &[NewEvent]) -> Result<()> {
        self.store.append(&self.row.id, events).await?;
        Ok(())
    }

    /// The roster the deployment's commands check people against: the
    /// caller's people when it gave them, else [`roster_for`].
    pub fn roster(&self, roster_file: Option<&Path>) -> Result<Roster> {
        match &self.people {
            Some(p) => Ok(p.clone()),
            None => roster_for(&self.rb, roster_file),
        }
    }

    /// The roles the team states for what the document does not (the
    /// roster file's `[roles]`).
    fn team(&self, roster_file: Option<&Path>) -> Result<lifecycle::TeamRoles> {
        Ok(self.roster(roster_file)?.team)
    }

    /// The person named `name` on the deployment's roster (`roster_file`,
    /// or the `roster.toml` beside the runbook, or the document's Contact
    /// Information), or the refusal that says how to add them.
    fn person(&self, roster_file: Option<&Path>, name: &str, role: Option<&str>) -> Result<Person> {
        person_in(&self.roster(roster_file)?, name, role)
    }

    /// The person acting and the team's roles, from one read of the roster.
    fn person_and_team(
        &self,
        roster_file: Option<&Path>,
        name: &str,
        role: Option<&str>,
    ) -> Result<(Person, lifecycle::TeamRoles)> {
        let roster = self.roster(roster_file)?;
        let person = person_in(&roster, name, role)?;
        Ok((person, roster.team))
    }
}

/// `name` on `roster`, or the refusal saying how to add them.
fn person_in(roster: &Roster, name: &str, role: Option<&str>) -> Result<Person> {
    roster.person(name).cloned().ok_or_else(|| {
        Error::refused(
            K::NotOnRoster,
            format!("{}\nor pass --roster FILE", roster.absent(name, role)),
        )
    })
}

/// The roster a deployment's commands check people against.
pub fn roster_for(rb: &Runbook, given: Option<&Path>) -> Result<Roster> {
    let beside = Roster::default_file(&rb.path);
    let file: Option<PathBuf> = given
        .map(Path::to_path_buf)
        .or_else(|| beside.exists().then_some(beside));
    match file {
        Some(f) => {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| Error::Failed(format!("cannot read {}: {e}", f.display())))?;
            Roster::from_toml(&text, &f.display().to_string()).map_err(Error::Failed)
        }
        None => Ok(Roster::from_document(rb)),
    }
}

fn holds(p: &Person, role: &str) -> Result<()> {
    if p.holds(role) {
        return Ok(());
    }
    Err(Error::refused(
        K::RoleNotHeld,
        format!(
            "{} does not hold the role {} (holds: {})",
            p.name,
            role,
            p.roles.join(", ")
        ),
    ))
}

/// The item `name` resolves to, refusing a sub-check with `sub`'s words.
fn item_named(rb: &Runbook, name: &str, sub: &str) -> Result<usize> {
    match rb.resolve(name) {
        Ok(Target::Item(i)) => Ok(i),
        Ok(Target::SubCheck(i, _)) => Err(Error::refused_at(
            K::SubCheck,
            format!("`{name}` is a sub-check of {}{sub}", rb.items[i].address),
            At::item(rb, i),
        )),
        Err(e) => Err(Error::refused(K::Unknown, e.to_string())),
    }
}

/// `golive sign`: a person's sign-off on an item.
pub struct Sign<'a> {
    pub item: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    /// Done (the default), not applicable (`--na`) or failed (`--failed`);
    /// the last two need the comment.
    pub result: lifecycle::SignResult,
    pub comment: Option<&'a str>,
    pub evidence: &'a [PathBuf],
    pub roster: Option<&'a Path>,
    /// Sign each sign-off with the person's SSH key ([`crate::sshsig`]):
    /// the signature must verify with one of their keys on the roster.
    pub signer: Option<crate::sshsig::Signer<'a>>,
}

/// A sign-off recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    pub item: usize,
    pub name: String,
    pub role: String,
    pub result: lifecycle::SignResult,
    /// Signed done over checks that failed in the last run that ran them.
    pub overrides: bool,
}

impl Deployment {
    pub async fn sign(&self, a: &Sign<'_>, l: &dyn Listener) -> Result<Signed> {
        let mut all = self.sign_each(a, &[], l).await?;
        Ok(all.remove(0))
    }

    /// `golive sign ITEM…`: the item `a.item` and each of `more`, every one
    /// an item, a group or a stage by address (`2.1`, `3`, or `3.*`: its
    /// items a person signs). Each is checked as one sign-off would be and
    /// recorded as its own event, all in one append: one refusal and none is
    /// recorded.
    pub async fn sign_each(
        &self,
        a: &Sign<'_>,
        more: &[&str],
        l: &dyn Listener,
    ) -> Result<Vec<Signed>> {
        let _lock = self.lock().await?;
        let rb = &self.rb;
        let mut items = Vec::new();
        for name in std::iter::once(a.item).chain(more.iter().copied()) {
            let named = items_named(rb, name)?;
            if named.is_empty() {
                return Err(Error::refused(
                    K::NotSignable,
                    format!(
                        "`{name}` holds no item a person signs (its procedure steps are marked done)"
                    ),
                ));
            }
            for i in named {
                if !items.contains(&i) {
                    items.push(i);
                }
            }
        }
        let person = self.person(a.roster, a.name, Some(a.role))?;
        holds(&person, a.role)?;
        let roles = lifecycle::roles(rb, &self.roster(a.roster)?.team).decision;
        let k = self.kept_expiring(l, &roles).await?;
        let mut evidence = Vec::new();
        for f in a.evidence {
            let bytes = std::fs::read(f)
                .map_err(|e| Error::Failed(format!("evidence {}: {e}", f.display())))?;
            evidence.push(json!({
                "file": f.display().to_string(),
                "sha256": hex::encode(Sha256::digest(&bytes)),
                "bytes": bytes.len(),
            }));
        }
        let mut events = Vec::new();
        let mut out = Vec::new();
        for item in items {
            let (mut event, signed) = self.sign_one(a, item, &person.name, &k, &evidence)?;
            if let Some(sign) = a.signer {
                self.sign_with(sign, &mut event, &person, &k, item)?;
            }
            events.push(event);
            out.push(signed);
        }
        self.append(&events).await?;
        Ok(out)
    }

    /// A sign-off signed with the person's key: its canonical payload
    /// signed, the signature checked against their keys on the roster, both
    /// kept in the event.
    fn sign_with(
        &self,
        sign: crate::sshsig::Signer<'_>,
        event: &mut NewEvent,
        person: &Person,
        k: &Kept,
        item: usize,
    ) -> Result<()> {
        let it = &self.rb.items[item];
        let (id, result) = crate::sshsig::what_of(&event.kind, Some(&it.id), &event.data);
        self.sign_event(
            sign,
            event,
            person,
            k,
            (&id, &result),
            k.checks_of(&it.id),
            (
                format!("{} {}", it.address, it.title),
                Some(At::item(&self.rb, item)),
            ),
        )
    }

    /// The canonical payload of `what` by `person` in `role` at `at`, over
    /// `evidence` and `checks`, at the head of `k`.
    #[allow(clippy::too_many_arguments)]
    fn payload_at(
        &self,
        what: (&str, &str),
        person: &str,
        role: &str,
        at: &str,
        evidence: &Value,
        checks: &[golive_store::Event],
        k: &Kept,
    ) -> String {
        let head = if k.seq == 0 {
            format!("0:{}", self.row.genesis)
        } else {
            format!("{}:{}", k.seq, k.hash)
        };
        crate::sshsig::payload(
            &self.row.id,
            what.0,
            what.1,
            person,
            role,
            at,
            evidence,
            checks,
            &head,
        )
    }

    /// The payload `person` signs, now, for `act` in `role`: an item's
    /// address (with `result`: `done`, `na`, `failed`), `decision` (with
    /// `go` or `no-go`), `rollback`, `continue` or `finish`. What a client
    /// of the API signs with the person's key before it posts the act with
    /// the signature.
    pub async fn payload_for(
        &self,
        act: &str,
        result: Option<&str>,
        person: &str,
        role: &str,
        l: &dyn Listener,
    ) -> Result<String> {
        let k = self.kept(l).await?;
        let all: Vec<golive_store::Event> = k
            .checks
            .values()
            .flat_map(|c| c.events.iter().cloned())
            .collect();
        let act = act.trim();
        let (kind, data, checks): (&str, Value, Vec<golive_store::Event>) =
            match act.to_lowercase().as_str() {
                "decision" => {
                    let verdict = match result.unwrap_or("go").to_lowercase().as_str() {
                        "go" => "GO",
                        "no-go" | "nogo" => "NO-GO",
                        other => {
                            return Err(Error::refused(
                                K::Unknown,
                                format!("`{other}` is neither go nor no-go"),
                            ));
                        }
                    };
                    ("decision.signature", json!({ "verdict": verdict }), all)
                }
                "rollback" => ("rollback.signature", json!({}), all),
                "continue" => ("rollback.continue", json!({}), all),
                "finish" => {
                    let outcome = if k.rollback_started.is_some() {
                        "ROLLED BACK"
                    } else {
                        "SUCCESS"
                    };
                    ("deployment.ended", json!({ "outcome": outcome }), all)
                }
                _ => {
                    let item = item_named(&self.rb, act, "; sign the item")?;
                    let id = self.rb.items[item].id.clone();
                    let checks = k.checks_of(&id).to_vec();
                    let data = json!({ "result": result.unwrap_or("done"), "evidence": [] });
                    let (what, res) = crate::sshsig::what_of("signoff", Some(&id), &data);
                    let role = role.to_string();
                    return Ok(self.payload_at(
                        (&what, &res),
                        person,
                        &role,
                        &self.now().to_string(),
                        &data["evidence"],
                        &checks,
                        &k,
                    ));
                }
            };
        let (what, res) = crate::sshsig::what_of(kind, None, &data);
        // the end names no role; every other act the one it is done in
        let role = if kind == "deployment.ended" { "" } else { role };
        Ok(self.payload_at(
            (&what, &res),
            person,
            role,
            &self.now().to_string(),
            &Value::Null,
            &checks,
            &k,
        ))
    }

    /// An act of the deployment's (the decision, a rollback, its end)
    /// signed by `person`: what it approves is the event's own
    /// ([`crate::sshsig::what_of`]) over every check result recorded.
    fn sign_act(
        &self,
        sign: crate::sshsig::Signer<'_>,
        event: &mut NewEvent,
        person: &Person,
        k: &Kept,
        label: String,
    ) -> Result<()> {
        let checks: Vec<golive_store::Event> = k
            .checks
            .values()
            .flat_map(|c| c.events.iter().cloned())
            .collect();
        let (what, result) = crate::sshsig::what_of(&event.kind, None, &event.data);
        self.sign_event(
            sign,
            event,
            person,
            k,
            (&what, &result),
            &checks,
            (label, None),
        )
    }

    /// `event` signed by `person`: what it approves is `what` (the item, or
    /// `decision`, and the result or verdict) over `checks` at the head of
    /// `k`.
    #[allow(clippy::too_many_arguments)]
    fn sign_event(
        &self,
        sign: crate::sshsig::Signer<'_>,
        event: &mut NewEvent,
        person: &Person,
        k: &Kept,
        what: (&str, &str),
        checks: &[golive_store::Event],
        (label, at): (String, Option<At>),
    ) -> Result<()> {
        let payload = self.payload_at(
            what,
            &person.name,
            event.data["role"].as_str().unwrap_or(""),
            &self.now().to_string(),
            &event.data["evidence"],
            checks,
            k,
        );
        let refused = |why: String| {
            let message = format!("{label}: {why}");
            match &at {
                Some(at) => Error::refused_at(K::BadSignature, message, at.clone()),
                None => Error::refused(K::BadSignature, message),
            }
        };
        let signed = sign(payload.as_bytes()).map_err(Error::Failed)?;
        let payload = match signed.payload {
            None => payload,
            Some(theirs) => {
                crate::sshsig::same_act(&payload, &theirs, self.now()).map_err(refused)?;
                theirs
            }
        };
        let sig = signed.signature;
        let key =
            crate::sshsig::verify(payload.as_bytes(), &sig, &person.ssh_keys).map_err(refused)?;
        event.data["ssh"] = json!({ "payload": payload, "signature": sig.trim(), "key": key });
        Ok(())
    }

    /// The sign-off of one item, checked against the document and the
    /// record.
    fn sign_one(
        &self,
        a: &Sign<'_>,
        item: usize,
        person: &str,
        k: &Kept,
        evidence: &[Value],
    ) -> Result<(NewEvent, Signed)> {
        let rb = &self.rb;
        let it = &rb.items[item];
        lifecycle::signable(rb, item)
            .map_err(|why| Error::refused_at(K::NotSignable, why, At::item(rb, item)))?;
        if let (Some(resp), _) = crate::approval::responsible(rb, item)
            && !resp.eq_ignore_ascii_case(a.role.trim())
        {
            return Err(Error::refused_at(
                K::WrongRole,
                format!(
                    "{} {} is for the {} to sign, not the {}",
                    it.address, it.title, resp, a.role
                ),
                At::item(rb, item),
            ));
        }
        let comment = a.comment.map(str::trim).filter(|c| !c.is_empty());
        use lifecycle::SignResult as R;
        if a.result != R::Done && comment.is_none() {
            return Err(Error::refused_at(
                K::Incomplete,
                format!(
                    "{} {}: a sign-off as {} needs --comment saying {}",
                    it.address,
                    it.title,
                    if a.result == R::Failed {
                        "failed"
                    } else {
                        "not applicable"
                    },
                    if a.result == R::Failed {
                        "what failed"
                    } else {
                        "why it does not apply"
                    }
                ),
                At::item(rb, item),
            ));
        }
        let failing: Vec<&str> = k
            .checks_of(&it.id)
            .iter()
            .filter(|e| e.data["outcome"] != "passed")
            .filter_map(|e| e.data["outcome"].as_str())
            .collect();
        let overrides = a.result == R::Done && !failing.is_empty();
        if overrides && comment.is_none() {
            return Err(Error::refused_at(
                K::Incomplete,
                format!(
                    "{} {}: its checks did not pass in the last run ({}); signing it done overrides them and needs --comment saying why",
                    it.address,
                    it.title,
                    failing.join(", ")
                ),
                At::item(rb, item),
            ));
        }
        // a person signs an item once per result: a failed item signed
        // done once fixed, a done one failed once broken again
        // (a stale one is to be given again)
        let rules = crate::approval::rules(rb);
        if let Some(prev) = k
            .signoff_by(&it.id, person)
            .filter(|prev| lifecycle::signoff_result(prev) == a.result)
            .filter(|prev| !crate::approval::stale(&rules, k, prev))
        {
            return Err(Error::refused_at(
                K::SignedAlready,
                format!("{person} already signed {} at {}", it.address, prev.at),
                At::item(rb, item),
            ));
        }
        let event = NewEvent::new(
            "signoff",
            json!({
                "role": a.role, "comment": comment, "evidence": evidence,
                "address": it.address, "title": it.title,
                "result": a.result.name(), "override": overrides,
                "approved": crate::approval::outcomes(k, &it.id),
            }),
        )
        .item(&it.id)
        .actor(person);
        Ok((
            event,
            Signed {
                item,
                name: person.to_string(),
                role: a.role.to_string(),
                result: a.result,
                overrides,
            },
        ))
    }
}

/// The items `name` stands for when signing: an item, or a group or a stage
/// by address (`2.1`, `3`, with or without `.*`): its items a person signs
/// (not its procedure steps).
fn items_named(rb: &Runbook, name: &str) -> Result<Vec<usize>> {
    let bare = name.trim().trim_end_matches(".*").trim_end_matches("/*");
    let wildcard = bare.len() != name.trim().len();
    if !wildcard && let Ok(i) = item_named(rb, name, "; sign the item") {
        return Ok(vec![i]);
    }
    let people_sign =
        |i: &usize| rb.items[*i].kind != ItemKind::Step && lifecycle::signable(rb, *i).is_ok();
    if let Some(st) = rb.stages.iter().find(|s| s.address == bare || s.id == bare) {
        return Ok(st.all_items().filter(people_sign).collect());
    }
    if let Some((_, g)) = rb.groups().find(|(_, g)| g.address == bare || g.id == bare) {
        return Ok(g.items.iter().copied().filter(people_sign).collect());
    }
    item_named(rb, name, "; sign the item").map(|i| vec![i])
}

/// `golive skip`: an optional item set aside, with why.
pub struct Skip<'a> {
    pub item: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    pub reason: &'a str,
    pub roster: Option<&'a Path>,
}

/// `golive choose`: the option of a "choose one" group a person chose.
pub struct Choose<'a> {
    /// The option: its address (`2.1/3`, the third option of group 2.1), its
    /// title (`Option C: Canary`) or the slug of it, with or without the
    /// group's id before it.
    pub option: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    pub roster: Option<&'a Path>,
}

/// An option chosen: the group, the option, and the items it sets aside.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    pub stage: usize,
    pub group: usize,
    pub option: usize,
    pub set_aside: usize,
}

impl Deployment {
    /// An item the document marks optional (`(if needed)`, `(optional)` …),
    /// set aside by a person with a reason: complete for the summary, left
    /// out of the gates' counts, shown as skipped in the reports. A step is
    /// skipped with `done --skipped`.
    /// Returns the item set aside.
    pub async fn skip(&self, a: &Skip<'_>, l: &dyn Listener) -> Result<usize> {
        let _lock = self.lock().await?;
        let rb = &self.rb;
        let item = item_named(rb, a.item, "; skip the item")?;
        let it = &rb.items[item];
        if it.kind == ItemKind::Step {
            return Err(Error::refused_at(
                K::NotSignable,
                format!(
                    "{} is a step: golive done {} --skipped",
                    it.address, it.address
                ),
                At::item(rb, item),
            ));
        }
        if it.optional.is_none() {
            return Err(Error::refused_at(
                K::NotOptional,
                format!(
                    "{} {} is not optional: the document marks none of it `(if …)` or `(optional)`",
                    it.address, it.title
                ),
                At::item(rb, item),
            ));
        }
        if a.reason.trim().is_empty() {
            return Err(Error::refused(
                K::Incomplete,
                "a skipped item needs a reason: --reason TEXT",
            ));
        }
        let person = self.person(a.roster, a.name, Some(a.role))?;
        holds(&person, a.role)?;
        let k = self.kept(l).await?;
        if k.has_ended() {
            return Err(Error::refused(K::Ended, "the deployment has ended"));
        }
        if let Some(prev) = k.skipped.get(&it.id) {
            return Err(Error::refused_at(
                K::SignedAlready,
                format!("{} was skipped already, at {}", it.address, prev.at),
                At::item(rb, item),
            ));
        }
        if let Some(prev) = k
            .signoffs
            .iter()
            .find(|e| e.item.as_deref() == Some(&it.id))
        {
            return Err(Error::refused_at(
                K::SignedAlready,
                format!(
                    "{} was signed already, by {} at {}",
                    it.address,
                    prev.actor.as_deref().unwrap_or("?"),
                    prev.at
                ),
                At::item(rb, item),
            ));
        }
        let event = NewEvent::new(
            "item.skipped",
            json!({
                "role": a.role, "reason": a.reason.trim(), "marker": it.optional,
                "address": it.address, "title": it.title,
            }),
        )
        .item(&it.id)
        .actor(a.name);
        self.append(&[event]).await?;
        Ok(item)
    }

    /// The option of a "choose one" group a person chose: its items are
    /// then required, the other options' items set aside. Chosen once.
    pub async fn choose(&self, a: &Choose<'_>, l: &dyn Listener) -> Result<Chosen> {
        let _lock = self.lock().await?;
        let rb = &self.rb;
        let (s, g, o) = option_named(rb, a.option)?;
        let group = &rb.stages[s].groups[g];
        let person = self.person(a.roster, a.name, Some(a.role))?;
        holds(&person, a.role)?;
        let k = self.kept(l).await?;
        if k.has_ended() {
            return Err(Error::refused(K::Ended, "the deployment has ended"));
        }
        if let Some(prev) = k.chosen.get(&group.id) {
            return Err(Error::refused_at(
                K::Decided,
                format!(
                    "{} {}: {} was chosen already, by {} at {}",
                    group.address,
                    group.title(),
                    prev.data["option"].as_str().unwrap_or("?"),
                    prev.actor.as_deref().unwrap_or("?"),
                    prev.at
                ),
                At::group(rb, s, g),
            ));
        }
        // an option some item of which is signed cannot be set aside now
        let signed: BTreeSet<&str> = k
            .signoffs
            .iter()
            .filter_map(|e| e.item.as_deref())
            .collect();
        for (n, other) in group.choose_one.iter().enumerate().filter(|(n, _)| *n != o) {
            if let Some(&i) = other
                .items
                .iter()
                .find(|&&i| signed.contains(rb.items[i].id.as_str()))
            {
                return Err(Error::refused_at(
                    K::SignedAlready,
                    format!(
                        "{} of option {} ({}) is signed already: that option was followed",
                        rb.items[i].address,
                        n + 1,
                        other.title
                    ),
                    At::item(rb, i),
                ));
            }
        }
        let option = &group.choose_one[o];
        let set_aside = group
            .choose_one
            .iter()
            .enumerate()
            .filter(|(n, _)| *n != o)
            .map(|(_, c)| c.items.len())
            .sum();
        let event = NewEvent::new(
            "option.chosen",
            json!({
                "role": a.role, "group": group.id, "group_title": group.title(),
                "option": option.title, "number": o + 1,
            }),
        )
        .actor(a.name);
        self.append(&[event]).await?;
        Ok(Chosen {
            stage: s,
            group: g,
            option: o,
            set_aside,
        })
    }
}

/// The option of a "choose one" group `name` names: `GROUP/N` (group
/// address or id, then the option's number), or the option's title or its
/// slug, alone when only one group has it.
fn option_named(rb: &Runbook, name: &str) -> Result<(usize, usize, usize)> {
    let slug = golive_runbook::text::slugify(name);
    let mut found = Vec::new();
    for (s, st) in rb.stages.iter().enumerate() {
        for (g, grp) in st.groups.iter().enumerate() {
            for (o, opt) in grp.choose_one.iter().enumerate() {
                let numbered = [
                    format!("{}/{}", grp.address, o + 1),
                    format!("{}/{}", grp.id, o + 1),
                ];
                let own = golive_runbook::text::slugify(&opt.title);
                if numbered.iter().any(|n| n == name)
                    || opt.title.eq_ignore_ascii_case(name.trim())
                    || own == slug
                    || (!slug.is_empty() && own.ends_with(&format!("-{slug}")))
                    || format!("{}/{own}", grp.id) == name
                {
                    found.push((s, g, o));
                }
            }
        }
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => {
            let all: Vec<String> = rb
                .groups()
                .flat_map(|(_, g)| {
                    g.choose_one
                        .iter()
                        .enumerate()
                        .map(move |(o, c)| format!("{}/{} {}", g.address, o + 1, c.title))
                })
                .collect();
            Err(Error::refused(
                K::NoSuchChoice,
                if all.is_empty() {
                    format!("no option is named `{name}`: the document has no \"choose one\" group")
                } else {
                    format!(
                        "no option is named `{name}`; the options: {}",
                        all.join(", ")
                    )
                },
            ))
        }
        many => Err(Error::refused(
            K::NoSuchChoice,
            format!(
                "`{name}` names an option of {} groups: name it by GROUP/N",
                many.len()
            ),
        )),
    }
}

/// `golive sign-off`: one of the roles a stage names as its signers signs
/// it (the reference's Final Sign-off: Deployment Lead, Engineering Manager,
/// Operations Manager, Product Manager).
pub struct SignOff<'a> {
    /// The stage, by address or id; `None`: the last stage with signers.
    pub stage: Option<&'a str>,
    pub name: &'a str,
    pub role: &'a str,
    pub comment: Option<&'a str>,
    pub roster: Option<&'a Path>,
}

impl Deployment {
    /// A stage's sign-off by one of the roles it names, once the deployment
    /// has ended (the sign-off is of what was done); once per role. Returns
    /// where the stage's sign-off then stands.
    pub async fn sign_off(
        &self,
        a: &SignOff<'_>,
        l: &dyn Listener,
    ) -> Result<lifecycle::StageSignoffs> {
        let _lock = self.lock().await?;
        let rb = &self.rb;
        let with: Vec<usize> = (0..rb.stages.len())
            .filter(|&s| !rb.stages[s].signers.is_empty())
            .collect();
        let s = match a.stage {
            None => *with.last().ok_or_else(|| {
                Error::refused(
                    K::Unknown,
                    "no stage of the document names the roles that sign it (a sign-off table or `**Role:**` blocks with a Signature line)",
                )
            })?,
            Some(name) => (0..rb.stages.len())
                .find(|&s| rb.stages[s].address == name || rb.stages[s].id == name)
                .ok_or_else(|| Error::refused(K::Unknown, format!("no stage is named `{name}`")))?,
        };
        let stage = &rb.stages[s];
        let Some(role) = stage
            .signers
            .iter()
            .find(|r| r.eq_ignore_ascii_case(a.role.trim()))
        else {
            return Err(Error::refused_at(
                K::WrongRole,
                if stage.signers.is_empty() {
                    format!(
                        "{} {} names no roles that sign it",
                        stage.address,
                        stage.title()
                    )
                } else {
                    format!(
                        "{} {} is signed by {}, not the {}",
                        stage.address,
                        stage.title(),
                        stage.signers.join(", "),
                        a.role
                    )
                },
                At::stage(rb, s),
            ));
        };
        let person = self.person(a.roster, a.name, Some(a.role))?;
        holds(&person, a.role)?;
        let k = self.kept(l).await?;
        if k.ended.is_none() {
            return Err(Error::refused_at(
                K::Incomplete,
                format!(
                    "{} {} is signed once the deployment has ended (golive finish, or the rollback's last step)",
                    stage.address,
                    stage.title()
                ),
                At::stage(rb, s),
            ));
        }
        let now = lifecycle::stage_signoffs(rb, &k);
        if let Some((_, e)) = now
            .iter()
            .find(|x| x.stage == s)
            .and_then(|x| x.signed.iter().find(|(r, _)| r == role))
        {
            return Err(Error::refused_at(
                K::SignedAlready,
                format!(
                    "the {role} signed {} already: {} at {}",
                    stage.title(),
                    e.actor.as_deref().unwrap_or("?"),
                    e.at
                ),
                At::stage(rb, s),
            ));
        }
        let event = NewEvent::new(
            "stage.signoff",
            json!({ "stage": stage.id, "role": role, "comment": a.comment, "title": stage.title() }),
        )
        .actor(a.name);
        self.append(&[event]).await?;
        let k = self.kept(l).await?;
        lifecycle::stage_signoffs(rb, &k)
            .into_iter()
            .find(|x| x.stage == s)
            .ok_or_else(|| Error::Failed("the stage's sign-off is not in the record".into()))
    }
}

/// `golive decide go|no-go`: one signature of the go/no-go decision.
pub struct Decide<'a> {
    pub go: bool,
    pub name: &'a str,
    pub role: &'a str,
    pub reason: Option<&'a str>,
    pub roster: Option<&'a Path>,
    /// Sign the signature with the person's SSH key ([`crate::sshsig`]):
    /// what it approves is the verdict over every check result recorded.
    pub signer: Option<crate::sshsig::Signer<'a>>,
}

/// A signature of the decision recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub verdict: &'static str,
    pub name: String,
    pub role: String,
    /// The roles the decision needs.
    pub required: Vec<String>,
    /// The roles still to sign: none when this signature took the decision.
    pub waiting: Vec<String>,
    /// The sign-offs it was taken over that override failed checks, as
    /// lines ([`lifecycle::override_line`]).
    pub overrides: Vec<String>,
}

impl Decided {
    /// Whether this signature completed the decision.
    pub fn taken(&self) -> bool {
        self.waiting.is_empty()
    }
}

impl Deployment {
    /// GO needs every pre-deployment item complete; the decision needs the
    /// distinct people the document names, each signing the same verdict;
    /// it takes effect with the last of them.
    pub async fn decide(&self, a: &Decide<'_>, l: &dyn Listener) -> Result<Decided> {
        let _lock = self.lock().await?;
        let rb = &self.rb;
        let verdict = if a.go { "GO" } else { "NO-GO" };
        // one read of the roster: the team's roles, then the person
        let roster = self.roster(a.roster)?;
        let required = lifecycle::roles(rb, &roster.team).decision;
        let decision_at = || {
            rb.stages
                .iter()
                .position(|s| s.kind == StageKind::Decision)
                .map(|s| At::stage(rb, s))
        };
        if !required.iter().any(|r| r.eq_ignore_ascii_case(a.role)) {
            return Err(Error::Refused(crate::Refusal {
                kind: K::WrongRole,
                message: format!(
                    "the decision is signed by the {}; not by the {}",
                    required.join(", "),
                    a.role
                ),
                at: decision_at(),
            }));
        }
        let person = person_in(&roster, a.name, Some(a.role))?;
        holds(&person, a.role)?;
        if !a.go && a.reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(Error::refused(
                K::Incomplete,
                "a NO-GO needs its reason (--reason)",
            ));
        }
        if let Some(why) =
            crate::approval::self_approval(rb, &self.row.started_by, &person.name, a.go)
        {
            return Err(Error::Refused(crate::Refusal {
                kind: K::SelfApproval,
                message: why,
                at: decision_at(),
            }));
        }
        let k = self.kept_expiring(l, &required).await?;
        if let Some(done) = &k.decision {
            return Err(Error::refused(
                K::Decided,
                format!(
                    "the decision was taken already: {} at {}",
                    done.data["verdict"].as_str().unwrap_or("?"),
                    done.at
                ),
            ));
        }
        if a.go {
            let st = states(rb, &k);
            let pre: Vec<usize> = rb
                .stages
                .iter()
                .filter(|s| s.kind == StageKind::PreDeployment)
                .flat_map(|s| s.all_items())
                .collect();
            let open: Vec<usize> = pre
                .iter()
                .copied()
                .filter(|&i| !complete(rb, i, st.get(&rb.items[i].id)))
                .collect();
            if let Some(&first) = open.first() {
                let shown: Vec<&str> = open
                    .iter()
                    .take(8)
                    .map(|&i| rb.items[i].address.as_str())
                    .collect();
                return Err(Error::refused_at(
                    K::PreDeploymentOpen,
                    format!(
                        "GO needs {n}/{n} pre-deployment items complete, {} are: still open {}{}",
                        pre.len() - open.len(),
                        shown.join(", "),
                        if open.len() > 8 { " …" } else { "" },
                        n = pre.len()
                    ),
                    At::item(rb, first),
                ));
            }
        }
        let sigs = &k.decision_signatures;
        for sig in sigs {
            let role = sig.data["role"].as_str().unwrap_or("");
            let who = sig.actor.as_deref().unwrap_or("");
            if who.eq_ignore_ascii_case(&person.name) {
                return Err(Error::refused(
                    K::SignedAlready,
                    format!(
                        "the decision needs distinct people: {} signed already as {}",
                        person.name, role
                    ),
                ));
            }
            if role.eq_ignore_ascii_case(a.role) {
                return Err(Error::refused(
                    K::SignedAlready,
                    format!("the {} signed already ({})", role, who),
                ));
            }
            if sig.data["verdict"].as_str() != Some(verdict) {
                return Err(Error::refused(
                    K::SignersDisagree,
                    format!(
                        "{} signed {} as {}: the signers must agree",
                        who,
                        sig.data["verdict"].as_str().unwrap_or("?"),
                        role
                    ),
                ));
            }
        }
        let mut signature = NewEvent::new(
            "decision.signature",
            json!({ "verdict": verdict, "role": a.role, "reason": a.reason }),
        )
        .actor(&person.name);
        if let Some(sign) = a.signer {
            self.sign_act(
                sign,
                &mut signature,
                &person,
                &k,
                format!("the {verdict} decision"),
            )?;
        }
        let mut new = vec![signature];
        let signed_roles: BTreeSet<String> = sigs
            .iter()
            .filter_map(|e| e.data["role"].as_str().map(str::to_lowercase))
            .chain(std::iter::once(a.role.to_lowercase()))
            .collect();
        let waiting: Vec<String> = required
            .iter()
            .filter(|r| !signed_roles.contains(&r.to_lowercase()))
            .cloned()
            .collect();
        if waiting.is_empty() {
            let signers: Vec<Value> = sigs
                .iter()
                .map(|e| json!({ "name": e.actor, "role": e.data["role"] }))
                .chain(std::iter::once(
                    json!({ "name": person.name, "role": a.role }),
                ))
                .collect();
            new.push(NewEvent::new(
                "decision",
                json!({ "verdict": verdict, "signers": signers, "reason": a.reason }),
            ));
        }
        self.append(&new).await?;
        let overrides = lifecycle::overrides(rb, &k)
            .into_iter()
            .map(|(i, e)| lifecycle::override_line(rb, i, e))
            .collect();
        Ok(Decided {
            verdict,
            name: person.name,
            role: a.role.to_string(),
            required,
            waiting,
            overrides,
        })
    }
}

/// `golive done STEP`: a procedure or rollback step done (or skipped).
pub struct Done<'a> {
    pub step: &'a str,
    pub name: &'a str,
    pub skipped: bool,
    pub comment: Option<&'a str>,
    pub roster: Option<&'a Path>,
    /// Run the step's command blocks first (needs `allow_commands`).
    pub run: bool,
    pub allow_commands: bool,
    pub confirm_rerun: bool,
    /// Variables for the commands, over those recorded with the deployment.
    pub vars: &'a golive_probe::Vars,
}

/// A step recorded done.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDone {
    /// The step's item; `None` for the one manual step of a rollback the
    /// document gives no Rollback Steps for ([`procedure::ROLLBACK_STEP`]).
    pub step: Option<usize>,
    /// The step as users see it: `3.1.2 Deploy the new version`.
    pub label: String,
    pub name: String,
    pub skipped: bool,
    /// What else the record says now: overruns, the rollback's end.
    pub lines: Vec<String>,
}

/// What became of `golive done`, when it did not record the step.
#[derive(Debug, Clone, PartialEq)]
pub enum NotDone {
    /// Another command recorded the step done while its commands ran:
    /// their run is recorded, not a second completion.
    DoneMeanwhile(usize),
}

impl Deployment {
    /// Steps follow the GO decision and each other, in document order; a
    /// skipped step must be optional (or in an optional phase).
    pub async fn done(
        &self,
        a: &Done<'_>,
        l: &dyn Listener,
    ) -> Result<std::result::Result<StepDone, NotDone>> {
        let lock = self.lock().await?;
        let rb = &self.rb;
        if a.step.eq_ignore_ascii_case(procedure::ROLLBACK_STEP)
            && lifecycle::rollback_steps(rb).0.is_empty()
        {
            return self.manual_rollback_done(a, l).await.map(Ok);
        }
        let step = item_named(rb, a.step, "")?;
        let it = &rb.items[step];
        let here = || At::item(rb, step);
        if it.kind != ItemKind::Step {
            return Err(Error::refused_at(
                K::NotAStep,
                format!(
                    "{} {} is not a procedure step: sign it instead",
                    it.address, it.title
                ),
                here(),
            ));
        }
        let person = self.person(a.roster, a.name, None)?;
        let mut k = self.kept(l).await?;
        match &k.decision {
            Some(e) if e.data["verdict"] == "GO" => {}
            Some(_) => {
                return Err(Error::refused(
                    K::NoGo,
                    "the decision was NO-GO: the procedure does not run",
                ));
            }
            None => {
                return Err(Error::refused(
                    K::BeforeGo,
                    "the procedure starts after the GO decision",
                ));
            }
        }
        if k.step_done(&it.id).is_some() {
            return Err(Error::refused_at(
                K::Done,
                format!("{} is done already", it.address),
                here(),
            ));
        }
        let (rollback, _) = lifecycle::rollback_steps(rb);
        let rolling_back = k.rollback_started.is_some();
        if rollback.contains(&step) && !rolling_back {
            return Err(Error::refused_at(
                K::WrongSequence,
                format!(
                    "{} is a rollback step: a rollback has not been started (golive rollback)",
                    it.address
                ),
                here(),
            ));
        }
        if !rollback.contains(&step) && rolling_back {
            return Err(Error::refused_at(
                K::WrongSequence,
                "the deployment is rolling back: only the Rollback Steps run now",
                here(),
            ));
        }
        let steps = if rollback.contains(&step) {
            rollback.clone()
        } else {
            procedure::procedure_steps(rb)
        };
        if let Some(&prev) = steps
            .iter()
            .take_while(|&&i| i != step)
            .find(|&&i| k.step_done(&rb.items[i].id).is_none())
        {
            let p = &rb.items[prev];
            return Err(Error::refused_at(
                K::OutOfOrder,
                format!(
                    "steps run in document order: {} {} is not done yet",
                    p.address, p.title
                ),
                At::item(rb, prev),
            ));
        }
        if a.skipped && it.optional.is_none() {
            return Err(Error::refused_at(
                K::NotOptional,
                format!("{} is not optional: it cannot be skipped", it.address),
                here(),
            ));
        }
        let mut ran = Value::Null;
        let _relock;
        let mut running = None;
        if a.run {
            let runner = Runner {
                actor: &person.name,
                allow_commands: a.allow_commands,
                confirm_rerun: a.confirm_rerun,
                vars: a.vars,
            };
            // the lock is released while the commands run (see run_step),
            // then taken again to record the step from the record as it is
            // now; the step's running lock is held until then
            match procedure::run_step(&self.store, &self.row, rb, step, &k, &runner, Some(lock))
                .await
                .map_err(Error::Failed)?
            {
                StepRun::Succeeded(v, held) => {
                    ran = v;
                    running = Some(held);
                }
                StepRun::Running(why) => {
                    return Err(Error::refused_at(K::Running, why, here()));
                }
                StepRun::Refused(why) => {
                    return Err(Error::refused_at(K::Commands, why, here()));
                }
            }
            _relock = Some(self.lock().await?);
            k = self.kept(l).await?;
            if k.step_done(&it.id).is_some() {
                return Ok(Err(NotDone::DoneMeanwhile(step)));
            }
        } else {
            // marked done by hand: not while a process is running its commands
            if let Some(why) = procedure::running_now(&self.store, &self.row, rb, &k, step)
                .await
                .map_err(Error::Failed)?
            {
                return Err(Error::refused_at(K::Running, why, here()));
            }
            _relock = Some(lock);
        }
        let (new, lines) = procedure::done_events(
            rb,
            &k,
            step,
            &person.name,
            json!({ "skipped": a.skipped, "comment": a.comment, "ran": ran }),
        );
        self.append(&new).await?;
        if let Some(held) = running {
            held.release().await;
        }
        Ok(Ok(StepDone {
            step: Some(step),
            label: format!("{} {}", it.address, it.title),
            name: person.name,
            skipped: a.skipped,
            lines,
        }))
    }

    /// The one step of a rollback when the document gives no Rollback
    /// Steps, marked done by a person once production is back: recorded,
    /// then `golive finish` ends the deployment ROLLED BACK.
    async fn manual_rollback_done(&self, a: &Done<'_>, l: &dyn Listener) -> Result<StepDone> {
        let person = self.person(a.roster, a.name, None)?;
        let k = self.kept(l).await?;
        if k.ended.is_some() {
            return Err(Error::refused(K::Ended, "the deployment has ended"));
        }
        if k.rollback_started.is_none() {
            return Err(Error::refused(
                K::WrongSequence,
                "no rollback has started (golive rollback): the rollback step follows it",
            ));
        }
        if a.skipped {
            return Err(Error::refused(
                K::NotOptional,
                "the rollback is not optional: it cannot be skipped",
            ));
        }
        if k.step_done(procedure::ROLLBACK_STEP).is_some() {
            return Err(Error::refused(K::Done, "the rollback is done already"));
        }
        let label = "rollback (the document gives no Rollback Steps: one step)".to_string();
        let event = NewEvent::new(
            "step.done",
            json!({ "skipped": false, "comment": a.comment, "address": procedure::ROLLBACK_STEP, "title": label }),
        )
        .item(procedure::ROLLBACK_STEP)
        .actor(&person.name);
        self.append(&[event]).await?;
        Ok(StepDone {
            step: None,
            label,
            name: person.name,
            skipped: false,
            lines: vec![
                "the rollback is done: golive finish ends the deployment ROLLED BACK".into(),
            ],
        })
    }
}

/// A gate evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct GateResult {
    pub gate: Gate,
    pub tally: Tally,
    /// What a failure did.
    pub raised: Raised,
}

/// What a failed gate did to the rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    /// Nothing: the gate passed.
    Nothing,
    /// A rollback was raised (or under way) already: not raised twice.
    Already,
    /// The rollback started, with automatic authority (the smoke gate).
    Started,
    /// The rollback decision is raised, for the manual authority.
    Decision,
}

impl Deployment {
    /// `golive gate smoke|verification`: evaluate a gate from the record. A
    /// failed smoke gate starts the rollback with automatic authority; a
    /// failed verification gate raises the decision for the named people.
    pub async fn gate(
        &self,
        which: &str,
        name: &str,
        roster: Option<&Path>,
        l: &dyn Listener,
    ) -> Result<GateResult> {
        let _lock = self.lock().await?;
        let rb = &self.rb;
        let (person, team) = self.person_and_team(roster, name, None)?;
        let k = self.kept(l).await?;
        if k.go().is_none() {
            return Err(Error::refused(K::BeforeGo, "gates follow the GO decision"));
        }
        let Some(gate) = Gate::named(which) else {
            return Err(Error::Invalid(crate::Refusal {
                kind: K::NoSuchChoice,
                message: format!("gate: `{which}` is neither smoke nor verification"),
                at: None,
            }));
        };
        let tally = gate.tally(rb, &k).map_err(|why| {
            let at = rb
                .stages
                .iter()
                .position(|s| s.kind == gate.stage())
                .map(|s| At::stage(rb, s));
            Error::Refused(crate::Refusal {
                kind: K::NothingToCount,
                message: why,
                at,
            })
        })?;
        if !tally.untried.is_empty() {
            let n = tally.untried.len();
            let named: Vec<String> = tally
                .untried
                .iter()
                .take(8)
                .map(|&i| format!("{} {}", rb.items[i].address, rb.items[i].title))
                .collect();
            return Err(Error::refused_at(
                K::NotTried,
                format!(
                    "the {} gate decides nothing yet: {n} of its {} items have no result ({}{}); run their checks (golive run) or sign them passed or failed (golive sign ITEM [--failed --comment WHAT])",
                    gate.name(),
                    tally.total,
                    named.join(", "),
                    if n > named.len() { ", …" } else { "" }
                ),
                At::item(rb, tally.untried[0]),
            ));
        }
        let Tally {
            passed,
            total,
            target,
            ..
        } = tally.clone();
        let mut new = vec![
            NewEvent::new(
                "gate",
                lifecycle::gate_event(gate.name(), passed, total, target),
            )
            .actor(&person.name),
        ];
        let ok = tally.passes();
        // a rollback already raised (or under way) is not raised twice
        let already = k.rollback_raised.is_some() || k.rollback_started.is_some();
        let automatic = gate == Gate::Smoke;
        if !ok && !already {
            let (auto, manual) = lifecycle::rollback_authority(rb, &team);
            let reason = format!(
                "{} {passed}/{total}, below the target of {target}/{total}",
                gate.label()
            );
            new.push(NewEvent::new(
                "rollback.raised",
                json!({
                    "reason": reason,
                    "authority": if automatic { "automatic" } else { "manual" },
                    "by": if automatic { vec![auto] } else { manual },
                }),
            ));
            if automatic {
                new.push(lifecycle::automatic_start(rb, &reason, &team));
            }
        }
        self.append(&new).await?;
        Ok(GateResult {
            gate,
            tally,
            raised: match (ok, already, automatic) {
                (true, _, _) => Raised::Nothing,
                (false, true, _) => Raised::Already,
                (false, false, true) => Raised::Started,
                (false, false, false) => Raised::Decision,
            },
        })
    }
}

/// A rollback signature recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum RolledBack {
    /// The rollback started with automatic authority, by this person.
    Automatic { name: String, role: String },
    /// The manual authority is complete: the rollback started.
    Started { by: Vec<String> },
    /// Signed; the rest of the manual authority has still to sign.
    Signed {
        name: String,
        role: String,
        authority: Vec<String>,
    },
}

impl Deployment {
    /// `golive rollback`: start the Rollback Steps with the authority the
    /// document names: the automatic role alone when a gate raised the
    /// decision automatically, otherwise every manual role, signed by
    /// distinct people.
    pub async fn rollback(
        &self,
        name: &str,
        role: &str,
        reason: &str,
        roster: Option<&Path>,
        l: &dyn Listener,
    ) -> Result<RolledBack> {
        self.rollback_signed(name, role, reason, roster, None, l)
            .await
    }

    /// [`Deployment::rollback`], its signature signed with the person's
    /// SSH key ([`crate::sshsig`]) when `signer` is given.
    pub async fn rollback_signed(
        &self,
        name: &str,
        role: &str,
        reason: &str,
        roster: Option<&Path>,
        signer: Option<crate::sshsig::Signer<'_>>,
        l: &dyn Listener,
    ) -> Result<RolledBack> {
        let _lock = self.lock().await?;
        let rb = &self.rb;
        let (person, team) = self.person_and_team(roster, name, Some(role))?;
        holds(&person, role)?;
        let k = self.kept(l).await?;
        if k.rollback_started.is_some() {
            return Err(Error::refused(
                K::RollingBack,
                "the rollback has started already",
            ));
        }
        if k.ended.is_some() {
            return Err(Error::refused(K::Ended, "the deployment has ended"));
        }
        let (auto, manual) = lifecycle::rollback_authority(rb, &team);
        let automatic = k
            .rollback_raised
            .as_ref()
            .is_some_and(|e| e.data["authority"] == "automatic");
        let start = |signers: Vec<Value>| {
            NewEvent::new(
                "rollback.started",
                json!({ "reason": reason, "authority": if automatic { "automatic" } else { "manual" }, "signers": signers }),
            )
        };
        if automatic && role.eq_ignore_ascii_case(&auto) {
            let mut started =
                start(vec![json!({ "name": person.name, "role": role })]).actor(&person.name);
            started.data["role"] = json!(role);
            if let Some(sign) = signer {
                self.sign_act(sign, &mut started, &person, &k, "the rollback".into())?;
            }
            self.append(&[started]).await?;
            return Ok(RolledBack::Automatic {
                name: person.name,
                role: role.to_string(),
            });
        }
        if !manual.iter().any(|r| r.eq_ignore_ascii_case(role)) {
            let at = rb
                .stages
                .iter()
                .position(|s| s.kind == StageKind::Rollback)
                .map(|s| At::stage(rb, s));
            return Err(Error::Refused(crate::Refusal {
                kind: K::WrongRole,
                message: format!(
                    "a rollback is decided by {}{}",
                    manual.join(" + "),
                    if automatic {
                        format!(", or by the {auto} alone")
                    } else {
                        format!(" (the {auto} alone only when a gate raised it)")
                    }
                ),
                at,
            }));
        }
        let sigs = &k.rollback_signatures;
        distinct_signers(sigs, &person.name, role, "a rollback")?;
        let mut signature = NewEvent::new(
            "rollback.signature",
            json!({ "role": role, "reason": reason }),
        )
        .actor(&person.name);
        if let Some(sign) = signer {
            self.sign_act(sign, &mut signature, &person, &k, "the rollback".into())?;
        }
        let mut new = vec![signature];
        let roles: BTreeSet<String> = sigs
            .iter()
            .filter_map(|e| e.data["role"].as_str().map(str::to_lowercase))
            .chain(std::iter::once(role.to_lowercase()))
            .collect();
        let all = manual.iter().all(|r| roles.contains(&r.to_lowercase()));
        if all {
            let signers = sigs
                .iter()
                .map(|e| json!({ "name": e.actor, "role": e.data["role"] }))
                .chain(std::iter::once(
                    json!({ "name": person.name, "role": role }),
                ))
                .collect();
            new.push(start(signers));
        }
        self.append(&new).await?;
        Ok(if all {
            RolledBack::Started { by: manual }
        } else {
            RolledBack::Signed {
                name: person.name,
                role: role.to_string(),
                authority: manual,
            }
        })
    }
}

/// A decision signed by the holders of several roles needs distinct people
/// and one signature per role.
fn distinct_signers(
    sigs: &[golive_store::Event],
    name: &str,
    role: &str,
    what: &str,
) -> Result<()> {
    for sig in sigs {
        if sig
            .actor
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(name))
        {
            return Err(Error::refused(
                K::SignedAlready,
                format!(
                    "{what} needs distinct people: {name} signed already as {}",
                    sig.data["role"].as_str().unwrap_or("?")
                ),
            ));
        }
        if sig.data["role"]
            .as_str()
            .is_some_and(|r| r.eq_ignore_ascii_case(role))
        {
            return Err(Error::refused(
                K::SignedAlready,
                format!("the {role} signed already"),
            ));
        }
    }
    Ok(())
}

/// A signature of the decision to continue instead of rolling back.
#[derive(Debug, Clone, PartialEq)]
pub enum Continued {
    /// Every role of the manual rollback authority signed: the raised
    /// decision is resolved, the deployment goes on.
    Resolved { by: Vec<String> },
    /// Signed; these roles have still to sign.
    Signed { waiting: Vec<String> },
}

impl Deployment {
    /// `golive rollback --continue`: the people of the manual rollback
    /// authority decide, with a reason each, not to roll back a raised
    /// decision. Once all have signed the decision is resolved, recorded
    /// with the reason it was raised for; a later failure raises it again.
    pub async fn continue_instead(
        &self,
        name: &str,
        role: &str,
        reason: &str,
        roster: Option<&Path>,
        l: &dyn Listener,
    ) -> Result<Continued> {
        self.continue_signed(name, role, reason, roster, None, l)
            .await
    }

    /// [`Deployment::continue_instead`], its signature signed with the
    /// person's SSH key ([`crate::sshsig`]) when `signer` is given.
    pub async fn continue_signed(
        &self,
        name: &str,
        role: &str,
        reason: &str,
        roster: Option<&Path>,
        signer: Option<crate::sshsig::Signer<'_>>,
        l: &dyn Listener,
    ) -> Result<Continued> {
        let _lock = self.lock().await?;
        let rb = &self.rb;
        let (person, team) = self.person_and_team(roster, name, Some(role))?;
        holds(&person, role)?;
        if reason.trim().is_empty() {
            return Err(Error::refused(
                K::Incomplete,
                "a decision to continue needs its reason (--reason)",
            ));
        }
        let k = self.kept(l).await?;
        if k.ended.is_some() {
            return Err(Error::refused(K::Ended, "the deployment has ended"));
        }
        if k.rollback_started.is_some() {
            return Err(Error::refused(
                K::RollingBack,
                "the rollback has started: it runs to its end",
            ));
        }
        let Some(raised) = &k.rollback_raised else {
            return Err(Error::refused(
                K::NothingRaised,
                "no rollback decision is raised: there is nothing to continue from",
            ));
        };
        let (_, manual) = lifecycle::rollback_authority(rb, &team);
        if !manual.iter().any(|r| r.eq_ignore_ascii_case(role)) {
            return Err(Error::refused(
                K::WrongRole,
                format!(
                    "continuing instead of rolling back is decided by {}",
                    manual.join(" + ")
                ),
            ));
        }
        distinct_signers(
            &k.rollback_continues,
            &person.name,
            role,
            "a decision to continue",
        )?;
        let mut signature = NewEvent::new(
            "rollback.continue",
            json!({ "role": role, "reason": reason }),
        )
        .actor(&person.name);
        if let Some(sign) = signer {
            self.sign_act(
                sign,
                &mut signature,
                &person,
                &k,
                "the decision to continue".into(),
            )?;
        }
        let mut new = vec![signature];
        let signed: BTreeSet<String> = k
            .rollback_continues
            .iter()
            .filter_map(|e| e.data["role"].as_str().map(str::to_lowercase))
            .chain(std::iter::once(role.to_lowercase()))
            .collect();
        let waiting: Vec<String> = manual
            .iter()
            .filter(|r| !signed.contains(&r.to_lowercase()))
            .cloned()
            .collect();
        if waiting.is_empty() {
            let signers: Vec<Value> = k
                .rollback_continues
                .iter()
                .map(|e| json!({ "name": e.actor, "role": e.data["role"], "reason": e.data["reason"] }))
                .chain(std::iter::once(
                    json!({ "name": person.name, "role": role, "reason": reason }),
                ))
                .collect();
            new.push(NewEvent::new(
                "rollback.resolved",
                json!({ "decision": "continue", "raised": raised.data["reason"], "signers": signers }),
            ));
        }
        self.append(&new).await?;
        Ok(if waiting.is_empty() {
            Continued::Resolved { by: manual }
        } else {
            Continued::Signed { waiting }
        })
    }
}

/// A deployment ended: SUCCESS (timed from GO against the deployment
/// target) or ROLLED BACK (timed from the rollback's start against the
/// rollback target, when the document gives one).
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub outcome: &'static str,
    pub seconds: f64,
    pub target_seconds: Option<u64>,
    pub health: &'static str,
}

impl Deployment {
    /// `golive finish`: end the deployment as SUCCESS once every procedure
    /// step is done or skipped and every gate the document gives something
    /// to count passed; records its duration (from the GO decision) against
    /// the document's target and the production health of the last run.
    pub async fn finish(
        &self,
        name: &str,
        roster: Option<&Path>,
        now: jiff::Timestamp,
        l: &dyn Listener,
    ) -> Result<Finished> {
        self.finish_signed(name, roster, now, None, l).await
    }

    /// [`Deployment::finish`], the end signed with the person's SSH key
    /// ([`crate::sshsig`]) when `signer` is given.
    pub async fn finish_signed(
        &self,
        name: &str,
        roster: Option<&Path>,
        now: jiff::Timestamp,
        signer: Option<crate::sshsig::Signer<'_>>,
        l: &dyn Listener,
    ) -> Result<Finished> {
        let _lock = self.lock().await?;
        let rb = &self.rb;
        let person = self.person(roster, name, None)?;
        let k = self.kept(l).await?;
        let Some(go) = k.go() else {
            return Err(Error::refused(K::BeforeGo, "no GO decision"));
        };
        if k.ended.is_some() {
            return Err(Error::refused(K::Ended, "the deployment has ended"));
        }
        if k.rollback_started.is_some() {
            return self.finish_rolled_back(&k, &person, now, signer).await;
        }
        if let Some(raised) = &k.rollback_raised {
            return Err(Error::refused(
                K::RollbackOpen,
                format!(
                    "a rollback decision is open ({}): roll back (golive rollback --as NAME --role ROLE --reason WHY), or record the decision to continue (golive rollback --continue --as NAME --role ROLE --reason WHY) by {}",
                    raised.data["reason"]
                        .as_str()
                        .unwrap_or("no reason recorded"),
                    lifecycle::rollback_authority(rb, &self.team(roster)?)
                        .1
                        .join(" + ")
                ),
            ));
        }
        if let Some(&open) = procedure::procedure_steps(rb)
            .iter()
            .find(|&&i| k.step_done(&rb.items[i].id).is_none())
        {
            return Err(Error::refused_at(
                K::StepsOpen,
                format!("procedure step {} is not done", rb.items[open].address),
                At::item(rb, open),
            ));
        }
        for which in lifecycle::required_gates(rb).into_iter().map(Gate::name) {
            match k.last_gate(which) {
                Some(g) if g.data["result"] == "pass" => {}
                Some(g) => {
                    return Err(Error::refused(
                        K::GateNotPassed,
                        format!(
                            "the {which} gate failed ({}/{})",
                            g.data["passed"], g.data["total"]
                        ),
                    ));
                }
                None => {
                    return Err(Error::refused(
                        K::GateNotPassed,
                        format!("the {which} gate has not been evaluated (golive gate {which})"),
                    ));
                }
            }
        }
        let took = seconds_between(&go.at, &now.to_string()).unwrap_or(0.0);
        let target = lifecycle::duration_target(rb);
        let health = if states(rb, &k)
            .values()
            .flat_map(|s| s.checks.iter())
            .all(|c| c == "passed")
        {
            "HEALTHY"
        } else {
            "DEGRADED"
        };
        let mut end = NewEvent::new(
            "deployment.ended",
            json!({ "outcome": "SUCCESS", "duration_seconds": took, "target_seconds": target, "within_target": took < target as f64, "health": health }),
        )
        .actor(&person.name);
        if let Some(sign) = signer {
            self.sign_act(sign, &mut end, &person, &k, "the end (SUCCESS)".into())?;
        }
        self.append(&[end]).await?;
        Ok(Finished {
            outcome: "SUCCESS",
            seconds: took,
            target_seconds: Some(target),
            health,
        })
    }

    /// `finish` of a deployment rolling back: once the Rollback Steps (or
    /// the one manual rollback step) are done, it ends ROLLED BACK, timed
    /// from the rollback's start against the document's rollback target.
    async fn finish_rolled_back(
        &self,
        k: &Kept,
        person: &Person,
        now: jiff::Timestamp,
        signer: Option<crate::sshsig::Signer<'_>>,
    ) -> Result<Finished> {
        let rb = &self.rb;
        let (steps, target) = lifecycle::rollback_steps(rb);
        if let Some(&open) = steps
            .iter()
            .find(|&&i| k.step_done(&rb.items[i].id).is_none())
        {
            return Err(Error::refused_at(
                K::StepsOpen,
                format!(
                    "rollback step {} {} is not done",
                    rb.items[open].address, rb.items[open].title
                ),
                At::item(rb, open),
            ));
        }
        if steps.is_empty() && k.step_done(procedure::ROLLBACK_STEP).is_none() {
            return Err(Error::refused(
                K::StepsOpen,
                "the rollback is not done: the document gives no Rollback Steps, so it is one step; mark it done once production is back (golive done rollback --as NAME)",
            ));
        }
        let (end, _) = procedure::rolled_back(k, target, &now.to_string())
            .ok_or_else(|| Error::refused(K::WrongSequence, "no rollback has started"))?;
        let seconds = end.data["rollback_seconds"].as_f64().unwrap_or(0.0);
        let mut end = end.actor(&person.name);
        if let Some(sign) = signer {
            self.sign_act(sign, &mut end, person, k, "the end (ROLLED BACK)".into())?;
        }
        self.append(&[end]).await?;
        Ok(Finished {
            outcome: "ROLLED BACK",
            seconds,
            target_seconds: target,
            health: "ROLLED BACK",
        })
    }
}

/// A stage's completion, as `status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StageStatus {
    pub stage: usize,
    pub complete: usize,
    pub total: usize,
    /// Each group with items: (group, complete, total).
    pub groups: Vec<(usize, usize, usize)>,
}

/// What `golive status` shows: the deployment's state, read once.
#[derive(Debug, Clone)]
pub struct Status {
    pub kept: Kept,
    pub state: &'static str,
    /// Each stage with items other than steps.
    pub stages: Vec<StageStatus>,
    /// Every open item of the stages that are due.
    pub pending: Vec<OpenItem>,
    /// Outcomes of the checks of the last run, counted.
    pub checks: BTreeMap<String, usize>,
    pub signed_items: usize,
    /// The roles the deployment uses, and the defaults taken.
    pub roles: lifecycle::Roles,
}

impl Deployment {
    /// The deployment's status, from its kept state, with the roles the
    /// roster's `[roles]` gives where the document says nothing.
    pub async fn status(&self, l: &dyn Listener) -> Result<Status> {
        let k = self.kept(l).await?;
        let mut s = status_of(&self.rb, k);
        s.roles = lifecycle::roles(&self.rb, &self.team(None)?);
        Ok(s)
    }
}

/// The status a state gives, for `rb` (with the roles the document states,
/// or their defaults).
pub fn status_of(rb: &Runbook, k: Kept) -> Status {
    let st = states(rb, &k);
    let done = |list: &mut dyn Iterator<Item = usize>| {
        let list: Vec<usize> = list
            .filter(|&i| rb.items[i].kind != ItemKind::Step)
            .collect();
        let n = list
            .iter()
            .filter(|&&i| complete(rb, i, st.get(&rb.items[i].id)))
            .count();
        (n, list.len())
    };
    let mut stages = Vec::new();
    for (si, s) in rb.stages.iter().enumerate() {
        let (complete, total) = done(&mut s.all_items());
        if total == 0 {
            continue;
        }
        let groups = s
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| !g.items.is_empty())
            .map(|(gi, g)| {
                let (c, t) = done(&mut g.items.iter().copied());
                (gi, c, t)
            })
            .collect();
        stages.push(StageStatus {
            stage: si,
            complete,
            total,
            groups,
        });
    }
    let mut checks: BTreeMap<String, usize> = BTreeMap::new();
    for s in st.values() {
        for c in &s.checks {
            *checks.entry(c.clone()).or_default() += 1;
        }
    }
    let signed_items = st.values().filter(|s| !s.signed_by.is_empty()).count();
    Status {
        state: lifecycle::state(&k),
        pending: lifecycle::open_items(rb, &k),
        stages,
        checks,
        signed_items,
        roles: lifecycle::roles(rb, &lifecycle::TeamRoles::default()),
        kept: k,
    }
}
