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
        Ok(k)
    }

    /// Its write lock: held from a command's read of the state to its append.
    pub async fn lock(&self) -> Result<WriteLock> {
        Ok(self.store.lock(&self.row.id).await?)
    }

    async fn append(&self, events: &[NewEvent]) -> Result<()> {
        self.store.append(&self.row.id, events).await?;
        Ok(())
    }

    /// The person named `name` on the deployment's roster (`roster_file`,
    /// or the `roster.toml` beside the runbook, or the document's Contact
    /// Information), or the refusal that says how to add them.
    fn person(&self, roster_file: Option<&Path>, name: &str, role: Option<&str>) -> Result<Person> {
        let roster = roster_for(&self.rb, roster_file)?;
        roster.person(name).cloned().ok_or_else(|| {
            Error::refused(
                K::NotOnRoster,
                format!("{}\nor pass --roster FILE", roster.absent(name, role)),
            )
        })
    }
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
    pub comment: Option<&'a str>,
    pub evidence: &'a [PathBuf],
    pub roster: Option<&'a Path>,
}

/// A sign-off recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    pub item: usize,
    pub name: String,
    pub role: String,
}

impl Deployment {
    pub async fn sign(&self, a: &Sign<'_>, l: &dyn Listener) -> Result<Signed> {
        let _lock = self.lock().await?;
        let rb = &self.rb;
        let item = item_named(rb, a.item, "; sign the item")?;
        let it = &rb.items[item];
        lifecycle::signable(rb, item)
            .map_err(|why| Error::refused_at(K::NotSignable, why, At::item(rb, item)))?;
        let person = self.person(a.roster, a.name, Some(a.role))?;
        holds(&person, a.role)?;
        if let Some(resp) = it.field("Responsible")
            && !resp.value.trim().eq_ignore_ascii_case(a.role.trim())
        {
            return Err(Error::refused_at(
                K::WrongRole,
                format!(
                    "{} {} is for the {} to sign, not the {}",
                    it.address, it.title, resp.value, a.role
                ),
                At::item(rb, item),
            ));
        }
        let k = self.kept(l).await?;
        if let Some(prev) = k.signoff_by(&it.id, &person.name) {
            return Err(Error::refused_at(
                K::SignedAlready,
                format!(
                    "{} already signed {} at {}",
                    person.name, it.address, prev.at
                ),
                At::item(rb, item),
            ));
        }
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
        let event = NewEvent::new(
            "signoff",
            json!({
                "role": a.role, "comment": a.comment, "evidence": evidence,
                "address": it.address, "title": it.title,
            }),
        )
        .item(&it.id)
        .actor(a.name);
        self.append(&[event]).await?;
        Ok(Signed {
            item,
            name: a.name.to_string(),
            role: a.role.to_string(),
        })
    }
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
        let required = lifecycle::decision_signers(rb);
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
        let person = self.person(a.roster, a.name, Some(a.role))?;
        holds(&person, a.role)?;
        if !a.go && a.reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(Error::refused(
                K::Incomplete,
                "a NO-GO needs its reason (--reason)",
            ));
        }
        let k = self.kept(l).await?;
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
        let mut new = vec![
            NewEvent::new(
                "decision.signature",
                json!({ "verdict": verdict, "role": a.role, "reason": a.reason }),
            )
            .actor(&person.name),
        ];
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
        Ok(Decided {
            verdict,
            name: person.name,
            role: a.role.to_string(),
            required,
            waiting,
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
    pub step: usize,
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
        let mut _running = None;
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
                StepRun::Succeeded(v, running) => {
                    ran = v;
                    _running = Some(running);
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
        Ok(Ok(StepDone {
            step,
            name: person.name,
            skipped: a.skipped,
            lines,
        }))
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
        let person = self.person(roster, name, None)?;
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
        let Tally {
            passed,
            total,
            target,
        } = tally;
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
            let (auto, manual) = lifecycle::rollback_authority(rb);
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
                new.push(lifecycle::automatic_start(rb, &reason));
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
        let _lock = self.lock().await?;
        let rb = &self.rb;
        let person = self.person(roster, name, Some(role))?;
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
        let (auto, manual) = lifecycle::rollback_authority(rb);
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
            self.append(&[
                start(vec![json!({ "name": person.name, "role": role })]).actor(&person.name)
            ])
            .await?;
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
        for sig in sigs {
            if sig
                .actor
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(&person.name))
            {
                return Err(Error::refused(
                    K::SignedAlready,
                    format!(
                        "a rollback needs distinct people: {} signed already as {}",
                        person.name,
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
        let mut new = vec![
            NewEvent::new(
                "rollback.signature",
                json!({ "role": role, "reason": reason }),
            )
            .actor(&person.name),
        ];
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

/// A deployment ended as SUCCESS.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub seconds: f64,
    pub target_seconds: u64,
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
        let _lock = self.lock().await?;
        let rb = &self.rb;
        let person = self.person(roster, name, None)?;
        let k = self.kept(l).await?;
        let Some(go) = k.go() else {
            return Err(Error::refused(K::BeforeGo, "no GO decision"));
        };
        if k.ended.is_some() || k.rollback_started.is_some() {
            return Err(Error::refused(
                K::Ended,
                "the deployment has ended or is rolling back",
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
        let end = NewEvent::new(
            "deployment.ended",
            json!({ "outcome": "SUCCESS", "duration_seconds": took, "target_seconds": target, "within_target": took < target as f64, "health": health }),
        )
        .actor(&person.name);
        self.append(&[end]).await?;
        Ok(Finished {
            seconds: took,
            target_seconds: target,
            health,
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
}

impl Deployment {
    /// The deployment's status, from its kept state.
    pub async fn status(&self, l: &dyn Listener) -> Result<Status> {
        let k = self.kept(l).await?;
        Ok(status_of(&self.rb, k))
    }
}

/// The status a state gives, for `rb`.
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
        kept: k,
    }
}
