use std::{num::NonZeroU32, time::Duration};

use super::*;

const SEED_EXAMPLE_1: &str = "\
broker:
    url: 127.0.0.1:5672
    sessanger:
      login: sessanger
      password: sessanger
    user:
      password: 123
    routing_keys:
      sessanger1: ['*']
";

const SEED_EXAMPLE_2: &str = "\
broker:
    url: 127.0.0.1:5672
    sessanger:
      login: sessanger
      password: sessanger
    routing_keys:
      sessanger1: [sysadm, ok1]
      sessanger2: [om1]
";

const SEED_ENV: &str = "\
session:
  routing_key: ${BROKER_ROUTING_KEY}
broker:
  url: ${TSUP_BROKER_URL}
  sessanger:
    login: ${BROKER_SESSANGER_LOGIN}
    password: ${BROKER_SESSANGER_PASSWORD}
  user:
    password: ${BROKER_USER_PASSWORD}
  routing_keys:
    sessanger1: ['*']
";

fn no_env(_: &str) -> Option<String> {
    None
}

fn yaml(text: &str) -> Result<Config, ConfigError> {
    Config::parse_with_env(text, Format::Yaml, "config.yaml", no_env)
}

fn seed_env(name: &str) -> Option<String> {
    let value = match name {
        "BROKER_ROUTING_KEY" => "sessanger1",
        "TSUP_BROKER_URL" => "amqp://rabbit:5672/tsup",
        "BROKER_SESSANGER_LOGIN" => "sessanger",
        "BROKER_SESSANGER_PASSWORD" => "s3cret",
        "BROKER_USER_PASSWORD" => "123",
        _ => return None,
    };
    Some(value.to_owned())
}

fn error_text(text: &str) -> String {
    yaml(text).unwrap_err().to_string()
}

#[test]
fn seed_example_with_a_wildcard_routing_key_parses_as_is() {
    let config = yaml(SEED_EXAMPLE_1).unwrap();
    let broker = config.broker.unwrap();
    assert_eq!(broker.url, "127.0.0.1:5672");
    assert_eq!(broker.amqp_url(), "amqp://127.0.0.1:5672");
    assert_eq!(broker.sessanger.login, "sessanger");
    assert_eq!(broker.sessanger.password.as_deref(), Some("sessanger"));
    assert_eq!(broker.user.unwrap().password, "123");
    assert_eq!(broker.routing_keys, BTreeMap::from([("sessanger1".into(), vec!["*".into()])]));
    assert_eq!(broker.pam_service, "sessanger");
    assert_eq!(config.session, SessionConfig::default());
}

#[test]
fn seed_example_with_named_users_parses_as_is() {
    let broker = yaml(SEED_EXAMPLE_2).unwrap().broker.unwrap();
    assert_eq!(broker.user, None);
    assert_eq!(broker.routing_keys["sessanger1"], ["sysadm", "ok1"]);
    assert_eq!(broker.routing_keys["sessanger2"], ["om1"]);
    assert_eq!(broker.routing_key_for("ok1"), Some("sessanger1"));
    assert_eq!(broker.routing_key_for("om1"), Some("sessanger2"));
    assert_eq!(broker.routing_key_for("stranger"), None);
}

#[test]
fn seed_env_form_takes_every_value_from_the_environment() {
    let config = Config::parse_with_env(SEED_ENV, Format::Yaml, "seed-env.yaml", seed_env).unwrap();
    assert_eq!(config.session.routing_key.as_deref(), Some("sessanger1"));
    let broker = config.broker.unwrap();
    assert_eq!(broker.amqp_url(), "amqp://rabbit:5672/tsup");
    assert_eq!(broker.sessanger.password.as_deref(), Some("s3cret"));
    assert_eq!(broker.user.as_ref().unwrap().password, "123");
    assert_eq!(broker.routing_key_for("anyone"), Some("sessanger1"));
}

