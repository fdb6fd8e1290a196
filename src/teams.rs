//! Teams as of an instant: who is in each team when a job fires.
//!
//! A team's members are a fixed list (`learners`), or the drivers that carry
//! a tag or any of its descendants (`tag`, `tag_id`, and every team that
//! `[teams_from_tags]` makes from a parent tag's children). Tags move: a
//! driver who changes yards is in the old team's report until the instant
//! of the move and in the new one's after it. So membership is always
//! resolved for one instant, by [`resolve`] (pure: the tag tree and the
//! drivers with their tags as of that instant), fed by
//! `mirror::teams_at` (the mirror's tag history) or [`from_api`] (`/tags` and `/fleet/drivers`
//! with `tagIds`: the API knows only the present).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context as _, bail};

use crate::config::{Config, Filters, Members, Team};
use crate::learner::LearnerId;
use crate::samsara::{Client, Driver, Tag};

/// A team with its members as of one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The team: its name, display name, manager, escalation and source.
    pub team: Team,
    /// Its members as of the instant.
    pub members: BTreeSet<LearnerId>,
    /// Where the members come from, for people: `learners`, `tag North Yard`
    /// or `teams_from_tags`.
    pub source: String,
}

/// Teams resolved for one instant, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Teams {
    by_name: BTreeMap<String, Resolved>,
    /// What a reader of the reports should know about the membership (an
    /// instant before the mirror knew any tags).
    pub warnings: Vec<String>,
}

impl Teams {
    /// The team called `name`, if it was resolved.
    pub fn get(&self, name: &str) -> Option<&Resolved> {
        self.by_name.get(name)
    }

    /// Adds (or replaces) one resolved team.
    pub fn insert(&mut self, resolved: Resolved) {
        self.by_name.insert(resolved.team.name.clone(), resolved);
    }

    /// Every resolved team, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Resolved> {
        self.by_name.values()
    }

    /// Every resolved team's name, in order.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// The members of the teams called `names` together (unknown names add nobody).
    pub fn members_of<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> BTreeSet<LearnerId> {
        names
            .into_iter()
            .filter_map(|n| self.by_name.get(n))
            .flat_map(|r| r.members.iter().cloned())
            .collect()
    }

    /// The teams a job with `filters` reports on, in name order: every
    /// team for `per_team` without a team filter, else the ones it names.
    pub fn for_filters(&self, filters: &Filters) -> Vec<&Resolved> {
        if filters.every_team {
            return self.iter().collect();
        }
        let names: BTreeSet<&String> = filters.teams.iter().collect();
        names
            .into_iter()
            .filter_map(|n| self.by_name.get(n))
            .collect()
    }

    /// The teams a job's reports are about: with `per_team`, each of
    /// [`Teams::for_filters`]; otherwise one report for the whole job (`None`).
    pub fn reported(&self, per_team: bool, filters: &Filters) -> Vec<Option<&Resolved>> {
        if !per_team {
            return vec![None];
        }
        self.for_filters(filters).into_iter().map(Some).collect()
    }
}

/// Which teams to resolve.
#[derive(Debug, Clone, Copy)]
pub enum Wanted<'a> {
    /// Every team, those made from tags included (`trainwatch teams`).
    All,
    /// The teams a job's filters name (all of them when it fans out
    /// without a team filter).
    For(&'a Filters),
}

impl Wanted<'_> {
    fn every(&self) -> bool {
        match self {
            Wanted::All => true,
            Wanted::For(f) => f.every_team,
        }
    }

    fn wants(&self, name: &str) -> bool {
        match self {
            Wanted::All => true,
            Wanted::For(f) => f.every_team || f.teams.iter().any(|t| t == name),
        }
    }
}

