//! The deployment files in `deploy/`, checked as far as this machine allows (no container engine
//! and no Kubernetes run here, so nothing is built or started): the compose file is parsed and
//! its wiring checked (every URL names a service, the load balancer passes WebSockets to both
//! nodes, the nodes trust its address); the Helm chart's templates are rendered as Helm renders
//! them (Go templates, with Helm's `quote`, `default` and `b64enc`) with its values and with
//! overrides, and every manifest is parsed and checked; the Dockerfile's stages, user and health
//! check are read.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use gtmpl_ng::{Context, Func, FuncError, Template, Value};
use kefu_e2e::workspace_root;
use serde_yaml_ng::Value as Yaml;

fn read(path: &str) -> String {
    let full = workspace_root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn yaml(text: &str) -> Yaml {
    let mut v: Yaml = serde_yaml_ng::from_str(text).expect("YAML");
    v.apply_merge().expect("merge keys");
    v
}

fn s<'a>(v: &'a Yaml, path: &[&str]) -> &'a Yaml {
    path.iter().fold(v, |v, k| &v[*k])
}

fn text(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn the_compose_file_wires_two_nodes_to_the_engines_and_the_load_balancer() {
    let compose = yaml(&read("deploy/compose.yaml"));
    let services = compose["services"].as_mapping().expect("services");
    let names: Vec<String> = services.keys().map(text).collect();
    for wanted in ["kefu-1", "kefu-2", "lb", "postgres", "redis", "qdrant"] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    let lb_ip = text(s(
        &compose,
        &["services", "lb", "networks", "kefu", "ipv4_address"],
    ));
    for node in ["kefu-1", "kefu-2"] {
        let svc = &compose["services"][node];
        assert_eq!(text(s(svc, &["build", "dockerfile"])), "deploy/Dockerfile");
        let env = &svc["environment"];
        let db = text(&env["KEFU_DATABASE_URL"]);
        assert!(db.starts_with("postgres://"), "{db}");
        assert!(
            db.contains("@postgres:5432/"),
            "the database is the postgres service: {db}"
        );
        assert_eq!(text(&env["KEFU_REDIS_URL"]), "redis://redis:6379");
        assert_eq!(text(&env["KEFU_QDRANT_URL"]), "http://qdrant:6334");
        assert_eq!(
            text(&env["KEFU_QDRANT_API_KEY"]),
            text(&compose["services"]["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"]),
            "the nodes hold Qdrant's key"
        );
        assert_eq!(
            text(&env["KEFU_TRUSTED_PROXIES"]),
            lb_ip,
            "the nodes trust the balancer"
        );
        let health = format!("{:?}", svc["healthcheck"]["test"]);
        assert!(health.contains("/readyz"), "{health}");
        for engine in ["postgres", "redis", "qdrant"] {
            assert_eq!(
                text(s(svc, &["depends_on", engine, "condition"])),
                "service_healthy"
            );
        }
        assert!(
            svc["volumes"][0]
                .as_str()
                .is_some_and(|v| v.ends_with(":/var/lib/kefu")),
            "each node keeps its own data directory"
        );
    }
    // The balancer's configuration is the one mounted, and sends WebSockets to both nodes.
    let mount = text(&compose["services"]["lb"]["volumes"][0]);
    let (file, target) = mount.split_once(':').expect("bind mount");
    assert_eq!(target, "/etc/nginx/nginx.conf:ro");
    let nginx = read(&format!("deploy/{}", file.trim_start_matches("./")));
    for needle in [
        "server kefu-1:8080",
        "server kefu-2:8080",
        "proxy_set_header Upgrade $http_upgrade",
        "proxy_set_header Connection $connection_upgrade",
        "X-Forwarded-For",
    ] {
        assert!(nginx.contains(needle), "nginx.conf lacks {needle:?}");
    }
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_unprivileged_in_another() {
    let docker = read("deploy/Dockerfile");
    let froms: Vec<&str> = docker.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].ends_with(" AS build"));
    for script in ["scripts/fetch-models", "scripts/build-widget"] {
        assert!(docker.contains(script), "{script}");
        assert!(workspace_root().join(script).is_file(), "{script} exists");
    }
    assert!(
        docker.contains("COPY --from=build /src/models"),
        "models are in the image"
    );
    let user = docker
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
    assert!(docker.contains("HEALTHCHECK") && docker.contains("/readyz"));
}

