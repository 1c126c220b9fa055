//! coze-fake's workspaces and bots over the raw test client: `/_fake/bots` (defaults,
//! generated bots, refusals naming the field, reset), the two lists paged on their
//! totals with no `has_more`, the `publish_status` filter, a bot's `BotInfo` published
//! and draft by both paths, the not-found and permission errors, and a Studio's shapes
//! (its `OpenAPIBotInfo`, the bare `get_online_info` body, the lists it lacks).

mod common;

use common::{get, post_json, start, PAT};
use coze_fake::{Dialect, Fake, Options};
use serde_json::{json, Value};

const PERSONAL: &str = "7400000000000000001";
const TEAM: &str = "7400000000000000002";

fn studio() -> Fake {
    start(Options {
        dialect: Dialect::Studio,
        ..Options::default()
    })
}

fn data(fake: &Fake, path: &str) -> Value {
    let r = get(fake, path, PAT);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    let v = r.json();
    assert_eq!(v["code"], 0, "{path}: {v}");
    v["data"].clone()
}

fn admin_set(fake: &Fake, body: Value) -> (u16, Value) {
    let r = post_json(fake, "/_fake/bots", None, &body);
    (r.status, r.json())
}

fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn workspaces_default_to_a_personal_and_a_team_space_paged_on_total_count() {
    let fake = start(Options::default());
    let d = data(&fake, "/v1/workspaces");
    assert_eq!(d["total_count"], 2);
    assert!(d.get("has_more").is_none(), "{d}");
    let ws = d["workspaces"].as_array().unwrap();
    assert_eq!(ws[0]["id"], PERSONAL);
    assert_eq!(ws[0]["name"], "个人空间");
    assert_eq!(ws[0]["role_type"], "owner");
    assert_eq!(ws[0]["workspace_type"], "personal");
    assert_eq!(ws[0]["enterprise_id"], "");
    assert_eq!(ws[1]["workspace_type"], "team");
    let p2 = data(&fake, "/v1/workspaces?page_num=2&page_size=1");
    assert_eq!(ids(&p2["workspaces"]), [TEAM]);
    assert_eq!(p2["total_count"], 2);
    // Over the maximum of 50: refused.
    let v = get(&fake, "/v1/workspaces?page_size=51", PAT).json();
    assert_eq!(v["code"], 4000, "{v}");
}

#[test]
fn generated_bots_page_by_number_until_the_total() {
    let fake = start(Options::default());
    let (status, v) = admin_set(
        &fake,
        json!({"generate": {"workspace_id": TEAM, "count": 120}}),
    );
    assert_eq!(status, 200, "{v}");
    let mut seen = Vec::new();
    for page in 1..=3 {
        let d = data(
            &fake,
            &format!("/v1/bots?workspace_id={TEAM}&page_num={page}&page_size=50"),
        );
        assert_eq!(d["total"], 120);
        assert!(d.get("has_more").is_none());
        let items = d["items"].as_array().unwrap();
        assert_eq!(items.len(), if page < 3 { 50 } else { 20 });
        let first = &items[0];
        for k in [
            "id",
            "name",
            "icon_url",
            "folder_id",
            "updated_at",
            "description",
            "is_published",
            "published_at",
            "owner_user_id",
        ] {
            assert!(first.get(k).is_some(), "{k} missing: {first}");
        }
        seen.extend(ids(&d["items"]));
    }
    assert_eq!(seen.len(), 120);
    assert_eq!(seen[0], "7500000000000000001");
    assert_eq!(seen[119], "7500000000000000120");
    let unique: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 120);
    // coze-py's `_list_v2` names the page page_index.
    let d = data(
        &fake,
        &format!("/v1/bots?workspace_id={TEAM}&page_index=3&page_size=50"),
    );
    assert_eq!(d["items"].as_array().unwrap().len(), 20);
    // The request log keeps each list's query.
    let log = fake.log();
    let pages: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["endpoint"] == "bots.list")
        .filter_map(|e| e["query"]["page_num"].as_str())
        .collect();
    assert_eq!(pages, ["1", "2", "3"]);
    // The other workspace has none.
    let d = data(&fake, &format!("/v1/bots?workspace_id={PERSONAL}"));
    assert_eq!(d["total"], 0);
}