/// Whether resolving `wanted` needs the organisation's tags and drivers:
/// a wanted team is a tag, or may be made from one.
pub fn needs_tags(config: &Config, wanted: Wanted<'_>) -> bool {
    let config_tags = config
        .teams
        .values()
        .any(|t| wanted.wants(&t.name) && t.learners().is_none());
    let from_tags = config.teams_from_tags.is_some()
        && (wanted.every()
            || match wanted {
                Wanted::All => true,
                Wanted::For(f) => f.teams.iter().any(|t| !config.teams.contains_key(t)),
            });
    config_tags || from_tags
}

/// The organisation's tags as a tree, for finding a tag and its descendants.
#[derive(Debug, Clone, Default)]
pub struct TagTree {
    by_id: BTreeMap<String, Tag>,
    children: HashMap<String, Vec<String>>,
}

impl TagTree {
    /// The tree of `tags` (a tag whose parent is unknown is a root).
    pub fn new(tags: &[Tag]) -> Self {
        let by_id: BTreeMap<String, Tag> = tags.iter().map(|t| (t.id.clone(), t.clone())).collect();
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        for t in by_id.values() {
            if let Some(parent) = &t.parent_tag_id {
                children
                    .entry(parent.clone())
                    .or_default()
                    .push(t.id.clone());
            }
        }
        Self { by_id, children }
    }

