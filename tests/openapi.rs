//! Keeps `docs/openapi.json` honest (issue 5): every route registered in the
//! router is documented with its methods, nothing is documented that the
//! router does not serve, and every `$ref` resolves.
//!
//! The route list comes from the source text: every `.route("...", ...)` and
//! `.route_service("...", ...)` call under `src/`. That is a plain string
//! scan, not a parse; it is enough because routes are registered as literals
//! (a route built from a variable or mounted with `.nest` would need the scan
//! taught about it, and the test says so rather than passing silently).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use serde_json::Value;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn document() -> Value {
    let path = root().join("docs/openapi.json");
    let text = fs::read_to_string(&path).expect("docs/openapi.json is readable");
    serde_json::from_str(&text).expect("docs/openapi.json is valid JSON")
}

/// Methods a route accepts; `None` means every method (`any`, services).
type Methods = Option<BTreeSet<String>>;

#[derive(Debug)]
struct Route {
    path: String,
    methods: Methods,
    at: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source text without `//` comment lines, so examples in docs don't count.
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text from `open` (just after a `(`) to its matching `)`.
fn call_args(text: &str, open: usize) -> &str {
    let mut depth = 1;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open..open + i];
                }
            }
            _ => {}
        }
    }
    &text[open..]
}

/// Method-router constructors called in `args` (`get(h).post(h2)`,
/// `routing::any(h)`, `get_service(s)`).
fn methods_in(args: &str) -> Result<Methods, String> {
    let mut found = BTreeSet::new();
    let bytes = args.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !is_ident(bytes[i]) || (i > 0 && is_ident(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        if bytes.get(i) != Some(&b'(') {
            continue;
        }
        let ident = &args[start..i];
        let base = ident.strip_suffix("_service").unwrap_or(ident);
        if base == "any" {
            return Ok(None);
        }
        if base == "on" {
            return Err("uses `on(MethodFilter, ..)`, which this scan does not read".into());
        }
        if METHODS.contains(&base) {
            found.insert(base.to_owned());
        }
    }
    if found.is_empty() {
        return Err("names no method router (get/post/.../any)".into());
    }
    Ok(Some(found))
}

/// Every route registered under `src/`.
fn router_routes() -> Vec<Route> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.sort();
    let mut routes = Vec::new();
    for file in files {
        let text = code(&fs::read_to_string(&file).expect("source is readable"));
        let shown = file
            .strip_prefix(root())
            .unwrap_or(&file)
            .display()
            .to_string();
        assert!(
            !text.contains(".nest(") && !text.contains(".nest_service("),
            "{shown} mounts a router with `.nest`: teach tests/openapi.rs its prefix"
        );
        for (call, service) in [(".route(", false), (".route_service(", true)] {
            let mut from = 0;
            while let Some(found) = text[from..].find(call) {
                let open = from + found + call.len();
                from = open;
                let args = call_args(&text, open);
                let rest = args.trim_start();
                let at = format!("{shown}: .route({})", rest.lines().next().unwrap_or(""));
                let Some(literal) = rest.strip_prefix('"') else {
                    panic!("{at}: the path is not a string literal; the scan cannot read it");
                };
                let end = literal.find('"').expect("a closed string literal");
                let path = literal[..end].to_owned();
                let methods = if service {
                    None
                } else {
                    methods_in(&literal[end + 1..]).unwrap_or_else(|e| panic!("{at}: {e}"))
                };
                routes.push(Route { path, methods, at });
            }
        }
    }
    routes
}

/// `true` when the documented path is an instance of the route template:
/// same segments, where a router `{param}` stands for any one segment.
fn matches(route: &str, documented: &str) -> bool {
    let r: Vec<&str> = route.split('/').collect();
    let d: Vec<&str> = documented.split('/').collect();
    r.len() == d.len()
        && r.iter()
            .zip(&d)
            .all(|(r, d)| r == d || (r.starts_with('{') && r.ends_with('}')))
}