#[test]
fn numbers_are_read_as_text_wherever_a_name_or_secret_is_expected() {
    let config = yaml(
        "session: {routing_key: 42}\n\
         broker:\n  url: 10.0.0.1\n  sessanger: {login: 7, password: -12}\n  user: {password: 0123}\n  \
         routing_keys:\n    42: [1001, root]\n",
    )
    .unwrap();
    assert_eq!(config.session.routing_key.as_deref(), Some("42"));
    let broker = config.broker.unwrap();
    assert_eq!((broker.sessanger.login.as_str(), broker.sessanger.password.as_deref()), ("7", Some("-12")));
    assert_eq!(broker.user.unwrap().password, "0123");
    assert_eq!(broker.routing_keys["42"], ["1001", "root"]);
    let err = error_text("broker: {url: h, sessanger: {login: a, password: 1.50}}");
    assert!(err.contains("broker.sessanger.password: the number 1.5 is not an integer; quote it"), "{err}");
}

#[test]
fn a_missing_variable_is_an_error_naming_it_and_its_line() {
    let env = |name: &str| seed_env(name).filter(|_| name != "BROKER_SESSANGER_PASSWORD");
    let err = Config::parse_with_env(SEED_ENV, Format::Yaml, "seed-env.yaml", env).unwrap_err();
    assert!(
        matches!(&err, ConfigError::MissingVariable { name, line: 7, column: 15, .. } if name == "BROKER_SESSANGER_PASSWORD")
    );
    assert_eq!(
        err.to_string(),
        "seed-env.yaml:7:15: environment variable `BROKER_SESSANGER_PASSWORD` is not set \
         (write ${BROKER_SESSANGER_PASSWORD:-default} to give it a default)"
    );
}

#[test]
fn a_default_is_used_when_the_variable_is_unset() {
    let config = yaml("session:\n  ttl: ${SESSION_TTL:-2h}\n  routing_key: ${KEY:-}\n").unwrap();
    assert_eq!(config.session.ttl, Duration::from_secs(7200));
    assert_eq!(config.session.routing_key, None);
    let env = |name: &str| (name == "SESSION_TTL").then(|| "90".to_owned());
    let config = Config::parse_with_env("session:\n  ttl: ${SESSION_TTL:-2h}\n", Format::Yaml, "c.yaml", env).unwrap();
    assert_eq!(config.session.ttl, Duration::from_secs(90));
}

#[test]
fn a_variable_holding_a_line_break_is_refused() {
    let env = |_: &str| Some("a\nb: c".to_owned());
    let err = Config::parse_with_env("http:\n  listen: ${LISTEN}\n", Format::Yaml, "c.yaml", env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "c.yaml:2:11: environment variable `LISTEN` holds a line break; config values must fit on one line"
    );
}

#[test]
fn an_unknown_key_names_file_line_and_key_path() {
    let err = yaml("session:\n  ttl: 30m\n  bogus: 1\n").unwrap_err();
    assert_eq!(err.line(), Some(3));
    assert_eq!(err.key_path(), Some("session"));
    assert!(
        err.to_string().starts_with("config.yaml:3:3: session: unknown field `bogus`, expected one of `ttl`, "),
        "{err}"
    );
    let err = error_text("http: {}\nsesion: {}\n");
    assert!(err.starts_with("config.yaml:2:1: unknown field `sesion`, expected one of `session`, "), "{err}");
    let err = error_text("broker:\n  url: h\n  sessanger: {login: a, password: b, pasword: c}\n");
    assert!(err.starts_with("config.yaml:3:38: broker.sessanger: unknown field `pasword`"), "{err}");
}

