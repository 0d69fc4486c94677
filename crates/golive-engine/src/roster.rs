//! Who may sign: people and the roles they hold, from a `roster.toml` or from
//! the document's own Contact Information section once its names are filled.

use golive_runbook::Runbook;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A person and the roles they hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub name: String,
    pub roles: Vec<String>,
    pub contact: Option<String>,
    /// The public keys their signed sign-offs are checked against
    /// (`ssh_keys = ["ssh-ed25519 AAAA… dana@laptop"]`).
    pub ssh_keys: Vec<String>,
}

/// Everyone who may sign, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Roster {
    pub people: BTreeMap<String, Person>,
    /// Where it came from, for messages.
    pub source: String,
    /// The roster file it was read from, or, for one taken from the
    /// document, the file that would have been read first
    /// ([`Roster::default_file`]).
    pub file: PathBuf,
    /// Read from `file` (else from the document's Contact Information).
    pub from_file: bool,
    /// The roles the team states for what its documents do not (`[roles]`).
    pub team: TeamRoles,
    /// Who a name the documents send to stands for (`[groups]`): addresses,
    /// names of people, roles or other groups.
    ///
    /// ```toml
    /// [groups]
    /// "All stakeholders" = ["Executive team", "Deployment Lead", "ops@example.test"]
    /// "Executive team" = ["cto@example.test"]
    /// ```
    pub groups: BTreeMap<String, Vec<String>>,
}

/// A roster file's `[roles]`: who signs the go/no-go decision, who decides
/// a rollback and in whose name an automatic one runs, for documents that
/// do not say. What a document states comes first.
///
/// ```toml
/// [roles]
/// decision = ["Release Manager"]
/// rollback = ["Release Manager", "SRE on call"]
/// automatic_rollback = "SRE on call"
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamRoles {
    pub decision: Vec<String>,
    pub rollback: Vec<String>,
    pub automatic_rollback: Option<String>,
}

impl TeamRoles {
    fn from_table(t: &toml::Table, source: &str) -> Result<TeamRoles, String> {
        let list = |key: &str| -> Result<Vec<String>, String> {
            match t.get(key) {
                None => Ok(Vec::new()),
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .ok_or_else(|| {
                                format!("{source}: [roles] {key} holds role names (strings)")
                            })
                    })
                    .collect(),
                Some(_) => Err(format!(
                    "{source}: [roles] {key} is a list of role names: {key} = [\"Release Manager\"]"
                )),
            }
        };
        for key in t.keys() {
            if !["decision", "rollback", "automatic_rollback"].contains(&key.as_str()) {
                return Err(format!(
                    "{source}: [roles] has no `{key}`: it takes decision, rollback and automatic_rollback"
                ));
            }
        }
        let automatic_rollback = match t.get("automatic_rollback") {
            None => None,
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(_) => {
                return Err(format!(
                    "{source}: [roles] automatic_rollback is one role name: automatic_rollback = \"SRE on call\""
                ));
            }
        };
        Ok(TeamRoles {
            decision: list("decision")?,
            rollback: list("rollback")?,
            automatic_rollback,
        })
    }
}

impl Roster {
    /// The roster file of a runbook when none is named: `roster.toml` beside
    /// it.
    pub fn default_file(runbook_path: &str) -> PathBuf {
        Path::new(runbook_path).with_file_name("roster.toml")
    }

