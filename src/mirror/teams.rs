//! Teams as of an instant from the mirror's tag history: the mirror feeds
//! [`crate::teams::resolve`] (the mirror knows teams; teams do not know the
//! mirror).

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::MirrorStore;
use crate::config::Config;
use crate::teams::{Teams, Wanted};

/// The teams `wanted` asks for as of `at`, from the mirror (already synced
/// up to `at`): its tags and its drivers with the tags they had at `at`.
/// For an instant before the mirror first stored drivers' tags, the first
/// tags it stored are used, and a warning says so.
pub fn teams_at(
    config: &Config,
    mirror: &dyn MirrorStore,
    wanted: Wanted<'_>,
    at: DateTime<Utc>,
) -> anyhow::Result<Teams> {
    if !crate::teams::needs_tags(config, wanted) {
        return crate::teams::resolve(config, wanted, &[], &[]);
    }
    let mut warnings = Vec::new();
    let as_of = match mirror.tags_known_since()? {
        Some(first) if at < first => {
            warnings.push(format!(
                "team membership: the mirror knows drivers' tags from {} on; teams as of {} use the tags of that first sync",
                first.to_rfc3339(),
                at.to_rfc3339()
            ));
            first
        }
        _ => at,
    };
    let tags = mirror.tags()?;
    let drivers = mirror.drivers_at(as_of)?;
    // Empty lists mean the sync could not read them (token scopes), not an
    // organisation without tags: teams from them would be empty, and their
    // reports would look complete.
    let unreadable = |what: &str, scope: &str| {
        let why = mirror.warnings().ok().unwrap_or_default().join("; ");
        anyhow::anyhow!(
            "the mirror holds no {what}, so teams that follow tags cannot be resolved: the token needs the scope *{scope}*{}",
            if why.is_empty() {
                String::new()
            } else {
                format!(" (last sync: {why})")
            }
        )
    };
    if tags.is_empty() {
        return Err(unreadable("tags", "Read Tags"));
    }
    if drivers.is_empty() {
        return Err(unreadable("drivers", "Read Drivers"));
    }
    let mut teams = crate::teams::resolve(config, wanted, &tags, &drivers)
        .with_context(|| format!("resolving teams from tags as of {}", at.to_rfc3339()))?;
    teams.warnings = warnings;
    Ok(teams)
}