/// serde_json → the template engine's values.
fn value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => Value::from(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(value).collect()),
        serde_json::Value::Object(o) => {
            Value::Map(o.iter().map(|(k, v)| (k.clone(), value(v))).collect())
        }
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Nil | Value::NoValue => String::new(),
        other => other.to_string(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Nil | Value::NoValue => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Map(m) | Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Helm's `quote`: the value as a double-quoted string.
fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let v = args
        .first()
        .ok_or(FuncError::AtLeastXArgs("quote".into(), 1))?;
    let escaped = as_text(v).replace('\\', "\\\\").replace('"', "\\\"");
    Ok(Value::from(format!("\"{escaped}\"")))
}

/// Helm's `default DEFAULT VALUE`: VALUE unless it is empty.
fn default(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [fallback, given] => Ok(if is_empty(given) { fallback } else { given }.clone()),
        [fallback] => Ok(fallback.clone()),
        _ => Err(FuncError::ExactlyXArgs("default".into(), 2)),
    }
}

/// Helm's `b64enc`.
fn b64enc(args: &[Value]) -> Result<Value, FuncError> {
    let v = args
        .first()
        .ok_or(FuncError::AtLeastXArgs("b64enc".into(), 1))?;
    Ok(Value::from(
        base64::engine::general_purpose::STANDARD.encode(as_text(v)),
    ))
}