    /// A roster file:
    ///
    /// ```toml
    /// [[person]]
    /// name = "Release Manager on duty"
    /// roles = ["Deployment Lead", "DevOps Engineer"]
    /// contact = "release@example.test"
    /// ```
    pub fn from_toml(text: &str, source: &str) -> Result<Roster, String> {
        let table = parse_table(text, source)?;
        let mut out = Roster {
            people: BTreeMap::new(),
            source: source.to_string(),
            file: PathBuf::from(source),
            from_file: true,
            team: match table.get("roles") {
                None => TeamRoles::default(),
                Some(toml::Value::Table(t)) => TeamRoles::from_table(t, source)?,
                Some(_) => return Err(format!("{source}: [roles] is a table")),
            },
            groups: groups_of(&table, source)?,
        };
        let list = match table.get("person") {
            Some(toml::Value::Array(a)) => a.clone(),
            _ => {
                return Err(format!(
                    "{source}: expected [[person]] entries with name and roles"
                ));
            }
        };
        for (i, p) in list.iter().enumerate() {
            let name = p
                .get("name")
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("{source}: person {} has no name", i + 1))?;
            let roles: Vec<String> = p
                .get("roles")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if roles.is_empty() {
                return Err(format!("{source}: {name} holds no role"));
            }
            let contact = p
                .get("contact")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let ssh_keys = match p.get("ssh_keys") {
                None => Vec::new(),
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .map(|k| {
                        k.as_str().map(|k| k.trim().to_string()).ok_or_else(|| {
                            format!("{source}: {name}'s ssh_keys are public keys as ssh-keygen writes them: ssh_keys = [\"ssh-ed25519 AAAA… {name}\"]")
                        })
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(format!(
                        "{source}: {name}'s ssh_keys is a list: ssh_keys = [\"ssh-ed25519 AAAA…\"]"
                    ));
                }
            };
            out.add(name, &roles, contact);
            if let Some(person) = out.people.get_mut(name) {
                person.ssh_keys.extend(ssh_keys);
            }
        }
        Ok(out)
    }

