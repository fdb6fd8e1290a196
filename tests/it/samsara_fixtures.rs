//! The example responses from Samsara's spec and official SDK wire tests
//! (`../shared/samsara-api/`) parse with trainwatch's wire types.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::Value;
use trainwatch::samsara::{Assignment, Course, Driver, Page, Status};

fn shared(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/samsara-api")
        .join(name)
}

fn parse<T: DeserializeOwned>(name: &str) -> Page<T> {
    let text = std::fs::read_to_string(shared(name))
        .unwrap_or_else(|e| panic!("{name}: {e} (shared/ must sit beside the repository)"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn sdk_stream_examples_parse_and_name_the_learner_in_filter_form() {
    for name in [
        "example-training-assignments-stream.samsara-python-wiremock.json",
        "example-training-assignments-stream.samsara-dotnet-wiretest.json",
    ] {
        let page: Page<Assignment> = parse(name);
        assert_eq!(page.data.len(), 1, "{name}");
        let a = &page.data[0];
        assert_eq!(a.learner.as_str(), "driver-938172", "{name}");
        assert_eq!(a.status, Status::NotStarted);
        assert_eq!(
            a.duration_minutes, 1_327_574_439_901_911_300,
            "int64 survives"
        );
        assert!(a.deleted_at_time.is_some());
        assert_eq!(a.score_percent, Some(0.6495482707936548));
        assert_eq!(page.pagination.end_cursor, "MjkY");
        assert!(page.pagination.has_next_page);
    }
}

#[test]
fn sdk_course_examples_parse_with_title_and_category() {
    for name in [
        "example-training-courses.samsara-python-wiremock.json",
        "example-training-courses.samsara-dotnet-wiretest.json",
    ] {
        let page: Page<Course> = parse(name);
        assert_eq!(page.data[0].title, "Wheel Loader");
        assert_eq!(
            page.data[0].category.as_ref().unwrap().name,
            "Samsara Driver App"
        );
    }
}

#[test]
fn sdk_driver_example_parses() {
    let page: Page<Driver> = parse("example-fleet-drivers.samsara-python-wiremock.json");
    assert_eq!(page.data[0].name, "Susan Jones");
    assert_eq!(
        page.data[0].driver_activation_status.as_deref(),
        Some("active")
    );
}

#[test]
fn every_wiremock_mapping_for_our_endpoints_parses() {
    let text =
        std::fs::read_to_string(shared("wiremock-mappings.samsara-python.selected.json")).unwrap();
    let mappings: Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for m in mappings["mappings"].as_array().unwrap() {
        let request = &m["request"];
        let path = request["urlPathTemplate"]
            .as_str()
            .or(request["urlPath"].as_str())
            .unwrap_or_default();
        let Some(body) = m["response"]["body"].as_str() else {
            continue;
        };
        let result = match path {
            "/training-assignments/stream" => {
                serde_json::from_str::<Page<Assignment>>(body).map(|_| ())
            }
            "/training-courses" => serde_json::from_str::<Page<Course>>(body).map(|_| ()),
            "/fleet/drivers" => serde_json::from_str::<Page<Driver>>(body).map(|_| ()),
            _ => continue,
        };
        result.unwrap_or_else(|e| panic!("mapping {:?} ({path}): {e}", m["name"]));
        checked += 1;
    }
    assert!(
        checked >= 3,
        "only {checked} mappings matched our endpoints"
    );
}

#[test]
fn the_spec_requires_what_trainwatch_treats_as_required() {
    // If Samsara's schema stops requiring a field our numbers depend on, this
    // fails and the strictness in wire.rs must be revisited.
    let text = std::fs::read_to_string(shared(
        "openapi-2024-11-18.training-drivers-users.excerpt.json",
    ))
    .unwrap();
    let spec: Value = serde_json::from_str(&text).unwrap();
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let required: Vec<&str> = schemas
        .values()
        .filter_map(|s| s["required"].as_array())
        .find(|r| r.iter().any(|v| v == "durationMinutes"))
        .expect("an assignment schema with required fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for field in [
        "id",
        "course",
        "learner",
        "status",
        "createdAtTime",
        "updatedAtTime",
        "durationMinutes",
    ] {
        assert!(
            required.contains(&field),
            "{field} is not required by the spec: {required:?}"
        );
    }
}