fn documented_paths(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    doc["paths"]
        .as_object()
        .expect("`paths` is an object")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("a path item is an object")
                .keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .cloned()
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

#[test]
fn the_scan_sees_the_router() {
    // If this fails the scan broke, and the tests below would prove nothing.
    let routes = router_routes();
    let paths: Vec<&str> = routes.iter().map(|r| r.path.as_str()).collect();
    for known in ["/api/login", "/api/messages", "/api/ws", "/healthz"] {
        assert!(paths.contains(&known), "{known} not found in {paths:?}");
    }
    let topics = routes
        .iter()
        .find(|r| r.path == "/api/topics")
        .expect("/api/topics is routed");
    let want: BTreeSet<String> = ["get", "post"].map(String::from).into();
    assert_eq!(topics.methods.as_ref(), Some(&want), "{}", topics.at);
    assert_eq!(methods_in(" any(healthz)"), Ok(None));
    assert_eq!(
        methods_in(" axum::routing::get(a).delete(b)"),
        Ok(Some(["delete", "get"].map(String::from).into()))
    );
}

#[test]
fn every_routed_path_and_method_is_documented() {
    let doc = document();
    let documented = documented_paths(&doc);
    let mut missing = Vec::new();
    for route in router_routes() {
        let instances: Vec<(&String, &BTreeSet<String>)> = documented
            .iter()
            .filter(|(path, _)| matches(&route.path, path))
            .collect();
        if instances.is_empty() {
            missing.push(format!("{} (registered at {})", route.path, route.at));
            continue;
        }
        match &route.methods {
            // Every method is served; documenting at least one is enough.
            None => {
                if instances.iter().all(|(_, m)| m.is_empty()) {
                    missing.push(format!("{}: no operation documented", route.path));
                }
            }
            Some(methods) => {
                for method in methods {
                    for (path, documented) in &instances {
                        if !documented.contains(method) {
                            missing.push(format!("{} {path}", method.to_uppercase()));
                        }
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routed but not documented in docs/openapi.json:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn nothing_is_documented_that_is_not_routed() {
    let doc = document();
    let routes = router_routes();
    let mut extra = Vec::new();
    for (path, methods) in documented_paths(&doc) {
        let served: Vec<&Route> = routes.iter().filter(|r| matches(&r.path, &path)).collect();
        if served.is_empty() {
            extra.push(format!("{path} (no route)"));
            continue;
        }
        for method in methods {
            let routed = served.iter().any(|r| match &r.methods {
                None => true,
                Some(m) => m.contains(&method),
            });
            if !routed {
                extra.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(
        extra.is_empty(),
        "documented in docs/openapi.json but not routed:\n  {}",
        extra.join("\n  ")
    );
}

fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_well_formed() {
    let doc = document();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.0")),
        "an OpenAPI 3.0 document"
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let mut all = Vec::new();
    refs(&doc, &mut all);
    let broken: BTreeSet<&str> = all
        .into_iter()
        .filter(|r| {
            r.strip_prefix('#')
                .and_then(|pointer| doc.pointer(pointer))
                .is_none()
        })
        .collect();
    assert!(broken.is_empty(), "unresolved $ref: {broken:?}");

    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}: no responses"));
            assert!(
                responses
                    .keys()
                    .any(|code| code.starts_with('2') || code == "101"),
                "{method} {path}: no success response"
            );
            // R3: every error answer has the one error shape.
            for (code, response) in responses {
                if !code.starts_with('4') && !code.starts_with('5') {
                    continue;
                }
                let response = match response["$ref"].as_str() {
                    Some(r) => doc.pointer(&r[1..]).expect("resolved above"),
                    None => response,
                };
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{method} {path} {code}: errors are {{\"error\": ...}}"
                );
            }
        }
    }
}

#[test]
fn down_messages_document_the_extra_fields() {
    // R20: `id` and `sent-at` on down messages and in the send receipt.
    let doc = document();
    for schema in ["P2PDown", "P2TDown", "SendResponse"] {
        let s = &doc["components"]["schemas"][schema];
        for field in ["id", "sent-at"] {
            assert!(s["properties"][field].is_object(), "{schema}.{field}");
            assert!(
                s["required"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|f| f == field)),
                "{schema}.{field} is required"
            );
        }
    }
}