    /// Only the `[groups]` of a roster file (`golive serve --groups`: the
    /// people are the server's); line and column on a file that is not TOML.
    pub fn groups_from_toml(
        text: &str,
        source: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, String> {
        let table = parse_table(text, source)?;
        groups_of(&table, source)
    }

    /// The people named in the document's Contact Information section:
    /// `- Role: Name (contact)` lines whose name is filled in.
    pub fn from_document(rb: &Runbook) -> Roster {
        let mut out = Roster {
            people: BTreeMap::new(),
            source: format!("{} (Contact Information)", rb.path),
            file: Roster::default_file(&rb.path),
            from_file: false,
            team: TeamRoles::default(),
            groups: BTreeMap::new(),
        };
        let Some(group) = rb
            .groups()
            .map(|(_, g)| g)
            .find(|g| g.title().to_lowercase().contains("contact information"))
        else {
            return out;
        };
        let start = group.heading.loc.start;
        let end = rb
            .headings
            .iter()
            .find(|h| h.loc.start > start && h.level <= 3)
            .map_or(rb.source.len(), |h| h.loc.start);
        for line in rb.source[start..end].lines() {
            let t = line.trim_start();
            let Some(rest) = t.strip_prefix("- ").or_else(|| t.strip_prefix("* ")) else {
                continue;
            };
            let Some((role, who)) = rest.split_once(':') else {
                continue;
            };
            let (name, contact) = match who.split_once('(') {
                Some((n, c)) => (n.trim(), Some(c.trim_end_matches(')').trim().to_string())),
                None => (who.trim(), None),
            };
            let role = golive_runbook::text::plain(role);
            if name.is_empty()
                || name.contains("____")
                || (name.starts_with('[') && name.ends_with(']'))
            {
                continue;
            }
            out.add(name, &[role], contact.filter(|c| !c.contains('[')));
        }
        out
    }

    fn add(&mut self, name: &str, roles: &[String], contact: Option<String>) {
        let p = self
            .people
            .entry(name.to_string())
            .or_insert_with(|| Person {
                name: name.to_string(),
                roles: Vec::new(),
                contact: None,
                ssh_keys: Vec::new(),
            });
        for r in roles {
            if !p.roles.iter().any(|x| x.eq_ignore_ascii_case(r)) {
                p.roles.push(r.clone());
            }
        }
        if p.contact.is_none() {
            p.contact = contact;
        }
    }

    /// One `[[person]]` entry as [`Roster::from_toml`] reads it, for a
    /// person named `name` holding `role` (a placeholder when none is known).
    pub fn entry(name: &str, role: Option<&str>) -> String {
        let quoted = |v: &str| toml::Value::String(v.to_string()).to_string();
        format!(
            "[[person]]\nname = {}\nroles = [{}]",
            quoted(name.trim()),
            quoted(
                role.map(str::trim)
                    .filter(|r| !r.is_empty())
                    .unwrap_or("ROLE")
            )
        )
    }

    /// Why `name` is not on this roster, who is, and how to add them: the
    /// file to write and the entry it takes. A roster file replaces the
    /// document's Contact Information, so when the roster came from there
    /// the message says that everyone goes into the file.
    pub fn absent(&self, name: &str, role: Option<&str>) -> String {
        let names: Vec<&str> = self.people.values().map(|p| p.name.as_str()).collect();
        let who = if names.is_empty() {
            "it names nobody yet".to_string()
        } else {
            format!("it names {}", names.join(", "))
        };
        let file = self.file.display();
        let instead = if self.from_file {
            String::new()
        } else if names.is_empty() {
            format!(", and there is no {file}")
        } else {
            format!(
                ", and there is no {file} (a roster file replaces the Contact Information: list {} there too)",
                names.join(", ")
            )
        };
        format!(
            "{} is not in the roster ({}): {who}{instead}; add one to {file}:\n{}",
            name.trim(),
            self.source,
            Roster::entry(name, role)
        )
    }

    /// The person named `name` (case-insensitive).
    /// The email addresses `name` stands for: itself when it is one, a
    /// group's members (`[groups]`), a person's contact, the contacts of
    /// the people holding a role; `None` when it resolves to no address.
    pub fn addresses(&self, name: &str) -> Option<Vec<String>> {
        let mut out = Vec::new();
        self.collect(name, &mut out, 0);
        out.dedup();
        (!out.is_empty()).then_some(out)
    }

    fn collect(&self, name: &str, out: &mut Vec<String>, depth: usize) {
        let name = name.trim();
        let push = |out: &mut Vec<String>, a: &str| {
            let a = a.trim().trim_start_matches("mailto:");
            if is_address(a) && !out.iter().any(|o| o.eq_ignore_ascii_case(a)) {
                out.push(a.to_string());
            }
        };
        if is_address(name) {
            push(out, name);
            return;
        }
        if depth > 8 {
            return;
        }
        if let Some((_, members)) = self
            .groups
            .iter()
            .find(|(g, _)| g.eq_ignore_ascii_case(name))
        {
            for m in members {
                self.collect(m, out, depth + 1);
            }
            return;
        }
        if let Some(p) = self.person(name) {
            if let Some(c) = &p.contact {
                push(out, c);
            }
            return;
        }
        for p in self.people.values().filter(|p| p.holds(name)) {
            if let Some(c) = &p.contact {
                push(out, c);
            }
        }
    }

    pub fn person(&self, name: &str) -> Option<&Person> {
        self.people
            .values()
            .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
    }
}

impl Person {
    pub fn holds(&self, role: &str) -> bool {
        self.roles
            .iter()
            .any(|r| r.eq_ignore_ascii_case(role.trim()))
    }
}

/// A roster file's `[groups]`: name → members.
fn groups_of(table: &toml::Table, source: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let t = match table.get("groups") {
        None => return Ok(BTreeMap::new()),
        Some(toml::Value::Table(t)) => t,
        Some(_) => return Err(format!("{source}: [groups] is a table of lists")),
    };
    t.iter()
        .map(|(k, v)| {
            let members = v
                .as_array()
                .map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_string)).collect())
                .ok_or_else(|| {
                    format!(
                        "{source}: [groups] \"{k}\" is a list: \"{k}\" = [\"ops@example.test\", \"Deployment Lead\"]"
                    )
                })?;
            Ok((k.clone(), members))
        })
        .collect()
}

/// A roster file as TOML, or what is wrong with it at `file:line:column`.
fn parse_table(text: &str, source: &str) -> Result<toml::Table, String> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let at = e.span().map(|sp| {
            let before = &text[..sp.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(":{line}:{col}")
        });
        format!("{source}{}: {}", at.unwrap_or_default(), e.message())
    })
}