#[test]
fn a_bad_duration_names_file_line_and_key_path() {
    let err = error_text("# sessions\nsession:\n  gc_interval: 5s\n  ttl: abc\n");
    assert!(err.starts_with(r#"config.yaml:4:8: session.ttl: invalid duration "abc": "#), "{err}");
    let err = error_text("session:\n  max_lifetime: -5\n");
    assert!(
        err.starts_with("config.yaml:2:17: session.max_lifetime: invalid value: integer `-5`, expected a duration")
    );
}

#[test]
fn a_wrong_type_names_file_line_and_key_path() {
    let err = error_text("session:\n  refresh_on_access: maybe\n");
    assert_eq!(err, "config.yaml:2:22: session.refresh_on_access: invalid type: string \"maybe\", expected a boolean");
    let err = error_text("session:\n  max_per_user: 0\n");
    assert!(err.starts_with("config.yaml:2:17: session.max_per_user: invalid value: integer `0`"), "{err}");
    let err = error_text("session:\n  on_limit: drop\n");
    assert!(err.starts_with("config.yaml:2:13: session.on_limit: unknown variant `drop`"), "{err}");
    let err = error_text("broker:\n  url: h\n  sessanger: {login: a, password: b}\n  routing_keys:\n    k: [a, [b]]\n");
    assert!(err.starts_with("config.yaml:5:12: broker.routing_keys.k[1]: invalid type: sequence"), "{err}");
}

#[test]
fn a_client_config_names_the_managers_account_without_its_password() {
    let text = "broker:\n  url: h\n  sessanger: {login: sessanger}\n  client: {password: c}\n  admins: [ops, 7]\n";
    let broker = yaml(text).unwrap().broker.unwrap();
    assert_eq!((broker.sessanger.login.as_str(), broker.sessanger.password), ("sessanger", None));
    assert_eq!((broker.client.login, broker.client.password.as_deref()), (None, Some("c")));
    assert_eq!(broker.admins, ["ops", "7"]);
    assert_eq!(
        yaml("broker: {url: h, sessanger: {login: s}}").unwrap().broker.unwrap().client,
        ClientAccount::default()
    );
    let err = error_text("broker: {url: h, sessanger: {login: s}, client: {login: s, password: p}}");
    assert!(err.contains("broker.client.login: must differ from broker.sessanger.login"), "{err}");
}

#[test]
fn a_missing_required_key_names_its_section() {
    let err = error_text("broker:\n  url: h\n");
    assert!(err.starts_with("config.yaml:2:3: broker: missing field `sessanger`"), "{err}");
}

#[test]
fn a_syntax_error_names_file_and_line() {
    let err = yaml("session:\n  ttl: 30m\n bad indent: 1\n").unwrap_err();
    assert!(matches!(err, ConfigError::Parse { line: Some(3), .. }), "{err}");
    assert_eq!(err.key_path(), None);
    assert!(err.to_string().starts_with("config.yaml:3:2: did not find expected key"), "{err}");
}

#[test]
fn columns_point_into_the_file_as_written_before_expansion() {
    let env = |_: &str| Some("forever and a day".to_owned());
    let err = Config::parse_with_env("session:\n  ttl: ${TTL}\n", Format::Yaml, "c.yaml", env).unwrap_err();
    assert!(err.to_string().starts_with(r#"c.yaml:2:8: session.ttl: invalid duration "forever and a day""#), "{err}");
}

#[test]
fn json_configs_work_and_durations_may_be_plain_seconds() {
    let text = r#"{
  "session": {"ttl": 1800, "max_lifetime": "86400", "gc_interval": "1s", "max_per_user": 3, "on_limit": "refuse"},
  "broker": {"url": "amqp://h:5672/v", "sessanger": {"login": "s", "password": 123},
             "routing_keys": {"sessanger1": ["sysadm", 42]}},
  "http": {"listen": "0.0.0.0:9000", "body_limit": "512KiB"},
  "store": {"url": "memory://"},
  "data_dir": "/var/lib/sessanger"
}"#;
    let config = Config::parse_with_env(text, Format::Json, "config.json", no_env).unwrap();
    assert_eq!(config.session.ttl, Duration::from_secs(1800));
    assert_eq!(config.session.max_lifetime, Duration::from_secs(86_400));
    assert_eq!(config.session.gc_interval, Duration::from_secs(1));
    let broker = config.broker.as_ref().unwrap();
    assert_eq!(broker.sessanger.password.as_deref(), Some("123"));
    assert_eq!(broker.routing_keys["sessanger1"], ["sysadm", "42"]);
    assert_eq!(config.http.body_limit, 512 * 1024);
    assert_eq!(config.store.url.as_deref(), Some("memory://"));
    assert_eq!(config.data_dir.as_deref(), Some(Path::new("/var/lib/sessanger")));
    assert_eq!(config.session_policy().max_per_user, UserLimit::Refuse(NonZeroU32::new(3).unwrap()));
}

#[test]
fn json_errors_name_file_line_and_key_path() {
    let json = |text: &str| Config::parse_with_env(text, Format::Json, "config.json", no_env).unwrap_err().to_string();
    let err = json("{\n  \"session\": {\n    \"ttl\": \"abc\"\n  }\n}");
    assert!(err.starts_with(r#"config.json:3:16: session.ttl: invalid duration "abc""#), "{err}");
    let err = json("{\n  \"http\": {\"listen\": \"127.0.0.1:1\", \"bogus\": 1}\n}");
    assert!(err.starts_with("config.json:2:43: http: unknown field `bogus`"), "{err}");
    assert_eq!(json("{\n  \"session\": {}\n} x"), "config.json:3:3: trailing characters");
    assert_eq!(
        json("{\"session\": 5}"),
        "config.json:1:13: session: invalid type: integer `5`, expected a mapping of session settings"
    );
}

#[test]
fn durations_and_sizes_accept_every_documented_form() {
    let config =
        yaml("session:\n  ttl: 90\n  max_lifetime: \"3600\"\n  gc_interval: 1h 30m\nhttp:\n  body_limit: 1MB\n")
            .unwrap();
    assert_eq!(config.session.ttl, Duration::from_secs(90));
    assert_eq!(config.session.max_lifetime, Duration::from_secs(3600));
    assert_eq!(config.session.gc_interval, Duration::from_secs(5400));
    assert_eq!(config.http.body_limit, 1_000_000);
    assert_eq!(yaml("http: {body_limit: 4096}").unwrap().http.body_limit, 4096);
}

#[test]
fn an_empty_file_or_empty_sections_mean_the_defaults() {
    assert_eq!(yaml("").unwrap(), Config::default());
    assert_eq!(yaml("# nothing yet\n---\n").unwrap(), Config::default());
    assert_eq!(yaml("session:\nhttp:\nstore:\n").unwrap(), Config::default());
    assert_eq!(Config::parse_with_env("{}", Format::Json, "c.json", no_env).unwrap(), Config::default());
    let defaults = Config::default();
    assert_eq!(defaults.http.listen, "127.0.0.1:8090");
    assert_eq!(defaults.http.body_limit, 1 << 20);
    assert_eq!(defaults.http.json_cache_size, 16 << 20);
    assert_eq!(yaml("http: {json_cache_size: 0}").unwrap().http.json_cache_size, 0, "0 keeps no answers");
    assert_eq!(yaml("http: {json_cache_size: 1MiB}").unwrap().http.json_cache_size, 1 << 20);
    assert_eq!(defaults.session.gc_interval, Duration::from_secs(5));
    assert_eq!(defaults.session_policy(), SessionPolicy::default());
}

#[test]
fn the_session_section_maps_onto_the_policy() {
    let config = yaml("session: {ttl: 10m, max_lifetime: 1d, refresh_on_access: true, max_per_user: 2}\n").unwrap();
    let policy = config.session_policy();
    assert_eq!(policy.idle_ttl, Duration::from_secs(600));
    assert_eq!(policy.max_lifetime, Duration::from_secs(86_400));
    assert!(policy.refresh_on_access);
    assert_eq!(policy.max_per_user, UserLimit::EvictOldest(NonZeroU32::new(2).unwrap()));
}

#[test]
fn the_session_cap_is_read_and_zero_is_refused() {
    let policy = yaml("session: {max_attributes: 20, max_bytes: 4096}\n").unwrap().session_policy();
    assert_eq!(policy.limits.session, sessanger_core::SessionCap { max_attributes: 20, max_bytes: 4096 });
    let err = error_text("session:\n  max_bytes: 0\n");
    assert!(err.starts_with("config.yaml:2:14: session.max_bytes: invalid value: integer `0`"), "{err}");
}

#[test]
fn a_user_under_two_routing_keys_is_refused() {
    let err = yaml(&SEED_EXAMPLE_2.replace("[om1]", "[om1, ok1]")).unwrap_err();
    assert!(matches!(&err, ConfigError::Invalid { path, .. } if path == "broker.routing_keys.sessanger2"));
    assert_eq!(
        err.to_string(),
        "config.yaml: broker.routing_keys.sessanger2: user `ok1` is already listed under `sessanger1`"
    );
    let err = error_text(&SEED_EXAMPLE_2.replace("[om1]", "[om1, om1]"));
    assert_eq!(err, "config.yaml: broker.routing_keys.sessanger2: user `om1` is listed twice");
}

#[test]
fn only_one_routing_key_may_list_the_wildcard_and_only_alone() {
    let err = error_text(&SEED_EXAMPLE_2.replace("[om1]", "['*']").replace("[sysadm, ok1]", "['*']"));
    assert_eq!(
        err,
        "config.yaml: broker.routing_keys.sessanger2: only one routing key may list `'*'`, and `sessanger1` already does"
    );
    let err = error_text(&SEED_EXAMPLE_2.replace("[om1]", "['*', om1]"));
    assert_eq!(err, "config.yaml: broker.routing_keys.sessanger2: `'*'` (every other user) must be alone in its list");
    let mut with_wildcard = yaml(&SEED_EXAMPLE_2.replace("[om1]", "['*']")).unwrap().broker.unwrap();
    assert_eq!(with_wildcard.routing_key_for("stranger"), Some("sessanger2"));
    assert_eq!(with_wildcard.routing_key_for("ok1"), Some("sessanger1"));
    with_wildcard.routing_keys.clear();
    assert_eq!(with_wildcard.routing_key_for("ok1"), None);
}

#[test]
fn a_duplicate_routing_key_is_refused_where_it_is_written() {
    let err = error_text(&format!("{SEED_EXAMPLE_2}      sessanger1: [x]\n"));
    assert!(
        err.starts_with("config.yaml:9:19: broker.routing_keys.sessanger1: routing key `sessanger1` is written twice"),
        "{err}"
    );
}

#[test]
fn the_session_routing_key_must_be_in_the_table() {
    let err = error_text(&format!("session:\n  routing_key: sessanger3\n{SEED_EXAMPLE_2}"));
    assert_eq!(
        err,
        "config.yaml: session.routing_key: `sessanger3` is not a key of broker.routing_keys \
         (those are `sessanger1`, `sessanger2`)"
    );
    assert!(yaml(&format!("session:\n  routing_key: sessanger2\n{SEED_EXAMPLE_2}")).is_ok());
    assert!(yaml("session:\n  routing_key: anything\n").is_ok());
}

#[test]
fn listen_must_be_a_socket_address() {
    let err = error_text("http:\n  listen: localhost\n");
    assert!(err.starts_with("config.yaml: http.listen: `localhost` is not a socket address"), "{err}");
    assert!(yaml("http: {listen: '[::1]:8090'}").is_ok());
}

#[test]
fn the_store_url_needs_a_known_scheme() {
    for url in [
        "memory://",
        "embedded:///var/lib/s",
        "redis://r:6379/0",
        "rediss://r",
        "redis+cluster://a,b",
        "postgres://u@h/db",
        "postgresql://h",
        "mysql://h",
        "mariadb://h",
        "mongodb://h",
    ] {
        assert!(yaml(&format!("store: {{url: '{url}'}}")).is_ok(), "{url}");
    }
    let err = error_text("store:\n  url: sqlite://x.db\n");
    assert!(err.starts_with("config.yaml: store.url: unknown store scheme `sqlite://` (expected one of memory://, "));
    let err = error_text("store:\n  url: /var/lib/sessanger\n");
    assert!(err.starts_with("config.yaml: store.url: `/var/lib/sessanger` has no scheme"), "{err}");
}

#[test]
fn the_broker_url_must_name_an_amqp_host() {
    let broker = |url: &str| format!("broker: {{url: '{url}', sessanger: {{login: a, password: b}}}}");
    for url in ["127.0.0.1:5672", "rabbit", "amqp://u:p@rabbit:5672/%2f", "amqps://[::1]:5671/vhost"] {
        assert!(yaml(&broker(url)).is_ok(), "{url}");
    }
    let err = error_text(&broker("http://rabbit:5672"));
    assert_eq!(
        err,
        "config.yaml: broker.url: `http://rabbit:5672` is not a broker URL: the scheme must be amqp:// or amqps://"
    );
    assert!(error_text(&broker("rabbit:56x2")).contains("the port must be a number"));
    assert!(error_text(&broker("amqp://:5672")).contains("it names no host"));
}

#[test]
fn lifetimes_must_be_positive_and_consistent() {
    let err = error_text("session: {gc_interval: 0}");
    assert_eq!(err, "config.yaml: session.gc_interval: must be longer than zero");
    let err = error_text("session: {ttl: 40d}");
    assert_eq!(err, "config.yaml: session.ttl: 40d is longer than session.max_lifetime (30d), so it would never apply");
    assert_eq!(error_text("http: {body_limit: 0}"), "config.yaml: http.body_limit: must be at least 1 byte");
    assert_eq!(error_text("console: {idle_timeout: 0}"), "config.yaml: console.idle_timeout: must be at least 1s");
}

#[test]
fn the_console_is_off_unless_enabled() {
    let config = yaml("http:\n  listen: 127.0.0.1:9000\n").unwrap();
    assert_eq!(config.console, ConsoleConfig::default());
    assert!(!config.console.enabled && config.console.secure_cookie);
    let config = yaml("console:\n  enabled: true\n  secure_cookie: false\n  idle_timeout: 5m\n").unwrap();
    assert!(config.console.enabled && !config.console.secure_cookie);
    assert_eq!(config.console.idle_timeout, Duration::from_secs(300));
    assert!(error_text("console: {colour: blue}").contains("console"), "{}", error_text("console: {colour: blue}"));
}

#[test]
fn tls_names_its_files_and_takes_a_certificate_only_with_its_key() {
    let config = yaml(
        "store:\n  url: rediss+cluster://a:6380,b:6380\n  tls:\n    ca_file: /etc/ca.crt\n    cert_file: c.crt\n    key_file: c.key\n",
    )
    .unwrap();
    assert_eq!(config.store.tls.ca_file.as_deref(), Some(Path::new("/etc/ca.crt")));
    assert_eq!((config.store.tls.cert_file.is_some(), config.store.tls.key_file.is_some()), (true, true));
    assert!(!config.store.tls.insecure);
    assert_eq!(yaml("store: {url: 'rediss://r'}").unwrap().store.tls, TlsConfig::default());
    let half = error_text("store:\n  tls:\n    cert_file: c.crt\n");
    assert!(half.contains("store.tls") && half.contains("key_file"), "{half}");
    assert!(error_text("store: {tls: {ca: x}}").contains("ca"));
    let broker = "broker: {url: 'amqps://r:5671', sessanger: {login: s, password: p}, tls: {ca_file: /etc/ca.crt}}";
    assert_eq!(yaml(broker).unwrap().broker.unwrap().tls.ca_file.as_deref(), Some(Path::new("/etc/ca.crt")));
    let half = error_text("broker: {url: 'amqps://r', sessanger: {login: s, password: p}, tls: {key_file: k}}");
    assert!(half.contains("broker.tls"), "{half}");
}

#[test]
fn debug_output_hides_passwords() {
    let config = yaml(SEED_EXAMPLE_1).unwrap();
    let debug = format!("{config:?}");
    assert!(debug.contains("login: \"sessanger\""), "{debug}");
    assert!(!debug.contains("123") && !debug.contains("password: \"sessanger\""), "{debug}");
}

#[test]
fn load_picks_the_format_from_the_extension_and_names_the_file() {
    let err = Config::load(Path::new("settings.toml")).unwrap_err();
    assert_eq!(err.to_string(), "settings.toml: unknown config format: the file name must end in .yaml, .yml or .json");
    let err = Config::load(Path::new("/nonexistent/sessanger.YML")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert_eq!(err.to_string(), "/nonexistent/sessanger.YML: cannot read the config file");
    assert_eq!(Format::from_path(Path::new("a.json")), Some(Format::Json));
}

#[test]
fn the_example_files_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/config");
    // Through `seed_env` rather than the process environment, so a variable set on the test
    // machine cannot change the outcome.
    for name in
        ["seed-example-1.yaml", "seed-example-2.yaml", "seed-env.yaml", "full.yaml", "two-managers.yaml", "client.yaml"]
    {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        Config::parse_with_env(&text, Format::Yaml, name, seed_env).unwrap_or_else(|e| panic!("{e}"));
    }
    let err = Config::load(&dir.join("broken.yaml")).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("session: unknown field `idle_timeout`"), "{err}");
}

/// The example `sessman.json` of sessman's own documentation, trailing comma included.
const SEED_SESSMAN_JSON: &str = r#"{
  "username": "ps_sessman",
  "password": "",
  "server_url": "mongo.domain.tld:27017",
  "database": "sessman",
  "session_ttl": 86400,
}"#;

#[test]
fn compat_apis_are_off_and_open_by_default() {
    let compat = yaml("").unwrap().compat;
    assert!(!compat.back_session.enabled && !compat.sessman.enabled);
    assert_eq!(compat.back_session.auth, CompatAuth::None);
    assert_eq!(compat.back_session.service.as_ref(), "back-session");
    assert_eq!(compat.sessman.service.as_ref(), "sessman");
    assert_eq!(compat.sessman.permissions, [sessanger_core::Permission::Read, sessanger_core::Permission::Write]);
    assert_eq!(compat.sessman.api_key, None);
}

#[test]
fn compat_section_reads_every_key() {
    let config = yaml(
        "compat:\n  back_session: {enabled: true, auth: token, session_ttl: 30d}\n  \
         sessman: {enabled: true, api_key: 1234, service: legacy, permissions: [read], session_ttl: 1h, \
         config: sessman.json}\n",
    )
    .unwrap();
    let (back_session, sessman) = (config.compat.back_session, config.compat.sessman);
    assert!(back_session.enabled);
    assert_eq!(back_session.auth, CompatAuth::Token);
    assert_eq!(back_session.session_ttl, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(sessman.api_key.as_deref(), Some("1234"));
    assert_eq!(sessman.service.as_ref(), "legacy");
    assert_eq!(sessman.permissions, [sessanger_core::Permission::Read]);
    assert_eq!(sessman.session_ttl, Some(Duration::from_secs(3600)));
    assert_eq!(sessman.config.as_deref(), Some(Path::new("sessman.json")));
    assert!(!format!("{sessman:?}").contains("1234"), "Debug must hide the API key");
}

#[test]
fn compat_errors_name_line_and_key() {
    let err = error_text("compat:\n  sessman:\n    enabled: true\n    apikey: x\n");
    assert!(err.starts_with("config.yaml:4:5: compat.sessman: unknown field `apikey`"), "{err}");
    let err = error_text("compat:\n  back_session:\n    auth: bearer\n");
    assert!(err.starts_with("config.yaml:3:11: compat.back_session.auth: unknown variant `bearer`"), "{err}");
    let err = error_text("compat:\n  back_session:\n    service: Back.Session\n");
    assert!(err.starts_with("config.yaml:3:5: compat.back_session.service: a service id"), "{err}");
    let err = error_text("compat: {sessman: {auth: token, api_key: k}}");
    assert_eq!(
        err,
        "config.yaml: compat.sessman.api_key: only applies with `auth: none`; with `auth: token` callers send a \
         sessanger service token"
    );
    let err = error_text("compat: {sessman: {session_ttl: 0}}");
    assert_eq!(err, "config.yaml: compat.sessman.session_ttl: must be longer than zero");
}

#[test]
fn the_seed_sessman_json_parses_despite_its_trailing_comma() {
    let file = SessmanFile::parse(SEED_SESSMAN_JSON, "sessman.json").unwrap();
    assert_eq!(file.username.as_deref(), Some("ps_sessman"));
    assert_eq!(file.password, None, "an empty password is no password");
    assert_eq!(file.server_url.as_deref(), Some("mongo.domain.tld:27017"));
    assert_eq!(file.database.as_deref(), Some("sessman"));
    assert_eq!(file.session_ttl, Some(86_400));
    let mut sessman = SessmanConfig::default();
    sessman.merge_file(&file);
    assert_eq!(sessman.session_ttl, Some(Duration::from_secs(86_400)));
    assert_eq!(sessman.api_key, None);
}

#[test]
fn sessman_json_takes_its_api_key_only_when_its_auth_type_asks_for_one() {
    let with_key = r#"{"session_ttl": 60, "auth_type": "plugin", "apikey": "k1",}"#;
    let mut sessman = SessmanConfig::default();
    sessman.merge_file(&SessmanFile::parse(with_key, "s.json").unwrap());
    assert_eq!((sessman.session_ttl, sessman.api_key.as_deref()), (Some(Duration::from_secs(60)), Some("k1")));

    let mut explicit = SessmanConfig { session_ttl: Some(Duration::from_secs(5)), ..SessmanConfig::default() };
    explicit.merge_file(&SessmanFile::parse(r#"{"apikey": "k2", "session_ttl": 60}"#, "s.json").unwrap());
    assert_eq!((explicit.session_ttl, explicit.api_key), (Some(Duration::from_secs(5)), None));
}

#[test]
fn a_broken_sessman_json_names_file_line_and_key() {
    let err = SessmanFile::parse("{\n  \"session_ttl\": \"a day\"\n}", "sessman.json").unwrap_err();
    assert!(err.to_string().starts_with("sessman.json:2:24: session_ttl: invalid type: string"), "{err}");
    let err = SessmanFile::parse("{\"database\": \"s\"", "sessman.json").unwrap_err();
    assert!(err.to_string().starts_with("sessman.json:1:"), "{err}");
    assert!(matches!(SessmanFile::load(Path::new("/nonexistent/sessman.json")), Err(ConfigError::Read { .. })));
}

#[test]
fn load_reads_the_sessman_json_a_config_names_relative_to_itself() {
    let dir = std::env::temp_dir().join(format!("sessanger-config-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::write(dir.join("conf/sessman.json"), r#"{"session_ttl": 600, "auth_type": "global", "apikey": "k",}"#)
        .unwrap();
    std::fs::write(dir.join("conf/sessanger.yaml"), "compat:\n  sessman: {enabled: true, config: sessman.json}\n")
        .unwrap();
    std::fs::write(dir.join("conf/broken.yaml"), "compat:\n  sessman: {config: missing.json}\n").unwrap();
    let loaded = Config::load(&dir.join("conf/sessanger.yaml"));
    let broken = Config::load(&dir.join("conf/broken.yaml"));
    std::fs::remove_dir_all(&dir).unwrap();

    let sessman = loaded.unwrap().compat.sessman;
    assert_eq!((sessman.session_ttl, sessman.api_key.as_deref()), (Some(Duration::from_secs(600)), Some("k")));
    let err = broken.unwrap_err();
    assert!(matches!(&err, ConfigError::Read { path, .. } if path.ends_with("conf/missing.json")), "{err}");
}

#[test]
fn connection_limits_are_read_and_absent_ones_left_to_the_server() {
    let http = yaml("http: {header_read_timeout: 5s, idle_timeout: 2m, max_connections: 100}").unwrap().http;
    assert_eq!(http.header_read_timeout, Some(Duration::from_secs(5)));
    assert_eq!(http.idle_timeout, Some(Duration::from_secs(120)));
    assert_eq!(http.max_connections.map(NonZeroU32::get), Some(100));
    let defaults = yaml("http: {}").unwrap().http;
    assert_eq!((defaults.header_read_timeout, defaults.idle_timeout, defaults.max_connections), (None, None, None));
    assert_eq!(
        error_text("http: {header_read_timeout: 0}"),
        "config.yaml: http.header_read_timeout: must be at least 1s"
    );
    assert!(error_text("http: {max_connections: 0}").contains("http.max_connections"));
}