/// Every template of the chart rendered with its values overridden by `overrides` (a JSON object
/// merged over values.yaml at the top level and one level down): the manifests by kind.
fn render_chart(overrides: serde_json::Value) -> HashMap<String, Yaml> {
    let dir = workspace_root().join("deploy/helm/kefu");
    let chart: serde_json::Value =
        serde_yaml_ng::from_str(&read("deploy/helm/kefu/Chart.yaml")).expect("Chart.yaml");
    let mut values: serde_json::Value =
        serde_yaml_ng::from_str(&read("deploy/helm/kefu/values.yaml")).expect("values.yaml");
    for (k, v) in overrides.as_object().expect("object") {
        match (values.get_mut(k), v) {
            (Some(serde_json::Value::Object(base)), serde_json::Value::Object(o)) => {
                base.extend(o.clone())
            }
            _ => values[k] = v.clone(),
        }
    }
    let context = serde_json::json!({
        "Values": values,
        "Release": {"Name": "shop", "Namespace": "default"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
    });
    let mut out = HashMap::new();
    let templates = std::fs::read_dir(dir.join("templates")).expect("templates");
    for entry in templates {
        let path = entry.expect("entry").path();
        let mut t = Template::default();
        t.add_funcs(&[
            ("quote", quote as Func),
            ("default", default as Func),
            ("b64enc", b64enc as Func),
        ]);
        t.parse(std::fs::read_to_string(&path).expect("template"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let rendered = t
            .render(&Context::from(value(&context)))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc: Yaml = serde_yaml_ng::from_str(&rendered)
            .unwrap_or_else(|e| panic!("{} renders invalid YAML: {e}\n{rendered}", name(&path)));
        if !doc.is_null() {
            out.insert(text(&doc["kind"]), doc);
        }
    }
    out
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

fn env<'a>(deployment: &'a Yaml, name: &str) -> Option<&'a Yaml> {
    s(deployment, &["spec", "template", "spec", "containers"])[0]["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
}

#[test]
fn the_helm_chart_renders_valid_manifests_for_its_values_and_overrides() {
    let url = "postgres://kefu:s3cret@db.internal:5432/kefu";
    let m = render_chart(serde_json::json!({"postgres": {"url": url}}));
    let mut kinds: Vec<&String> = m.keys().collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["Deployment", "Secret", "Service"],
        "no ingress by default"
    );
    let secret = &m["Secret"];
    assert_eq!(text(s(secret, &["metadata", "name"])), "shop-kefu");
    let stored = base64::engine::general_purpose::STANDARD
        .decode(text(s(secret, &["data", "database-url"])))
        .expect("base64");
    assert_eq!(String::from_utf8_lossy(&stored), url);
    let d = &m["Deployment"];
    assert_eq!(d["spec"]["replicas"].as_i64(), Some(2));
    let pod = s(d, &["spec", "template", "spec"]);
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let c = &pod["containers"][0];
    assert_eq!(text(&c["image"]), "kefu:latest");
    assert_eq!(
        text(s(c, &["readinessProbe", "httpGet", "path"])),
        "/readyz"
    );
    assert_eq!(
        text(s(c, &["livenessProbe", "httpGet", "path"])),
        "/healthz"
    );
    let db = env(d, "KEFU_DATABASE_URL").expect("database env");
    assert_eq!(
        text(s(db, &["valueFrom", "secretKeyRef", "name"])),
        "shop-kefu"
    );
    assert_eq!(
        text(s(db, &["valueFrom", "secretKeyRef", "key"])),
        "database-url"
    );
    for unset in ["KEFU_PUBLIC_URL", "KEFU_QDRANT_URL", "KEFU_QDRANT_API_KEY"] {
        assert!(env(d, unset).is_none(), "unset values set nothing: {unset}");
    }
    assert_eq!(
        s(d, &["spec", "selector", "matchLabels"]),
        s(&m["Service"], &["spec", "selector"]),
        "the service selects the pods"
    );

    // Three replicas, an existing secret, a public URL and an ingress with TLS.
    let m = render_chart(serde_json::json!({
        "replicaCount": 3,
        "publicUrl": "https://chat.shop.example",
        "postgres": {"existingSecret": "pg-credentials", "existingSecretKey": "url"},
        "ingress": {"enabled": true, "host": "chat.shop.example", "tlsSecret": "chat-tls"},
    }));
    assert!(
        !m.contains_key("Secret"),
        "an existing secret is used as it is"
    );
    // Qdrant with a key: the chart's Secret holds only the key, the database stays external.
    let with_qdrant = render_chart(serde_json::json!({
        "postgres": {"existingSecret": "pg-credentials"},
        "qdrant": {"url": "http://kefu-qdrant:6334", "apiKey": "qk-123"},
    }));
    let secret = &with_qdrant["Secret"];
    assert!(secret["data"].get("database-url").is_none(), "{secret:?}");
    let stored = base64::engine::general_purpose::STANDARD
        .decode(text(s(secret, &["data", "qdrant-api-key"])))
        .expect("base64");
    assert_eq!(String::from_utf8_lossy(&stored), "qk-123");
    let d = &with_qdrant["Deployment"];
    assert_eq!(
        text(&env(d, "KEFU_QDRANT_URL").expect("qdrant url")["value"]),
        "http://kefu-qdrant:6334"
    );
    let key = env(d, "KEFU_QDRANT_API_KEY").expect("qdrant key");
    assert_eq!(
        text(s(key, &["valueFrom", "secretKeyRef", "name"])),
        "shop-kefu"
    );
    assert_eq!(
        text(s(key, &["valueFrom", "secretKeyRef", "key"])),
        "qdrant-api-key"
    );
    let d = &m["Deployment"];
    assert_eq!(d["spec"]["replicas"].as_i64(), Some(3));
    let db = env(d, "KEFU_DATABASE_URL").expect("database env");
    assert_eq!(
        text(s(db, &["valueFrom", "secretKeyRef", "name"])),
        "pg-credentials"
    );
    assert_eq!(text(s(db, &["valueFrom", "secretKeyRef", "key"])), "url");
    assert_eq!(
        text(&env(d, "KEFU_PUBLIC_URL").expect("public url")["value"]),
        "https://chat.shop.example"
    );
    let ing = &m["Ingress"];
    assert_eq!(text(&ing["spec"]["tls"][0]["secretName"]), "chat-tls");
    assert_eq!(text(&ing["spec"]["rules"][0]["host"]), "chat.shop.example");
    assert_eq!(
        text(s(
            &ing["spec"]["rules"][0]["http"]["paths"][0],
            &["backend", "service", "name"]
        )),
        "shop-kefu"
    );
}