/// `someone@example.test`, roughly: one `@` with text on both sides and a
/// dot after it, no spaces.
fn is_address(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roster_file_and_document() {
        let r = Roster::from_toml(
            "[[person]]\nname = \"Kim Ito\"\nroles = [\"DevOps Engineer\", \"Deployment Lead\"]\n",
            "roster.toml",
        )
        .expect("parses");
        let p = r.person("kim ito").expect("found");
        assert!(p.holds("devops engineer") && !p.holds("Product Manager"));
        assert!(Roster::from_toml("[[person]]\nname = \"X\"\n", "r.toml").is_err());
        // a file that is not TOML names its line and column
        let e = Roster::from_toml("a = 1\nx = [", "r.toml").unwrap_err();
        assert!(e.starts_with("r.toml:2:6: "), "{e}");

        let doc = "## Appendices\n\n### A. Contact Information\n\n- Deployment Lead: Kim Ito (kim@example.test)\n- DevOps Engineer: ________________ ([EMAIL])\n\n### B. Links\n- Other: Not A Person\n";
        let rb = golive_runbook::parse_runbook("d.md", doc);
        let r = Roster::from_document(&rb);
        assert_eq!(r.people.len(), 1);
        assert_eq!(
            r.person("Kim Ito").map(|p| p.roles.clone()),
            Some(vec!["Deployment Lead".to_string()])
        );
    }

    /// The entry a refusal shows is what a roster file takes, quotes and all.
    #[test]
    fn the_entry_shown_for_an_absent_person_reads_back() {
        let rb = golive_runbook::parse_runbook(
            "ops/release.md",
            "# R\n\n## Pre-deployment\n\n- [ ] A\n",
        );
        let r = Roster::from_document(&rb);
        let why = r.absent("Sam \"Ops\" O'Neil", Some("Release Manager"));
        assert!(why.contains("it names nobody yet, and there is no ops/roster.toml; add one to ops/roster.toml:\n[[person]]"), "{why}");
        let entry = &why[why.find("[[person]]").expect("entry")..];
        let back = Roster::from_toml(entry, "ops/roster.toml").expect("the entry parses");
        let p = back.person("Sam \"Ops\" O'Neil").expect("named");
        assert!(p.holds("Release Manager"));
        assert!(Roster::entry("X", None).ends_with("roles = [\"ROLE\"]"));
    }

    #[test]
    fn names_resolve_to_addresses_through_groups_people_and_roles() {
        let r = Roster::from_toml(
            "[[person]]\nname = \"Dana\"\nroles = [\"Deployment Lead\"]\ncontact = \"dana@example.test\"\n\n[[person]]\nname = \"Ola\"\nroles = [\"DevOps Engineer\"]\ncontact = \"+1 555 0100\"\n\n[groups]\n\"All stakeholders\" = [\"Executive team\", \"Deployment Lead\", \"ops@example.test\"]\n\"Executive team\" = [\"cto@example.test\", \"All stakeholders\"]\n",
            "roster.toml",
        )
        .expect("roster");
        // a cycle (the Executive team names All stakeholders) ends
        let mut all = r.addresses("all stakeholders").expect("addresses");
        all.sort();
        assert_eq!(
            all,
            ["cto@example.test", "dana@example.test", "ops@example.test"]
        );
        assert_eq!(r.addresses("Dana").expect("person"), ["dana@example.test"]);
        // a contact that is no address, a name nobody knows: none
        assert_eq!(r.addresses("DevOps Engineer"), None);
        assert_eq!(r.addresses("Customer success"), None);
        let bad = Roster::from_toml(
            "[[person]]\nname = \"A\"\nroles = [\"R\"]\n[groups]\nx = \"a@b.test\"\n",
            "r.toml",
        );
        assert!(bad.unwrap_err().contains("[groups] \"x\" is a list"));
    }
}