#[test]
fn publish_status_filters_published_and_unpublished_bots() {
    let fake = start(Options::default());
    let (status, v) = admin_set(
        &fake,
        json!({"bots": [
            {"id": "7600000000000000001", "name": "live"},
            {"id": "7600000000000000002", "name": "draft only", "published": false},
        ]}),
    );
    assert_eq!(status, 200, "{v}");
    let list = |status: &str| {
        let d = data(
            &fake,
            &format!("/v1/bots?workspace_id={PERSONAL}&publish_status={status}"),
        );
        ids(&d["items"])
    };
    assert_eq!(list("published_online"), ["7600000000000000001"]);
    assert_eq!(list("published_draft"), ["7600000000000000001"]);
    assert_eq!(list("unpublished_draft"), ["7600000000000000002"]);
    assert_eq!(list("all"), ["7600000000000000001", "7600000000000000002"]);
    // The default is published_online.
    let d = data(&fake, &format!("/v1/bots?workspace_id={PERSONAL}"));
    assert_eq!(ids(&d["items"]), ["7600000000000000001"]);
    assert_eq!(d["items"][0]["is_published"], true);
    let all = data(
        &fake,
        &format!("/v1/bots?workspace_id={PERSONAL}&publish_status=all"),
    );
    assert_eq!(all["items"][1]["is_published"], false);
    assert!(all["items"][1].get("published_at").is_none());
    let v = get(
        &fake,
        &format!("/v1/bots?workspace_id={PERSONAL}&publish_status=nope"),
        PAT,
    )
    .json();
    assert_eq!(v["code"], 4000);
    // No workspace: 4000; one the token does not see: 4101.
    assert_eq!(get(&fake, "/v1/bots", PAT).json()["code"], 4000);
    assert_eq!(
        get(&fake, "/v1/bots?workspace_id=1", PAT).json()["code"],
        4101
    );
}

#[test]
fn a_bots_info_carries_its_onboarding_and_the_settings_merged_in() {
    let fake = start(Options::default());
    let (status, v) = admin_set(
        &fake,
        json!({"bots": [{
            "id": "7600000000000000009", "name": "Tutor", "description": "teaches",
            "prologue": "你好！", "suggested_questions": ["What is 2+2?", "Why?"],
            "info": {"model_info": {"model_name": "m1"},
                     "plugin_info_list": [{"plugin_id": "1", "name": "search", "description": "",
                                           "icon_url": "", "api_info_list": [{"api_id": "2", "name": "web", "description": ""}]}]},
            "draft": {"onboarding_info": {"prologue": "draft hello"}},
        }]}),
    );
    assert_eq!(status, 200, "{v}");
    for path in [
        "/v1/bots/7600000000000000009",
        "/v1/bots/7600000000000000009?is_published=true",
        "/v1/bot/get_online_info?bot_id=7600000000000000009",
    ] {
        let info = data(&fake, path);
        assert_eq!(info["bot_id"], "7600000000000000009", "{path}");
        assert_eq!(info["name"], "Tutor");
        assert_eq!(info["description"], "teaches");
        assert_eq!(info["onboarding_info"]["prologue"], "你好！");
        assert_eq!(
            info["onboarding_info"]["suggested_questions"],
            json!(["What is 2+2?", "Why?"])
        );
        // Merged key by key: the generated model id stays.
        assert_eq!(info["model_info"]["model_name"], "m1");
        assert!(info["model_info"]["model_id"].is_string());
        assert_eq!(
            info["plugin_info_list"][0]["api_info_list"][0]["name"],
            "web"
        );
        for k in [
            "icon_url",
            "create_time",
            "update_time",
            "version",
            "owner_user_id",
            "bot_mode",
            "prompt_info",
            "knowledge",
            "workflow_info_list",
            "shortcut_commands",
            "variables",
        ] {
            assert!(info.get(k).is_some(), "{path}: {k} missing");
        }
    }
    let draft = data(&fake, "/v1/bots/7600000000000000009?is_published=false");
    assert_eq!(draft["onboarding_info"]["prologue"], "draft hello");
    assert_eq!(
        draft["onboarding_info"]["suggested_questions"],
        json!(["What is 2+2?", "Why?"])
    );
}

#[test]
fn unknown_and_unpublished_bots_are_not_found() {
    let fake = start(Options::default());
    admin_set(
        &fake,
        json!({"bots": [{"id": "7600000000000000002", "name": "d", "published": false}]}),
    );
    for path in [
        "/v1/bots/7699999999999999999",
        "/v1/bot/get_online_info?bot_id=7699999999999999999",
        "/v1/bots/7600000000000000002",
    ] {
        let r = get(&fake, path, PAT);
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["code"], 4200, "{path}: {v}");
        assert!(v["msg"]
            .as_str()
            .unwrap()
            .starts_with("Requested resource bot_id=76"));
        assert!(v["detail"]["logid"].is_string());
    }
    // Its draft is there.
    let d = data(&fake, "/v1/bots/7600000000000000002?is_published=false");
    assert_eq!(d["name"], "d");
}

#[test]
fn denied_endpoints_answer_4101_and_the_others_still_work() {
    let fake = start(Options::default());
    admin_set(&fake, json!({"generate": {"count": 1}}));
    let (status, _) = admin_set(&fake, json!({"denied": ["bots.list", "users.me"]}));
    assert_eq!(status, 200);
    for path in [
        format!("/v1/bots?workspace_id={PERSONAL}"),
        "/v1/users/me".to_string(),
    ] {
        let v = get(&fake, &path, PAT).json();
        assert_eq!(v["code"], 4101, "{path}: {v}");
        assert!(v["msg"].as_str().unwrap().contains("permission"));
    }
    data(&fake, "/v1/workspaces");
    data(&fake, "/v1/bots/7500000000000000001");
    // The bots set before stay: denied replaced only its own part.
    assert_eq!(fake.bots()["bots"].as_array().unwrap().len(), 1);
    assert_eq!(fake.bots()["denied"], json!(["bots.list", "users.me"]));
}