    /// The one tag called `name` (exactly); an error naming it when there
    /// is none, or when several tags share the name (then `tag_id` says which).
    pub fn by_name(&self, name: &str) -> anyhow::Result<&Tag> {
        let found: Vec<&Tag> = self.by_id.values().filter(|t| t.name == name).collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => bail!(
                "no tag is named `{}` in the organisation ({} tags; names are matched exactly)",
                crate::names::one_line(name),
                self.by_id.len()
            ),
            many => bail!(
                "{} tags are named `{}` (ids {}): use `tag_id` to say which",
                many.len(),
                crate::names::one_line(name),
                many.iter()
                    .map(|t| t.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The tag with id `id`, or an error naming it.
    pub fn by_id(&self, id: &str) -> anyhow::Result<&Tag> {
        self.by_id.get(id).with_context(|| {
            format!(
                "no tag has the id `{}` in the organisation",
                crate::names::one_line(id)
            )
        })
    }

    /// The direct children of tag `id`, by name.
    pub fn children(&self, id: &str) -> Vec<&Tag> {
        let mut out: Vec<&Tag> = self
            .children
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|c| self.by_id.get(c))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        out
    }

    /// `id` and the ids of all its descendants. Each tag is visited once,
    /// so a cycle in the data (a tag its own ancestor) cannot loop.
    pub fn subtree(&self, id: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![id.to_string()];
        while let Some(next) = todo.pop() {
            if seen.insert(next.clone()) {
                todo.extend(self.children.get(&next).into_iter().flatten().cloned());
            }
        }
        seen
    }
}

/// The drivers carrying any tag in `tags`, as learner ids.
pub fn members(tags: &BTreeSet<String>, drivers: &[Driver]) -> BTreeSet<LearnerId> {
    drivers
        .iter()
        .filter(|d| d.tags.iter().any(|t| tags.contains(&t.id)))
        .map(|d| LearnerId::from_wire(&d.id, "driver"))
        .collect()
}

/// The teams of `config` that `wanted` asks for, with their members given
/// the organisation's `tags` and its `drivers` (each with the tags it had
/// at the instant in question; deactivated ones included). Teams made from
/// tags are named with [`crate::names::path_component`] of the tag's name.
///
/// Fails, naming it, on a tag that does not exist, a team name asked for
/// that neither the config nor a child tag gives, two teams of one name, or
/// a `teams_from_tags.managers` key that names no child tag.
pub fn resolve(
    config: &Config,
    wanted: Wanted<'_>,
    tags: &[Tag],
    drivers: &[Driver],
) -> anyhow::Result<Teams> {
    let tree = TagTree::new(tags);
    let mut out = Teams::default();
    for team in config.teams.values().filter(|t| wanted.wants(&t.name)) {
        let (members, source) = match &team.members {
            Members::Learners(list) => (list.iter().cloned().collect(), "learners".to_string()),
            Members::Tag(name) => {
                let tag = tree
                    .by_name(name)
                    .with_context(|| format!("team {}: `tag`", team.name))?;
                (
                    members(&tree.subtree(&tag.id), drivers),
                    format!("tag {}", tag.name),
                )
            }
            Members::TagId(id) | Members::FromTags(id) => {
                let tag = tree
                    .by_id(id)
                    .with_context(|| format!("team {}: `tag_id`", team.name))?;
                (
                    members(&tree.subtree(&tag.id), drivers),
                    format!("tag {}", tag.name),
                )
            }
        };
        out.by_name.insert(
            team.name.clone(),
            Resolved {
                team: team.clone(),
                members,
                source,
            },
        );
    }
    if let Some(from) = &config.teams_from_tags {
        let parent = tree
            .by_name(&from.parent)
            .context("[teams_from_tags] `parent`")?;
        let children = tree.children(&parent.id);
        let child_names: BTreeSet<&str> = children.iter().map(|c| c.name.as_str()).collect();
        if let Some(stray) = from
            .managers
            .keys()
            .find(|k| !child_names.contains(k.as_str()))
        {
            bail!(
                "[teams_from_tags] `managers` names `{}`, which is not a child tag of `{}` (its children: {})",
                crate::names::one_line(stray),
                crate::names::one_line(&from.parent),
                shown_list(child_names.iter().copied())
            );
        }
        let mut made: BTreeMap<String, &Tag> = BTreeMap::new();
        for child in children {
            let name = crate::names::path_component(&child.name);
            if let Some(other) = made.insert(name.clone(), child) {
                bail!(
                    "[teams_from_tags]: the child tags `{}` (id {}) and `{}` (id {}) of `{}` both make a team named `{name}`: rename one in Samsara",
                    crate::names::one_line(&other.name),
                    other.id,
                    crate::names::one_line(&child.name),
                    child.id,
                    crate::names::one_line(&from.parent)
                );
            }
            if config.teams.contains_key(&name) {
                bail!(
                    "team `{name}` is defined in [teams] and made by [teams_from_tags] from the tag `{}`: rename the [teams] entry",
                    crate::names::one_line(&child.name)
                );
            }
            if !wanted.wants(&name) {
                continue;
            }
            let team = Team {
                name: name.clone(),
                display_name: (child.name != name).then(|| child.name.clone()),
                manager: from.managers.get(&child.name).cloned(),
                escalation: from.escalation.clone(),
                members: Members::FromTags(child.id.clone()),
            };
            out.by_name.insert(
                name,
                Resolved {
                    team,
                    members: members(&tree.subtree(&child.id), drivers),
                    source: "teams_from_tags".into(),
                },
            );
        }
    }
    if let Wanted::For(filters) = wanted
        && let Some(missing) = filters.teams.iter().find(|t| out.get(t).is_none())
    {
        match &config.teams_from_tags {
            Some(from) => bail!(
                "no team `{}`: it is not in [teams], and no child tag of `{}` makes it (teams from tags: {})",
                crate::names::one_line(missing),
                crate::names::one_line(&from.parent),
                shown_list(
                    out.iter()
                        .filter(|r| r.source == "teams_from_tags")
                        .map(|r| r.team.name.as_str())
                )
            ),
            None => bail!("no team `{}` in [teams]", crate::names::one_line(missing)),
        }
    }
    Ok(out)
}

/// `trainwatch teams`: one line per team, columns aligned: name, source,
/// member count, manager (`no manager`: its manager deliveries are skipped).
pub fn lines(teams: &Teams) -> Vec<String> {
    let rows: Vec<[String; 4]> = teams
        .iter()
        .map(|r| {
            let n = r.members.len();
            [
                crate::names::one_line(&r.team.name).into_owned(),
                crate::names::one_line(&r.source).into_owned(),
                format!("{n} member{}", if n == 1 { "" } else { "s" }),
                r.team
                    .manager
                    .as_deref()
                    .map_or("no manager".to_string(), |m| {
                        crate::names::one_line(m).into_owned()
                    }),
            ]
        })
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    rows.iter()
        .map(|[name, source, members, manager]| {
            format!("{name:<w0$}  {source:<w1$}  {members:>w2$}  {manager}")
        })
        .collect()
}

/// `a, b, c` (at most 20, then how many more), or `none`.
fn shown_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    if items.is_empty() {
        return "none".into();
    }
    let mut text = items
        .iter()
        .take(20)
        .map(|i| crate::names::one_line(i).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > 20 {
        text.push_str(&format!(" and {} more", items.len() - 20));
    }
    text
}

/// The teams `wanted` asks for, from the API: `/tags`, then the drivers
/// (active and deactivated) carrying any tag a wanted team covers, through
/// `/fleet/drivers?tagIds=…` in requests of at most 100 ids. The API knows
/// only the present, so this is membership now, whatever the fire instant.
pub async fn from_api(
    config: &Config,
    client: &Client,
    wanted: Wanted<'_>,
) -> anyhow::Result<Teams> {
    if !needs_tags(config, wanted) {
        return resolve(config, wanted, &[], &[]);
    }
    let tags = client
        .tags()
        .await
        .context("reading the organisation's tags")?;
    let tree = TagTree::new(&tags);
    // Every tag a wanted team covers; unknown ones are left for `resolve`
    // to report with the team's name.
    let mut ids = BTreeSet::new();
    for team in config.teams.values().filter(|t| wanted.wants(&t.name)) {
        let root = match &team.members {
            Members::Learners(_) => continue,
            Members::Tag(name) => tree.by_name(name).ok(),
            Members::TagId(id) | Members::FromTags(id) => tree.by_id(id).ok(),
        };
        if let Some(tag) = root {
            ids.extend(tree.subtree(&tag.id));
        }
    }
    if let Some(from) = &config.teams_from_tags
        && let Ok(parent) = tree.by_name(&from.parent)
    {
        for child in tree.children(&parent.id) {
            if wanted.wants(&crate::names::path_component(&child.name)) {
                ids.extend(tree.subtree(&child.id));
            }
        }
    }
    let ids: Vec<String> = ids.into_iter().collect();
    let drivers = client
        .drivers_with_tags(&ids)
        .await
        .context("reading the drivers of the teams' tags")?;
    resolve(config, wanted, &tags, &drivers).context("resolving teams from tags")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(id: &str, name: &str, parent: Option<&str>) -> Tag {
        Tag {
            id: id.into(),
            name: name.into(),
            parent_tag_id: parent.map(str::to_string),
        }
    }

    #[test]
    fn a_subtree_holds_the_tag_and_every_descendant_and_survives_a_cycle() {
        let tree = TagTree::new(&[
            tag("1", "Regions", None),
            tag("2", "North", Some("1")),
            tag("3", "North Yard A", Some("2")),
            tag("4", "South", Some("1")),
            tag("5", "Loop A", Some("6")),
            tag("6", "Loop B", Some("5")),
        ]);
        let ids = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(tree.subtree("2"), ids(&["2", "3"]));
        assert_eq!(tree.subtree("1"), ids(&["1", "2", "3", "4"]));
        assert_eq!(tree.subtree("5"), ids(&["5", "6"]));
        let children: Vec<&str> = tree.children("1").iter().map(|t| t.name.as_str()).collect();
        assert_eq!(children, ["North", "South"]);
    }

    #[test]
    fn a_name_two_tags_share_asks_for_the_id() {
        let tree = TagTree::new(&[tag("7", "Days", Some("1")), tag("8", "Days", Some("2"))]);
        let err = tree.by_name("Days").unwrap_err().to_string();
        assert_eq!(
            err,
            "2 tags are named `Days` (ids 7, 8): use `tag_id` to say which"
        );
        let err = tree.by_name("Nights").unwrap_err().to_string();
        assert_eq!(
            err,
            "no tag is named `Nights` in the organisation (2 tags; names are matched exactly)"
        );
    }
}
