//! `[teams.NAME]` and `[teams_from_tags]`: who is on which team.

use super::*;

impl Cx<'_, '_> {
    pub(super) fn teams(&mut self, raw: &RawConfig) -> Option<BTreeMap<String, Team>> {
        let mut out = BTreeMap::new();
        let mut complete = true;
        for (name, team) in raw.teams.iter().flat_map(|t| t.get_ref()) {
            let table = format!("[teams.{name}]");
            let span = team.span();
            if let Some(problem) = crate::names::path_component_problem(name) {
                // A team's name names its folder in previews and archives.
                self.problem(
                    span.clone(),
                    format!("team name {} is not allowed: {problem}", shown_name(name)),
                );
                complete = false;
            }
            let team = team.get_ref();
            let manager = team
                .manager
                .as_ref()
                .filter(|m| self.mailbox(m, "manager"))
                .map(|m| m.get_ref().trim().to_string());
            let escalation = team
                .escalation
                .as_ref()
                .filter(|m| self.mailbox(m, "escalation"))
                .map(|m| m.get_ref().trim().to_string());
            let members = self.team_members(team, &span, &table);
            match members {
                Some(members) => {
                    out.insert(
                        name.clone(),
                        Team {
                            name: name.clone(),
                            display_name: team
                                .display_name
                                .as_ref()
                                .map(|d| d.get_ref().trim().to_string())
                                .filter(|d| !d.is_empty()),
                            manager,
                            escalation,
                            members,
                        },
                    );
                }
                None => complete = false,
            }
        }
        complete.then_some(out)
    }

    /// Exactly one of `learners`, `tag`, `tag_id`, checked.
    pub(super) fn team_members(
        &mut self,
        team: &raw::RawTeam,
        span: &Range<usize>,
        table: &str,
    ) -> Option<Members> {
        let given: Vec<(&str, Range<usize>)> = [
            ("learners", team.learners.as_ref().map(Spanned::span)),
            ("tag", team.tag.as_ref().map(Spanned::span)),
            ("tag_id", team.tag_id.as_ref().map(Spanned::span)),
        ]
        .into_iter()
        .filter_map(|(k, s)| Some((k, s?)))
        .collect();
        match given.as_slice() {
            [] => {
                if !["learners", "tag", "tag_id"]
                    .iter()
                    .any(|k| self.diag.was_pruned(span.start, k))
                {
                    self.problem(
                        span.clone(),
                        format!(
                            "{table} needs its members: `learners = [...]`, `tag = \"Tag name\"` or `tag_id = \"1234\"`"
                        ),
                    );
                }
                None
            }
            [_, second, ..] => {
                let keys: Vec<String> = given.iter().map(|(k, _)| format!("`{k}`")).collect();
                self.problem(
                    second.1.clone(),
                    format!(
                        "{table} has {}: a team takes its members from exactly one of them",
                        keys.join(" and ")
                    ),
                );
                None
            }
            [_] => {
                if let Some(list) = &team.learners {
                    if list.get_ref().is_empty() {
                        self.problem(
                            list.span(),
                            "`learners` is empty: a team needs at least one learner",
                        );
                        return None;
                    }
                    return Some(Members::Learners(self.learner_ids(list)));
                }
                if let Some(tag) = &team.tag {
                    return self.tag_name(tag, "tag").map(Members::Tag);
                }
                let id = team.tag_id.as_ref()?;
                let text = id.get_ref().trim();
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    let shown = self.quote(id);
                    self.problem(
                        id.span(),
                        format!(
                            "`tag_id` {shown} is not a tag id: ids are digits, like `4815` (for a tag's name use `tag`)"
                        ),
                    );
                    return None;
                }
                Some(Members::TagId(text.to_string()))
            }
        }
    }

    /// A tag's name as the config gives it: not empty, no space at either
    /// end (tags are matched by exact name), no control character.
    pub(super) fn tag_name(&mut self, value: &Spanned<String>, what: &str) -> Option<String> {
        let text = value.get_ref();
        let problem = if text.trim().is_empty() {
            Some(
                "is empty: write the tag's name as Samsara shows it, like `North Yard`".to_string(),
            )
        } else if text.trim() != text {
            Some(format!(
                "{} has a space at its start or end: tags are matched by their exact name",
                self.quote_short(value)
            ))
        } else if text.chars().any(char::is_control) {
            Some(format!(
                "{} holds a control character: no tag name does",
                self.quote_short(value)
            ))
        } else {
            None
        };
        match problem {
            Some(p) => {
                self.problem(value.span(), format!("{what} {p}"));
                None
            }
            None => Some(text.clone()),
        }
    }

    /// `[teams_from_tags]`.
    pub(super) fn teams_from_tags(
        &mut self,
        raw: &Spanned<raw::RawTeamsFromTags>,
    ) -> Option<TeamsFromTags> {
        let span = raw.span();
        let t = raw.get_ref();
        let parent = self
            .require(&t.parent, &span, "parent", "[teams_from_tags]")
            .and_then(|p| self.tag_name(p, "`parent`"));
        let mut managers = BTreeMap::new();
        let mut complete = true;
        for (tag, manager) in t.managers.iter().flat_map(|m| m.get_ref()) {
            let key = self.tag_name(tag, "the tag");
            let key = key.filter(|k| {
                if k.bytes().all(|b| b.is_ascii_digit()) {
                    let shown = self.quote(tag);
                    self.problem(
                        tag.span(),
                        format!(
                            "{shown} in `teams_from_tags.managers` looks like a tag id: managers are keyed by the tag's name, like `\"North Yard\" = \"Dana Ortiz <dana@example.com>\"`"
                        ),
                    );
                    return false;
                }
                true
            });
            let ok = self.mailbox(manager, "manager");
            match key {
                Some(key) if ok => {
                    managers.insert(key, manager.get_ref().trim().to_string());
                }
                _ => complete = false,
            }
        }
        let escalation = t.escalation.as_ref().map(|e| {
            (
                self.mailbox(e, "escalation"),
                e.get_ref().trim().to_string(),
            )
        });
        if escalation.as_ref().is_some_and(|(ok, _)| !ok) {
            complete = false;
        }
        let parent = parent?;
        complete.then(|| TeamsFromTags {
            parent,
            managers,
            escalation: escalation.map(|(_, e)| e),
        })
    }

    /// Each id parsed; a bad one is reported at its own element.
    pub(super) fn learner_ids(&mut self, list: &Spanned<Vec<Spanned<String>>>) -> Vec<LearnerId> {
        let mut ids = Vec::new();
        for item in list.get_ref() {
            match LearnerId::parse(item.get_ref()) {
                Ok(id) => ids.push(id),
                Err(message) => self.problem(item.span(), message),
            }
        }
        ids
    }
}