#[test]
fn admin_refuses_a_bad_field_by_name_and_reset_restores_the_defaults() {
    let fake = start(Options::default());
    for (body, field) in [
        (json!({"bots": [{"id": "1"}]}), "bots[0].name"),
        (json!({"workspaces": {}}), "workspaces"),
        (json!({"generate": {"count": "3"}}), "generate.count"),
        (json!({"denied": ["chat"]}), "denied"),
        (json!({"bogus": 1}), "bogus"),
        (json!([]), "object"),
    ] {
        let (status, v) = admin_set(&fake, body.clone());
        assert_eq!(status, 400, "{body}");
        assert!(v["error"].as_str().unwrap().contains(field), "{body}: {v}");
    }
    let (status, _) = admin_set(
        &fake,
        json!({"workspaces": [{"id": "1", "name": "only", "role_type": "admin"}],
               "generate": {"count": 2}}),
    );
    assert_eq!(status, 200);
    let shown = common::call(&fake, "GET", "/_fake/bots", &[], b"").json();
    assert_eq!(shown["workspaces"][0]["role_type"], "admin");
    assert_eq!(shown["bots"][1]["workspace_id"], "1");
    assert_eq!(shown["bots"][1]["name"], "bot 2");
    let r = common::call(&fake, "POST", "/_fake/reset", &[], b"");
    assert_eq!(r.status, 200);
    let shown = fake.bots();
    assert_eq!(shown["workspaces"].as_array().unwrap().len(), 2);
    assert!(shown["bots"].as_array().unwrap().is_empty());
    // {} restores them too.
    admin_set(&fake, json!({"generate": {"count": 2}}));
    admin_set(&fake, json!({}));
    assert!(fake.bots()["bots"].as_array().unwrap().is_empty());
}

#[test]
fn studio_serves_its_bot_info_and_lacks_the_lists() {
    let fake = studio();
    admin_set(
        &fake,
        json!({"bots": [
            {"id": "7600000000000000001", "name": "S", "prologue": "hi",
             "suggested_questions": ["q1"],
             "info": {"plugin_info_list": [{"plugin_id": 11, "name": "p", "description": "",
                         "icon_url": "", "api_info_list": [{"api_id": 12, "name": "api", "description": ""}]}],
                      "workflow_info_list": [{"id": "13", "name": "wf", "description": "d", "icon_url": ""}]}},
            {"id": "7600000000000000002", "name": "D", "published": false},
        ]}),
    );
    let r = get(
        &fake,
        "/v1/bots/7600000000000000001?is_published=false",
        PAT,
    );
    assert_eq!(r.status, 200);
    assert!(r.header("x-log-id").is_some());
    let v = r.json();
    assert_eq!(v["code"], 0);
    assert!(v.get("detail").is_none());
    let info = &v["data"];
    assert_eq!(info["bot_id"], "7600000000000000001");
    assert_eq!(info["onboarding_info"]["prologue"], "hi");
    assert_eq!(
        info["onboarding_info"]["suggested_questions"],
        json!(["q1"])
    );
    assert_eq!(info["create_time"], 0);
    assert!(info.get("owner_user_id").is_none());
    assert!(info["model_info"].get("model_name").is_none());
    assert_eq!(
        info["plugin_info_list"],
        json!([{"plugin_id": "11", "api_id": "12", "api_name": "api"}])
    );
    assert_eq!(info["workflow_info_list"][0]["workflow_id"], "13");
    assert_eq!(info["workflow_info_list"][0]["workflow_name"], "wf");
    // get_online_info: the same object with no envelope.
    let bare = get(
        &fake,
        "/v1/bot/get_online_info?bot_id=7600000000000000001",
        PAT,
    )
    .json();
    assert!(bare.get("code").is_none(), "{bare}");
    assert_eq!(bare["bot_id"], "7600000000000000001");
    assert_eq!(bare["name"], "S");
    // Unknown or never published: Studio's errno.
    for path in [
        "/v1/bots/7600000000000000002",
        "/v1/bots/7699999999999999999",
        "/v1/bot/get_online_info?bot_id=7699999999999999999",
    ] {
        let v = get(&fake, path, PAT).json();
        assert_eq!(v["code"], 100_000_003, "{path}: {v}");
        assert_eq!(v["msg"], "unauthorized access : agent not exist");
    }
    let r = get(&fake, "/v1/bot/get_online_info", PAT);
    assert_eq!(r.status, 400);
    // The lists, the workspaces and users/me are not Studio's.
    for path in [
        format!("/v1/bots?workspace_id={PERSONAL}"),
        "/v1/workspaces".to_string(),
        "/v1/users/me".to_string(),
    ] {
        let r = get(&fake, &path, PAT);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.json()["msg"], "missing session_key in cookie");
    }
}
