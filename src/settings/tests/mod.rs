use super::*;
use crate::cli;

fn settings(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let mut all = vec!["jupyterhub-idle-culler-rs"];
    all.extend_from_slice(args);
    let raw = cli::parse(all).expect("the command line parses");
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_args(&raw, |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}

const HUB: &[(&str, &str)] = &[
    ("JUPYTERHUB_API_TOKEN", "secret"),
    ("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api/"),
];

#[test]
fn upstream_defaults() {
    let s = settings(&[], HUB).unwrap();
    assert_eq!(s.policy, CullPolicy::default());
    assert_eq!(s.policy.timeout_secs, 600);
    assert_eq!(s.cull_every, Duration::from_secs(300));
    assert_eq!(s.concurrency, 10);
    assert_eq!(s.api_page_size, None);
    assert_eq!(s.hub.base_url, "http://127.0.0.1:8081/hub/api");
    assert_eq!(s.hub.request_timeout, Duration::from_secs(60));
    assert!(s.hub.tls.is_none());
    assert!(!s.once);
    assert_eq!(s.stop_timeout, Duration::from_secs(8));
}

#[test]
fn stop_timeout_takes_seconds_up_to_an_hour() {
    let s = settings(&["--stop-timeout=0.5"], HUB).unwrap();
    assert_eq!(s.stop_timeout, Duration::from_millis(500));
    let s = settings(&["--stop-timeout=3600"], HUB).unwrap();
    assert_eq!(s.stop_timeout, Duration::from_secs(3600));
    assert!(matches!(
        settings(&["--stop-timeout=3601"], HUB),
        Err(SettingsError::OutOfRange {
            flag: "--stop-timeout",
            ..
        })
    ));
    assert!(matches!(
        settings(&["--stop-timeout=soon"], HUB),
        Err(SettingsError::NotSeconds {
            flag: "--stop-timeout",
            ..
        })
    ));
}

#[test]
fn zero_to_jupyterhub_flags_mean_what_they_say() {
    let s = settings(
        &[
            "--url=http://localhost:8081/hub/api",
            "--timeout=3600",
            "--cull-every=600",
            "--concurrency=10",
            "--cull-users",
            "--cull-admin-users=false",
            "--remove-named-servers",
            "--max-age=86400",
        ],
        &[("JUPYTERHUB_API_TOKEN", "t")],
    )
    .unwrap();
    assert_eq!(s.hub.base_url, "http://localhost:8081/hub/api");
    assert_eq!(s.policy.timeout_secs, 3600);
    assert_eq!(s.cull_every, Duration::from_secs(600));
    assert!(s.policy.cull_users);
    assert!(!s.policy.cull_admin_users);
    assert!(s.policy.remove_named_servers);
    assert_eq!(s.policy.max_age_secs, Some(86400));
}

#[test]
fn littlest_jupyterhub_flags_with_url_from_env() {
    let s = settings(
        &[
            "--timeout=600",
            "--cull-every=60",
            "--concurrency=5",
            "--max-age=0",
            "--cull-users",
            "--remove-named-servers",
        ],
        HUB,
    )
    .unwrap();
    assert_eq!(s.cull_every, Duration::from_secs(60));
    assert_eq!(s.concurrency, 5);
    assert_eq!(s.policy.max_age_secs, None);
    assert!(s.policy.cull_users && s.policy.remove_named_servers);
}

#[test]
fn boolean_spellings() {
    for (text, expected) in [
        ("true", true),
        ("True", true),
        ("1", true),
        ("t", true),
        ("false", false),
        ("False", false),
        ("0", false),
        ("f", false),
    ] {
        let flag = format!("--cull-users={text}");
        assert_eq!(
            settings(&[&flag], HUB).unwrap().policy.cull_users,
            expected,
            "{flag}"
        );
    }
    let err = settings(&["--cull-users=maybe"], HUB).unwrap_err();
    assert_eq!(
        err,
        SettingsError::NotABool {
            flag: "--cull-users",
            value: "maybe".into()
        }
    );
}

#[test]
fn upstream_2_and_underscore_spellings() {
    let s = settings(
        &[
            "--IdleCuller.timeout=120",
            "--cull_every=7",
            "--IdleCuller.cull_users=True",
        ],
        HUB,
    )
    .unwrap();
    assert_eq!(s.policy.timeout_secs, 120);
    assert_eq!(s.cull_every, Duration::from_secs(7));
    assert!(s.policy.cull_users);
}

#[test]
fn cull_every_zero_is_half_the_timeout_and_at_least_a_second() {
    assert_eq!(
        settings(&["--timeout=100", "--cull-every=0"], HUB)
            .unwrap()
            .cull_every,
        Duration::from_secs(50)
    );
    assert_eq!(
        settings(&["--timeout=1"], HUB).unwrap().cull_every,
        Duration::from_secs(1)
    );
}

#[test]
fn bad_numbers_name_the_flag() {
    for (arg, flag) in [
        ("--timeout=abc", "--timeout"),
        ("--timeout=-5", "--timeout"),
        ("--max-age=1.5", "--max-age"),
        ("--concurrency=-1", "--concurrency"),
        ("--api-page-size=x", "--api-page-size"),
    ] {
        let err = settings(&[arg], HUB).unwrap_err();
        assert!(
            matches!(err, SettingsError::NotANumber { flag: f, .. } if f == flag),
            "{arg}: {err}"
        );
        assert!(err.to_string().starts_with(flag));
    }
}

#[test]
fn concurrency_zero_means_no_practical_limit() {
    let s = settings(&["--concurrency=0"], HUB).unwrap();
    assert_eq!(s.concurrency, UNLIMITED_CONCURRENCY);
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
}

#[test]
fn absurd_concurrency_is_refused() {
    assert_eq!(
        settings(&["--concurrency=1000"], HUB).unwrap().concurrency,
        1000
    );
    let err = settings(&["--concurrency=18446744073709551615"], HUB).unwrap_err();
    assert!(
        matches!(
            err,
            SettingsError::OutOfRange {
                flag: "--concurrency",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn timeout_zero_needs_an_explicit_cull_every() {
    assert_eq!(
        settings(&["--timeout=0"], HUB).unwrap_err(),
        SettingsError::ZeroTimeout
    );
    assert_eq!(
        settings(&["--timeout=0", "--cull-every=0"], HUB).unwrap_err(),
        SettingsError::ZeroTimeout
    );
    let s = settings(&["--timeout=0", "--cull-every=60"], HUB).unwrap();
    assert_eq!(s.policy.timeout_secs, 0);
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
}

#[test]
fn upstream_config_files_are_refused_not_ignored() {
    for args in [
        &["--config=idle_culler_config.py"][..],
        &["--config", "/etc/jupyterhub/Culler.PY"][..],
    ] {
        let err = settings(args, HUB).unwrap_err();
        assert!(
            matches!(err, SettingsError::PythonConfig(_)),
            "{args:?}: {err}"
        );
        assert!(err.to_string().contains("as flags"), "{err}");
    }
}

#[test]
fn debug_flag_means_debug_level() {
    assert_eq!(
        settings(&["--debug"], HUB).unwrap().log_level,
        LogLevel::Debug
    );
}

#[test]
fn unusable_tokens_fail_at_start_without_showing_them() {
    let env = [
        ("JUPYTERHUB_API_TOKEN", "abc\ndef"),
        ("JUPYTERHUB_API_URL", "http://h/hub/api"),
    ];
    let err = settings(&[], &env).unwrap_err();
    assert!(
        matches!(
            err,
            SettingsError::BadEnv {
                name: "JUPYTERHUB_API_TOKEN",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("abc"), "{err}");
}

#[test]
fn page_size_zero_is_the_hub_default() {
    assert_eq!(
        settings(&["--api-page-size=0"], HUB).unwrap().api_page_size,
        None
    );
    assert_eq!(
        settings(&["--api-page-size=5"], HUB).unwrap().api_page_size,
        Some(5)
    );
}

#[test]
fn token_is_required() {
    assert_eq!(
        settings(&["--url=http://h/hub/api"], &[]).unwrap_err(),
        SettingsError::MissingToken
    );
    assert_eq!(
        settings(
            &["--url=http://h/hub/api"],
            &[("JUPYTERHUB_API_TOKEN", "  ")]
        )
        .unwrap_err(),
        SettingsError::MissingToken
    );
}

#[test]
fn url_is_required_and_checked() {
    assert_eq!(
        settings(&[], &[("JUPYTERHUB_API_TOKEN", "t")]).unwrap_err(),
        SettingsError::MissingUrl
    );
    let env = &[("JUPYTERHUB_API_TOKEN", "t")];
    assert!(matches!(
        settings(&["--url=localhost:8081"], env),
        Err(SettingsError::BadUrl { .. })
    ));
    assert!(matches!(
        settings(&["--url=http+unix://%2Fsock/hub/api"], env),
        Err(SettingsError::BadUrl { .. })
    ));
    assert!(matches!(
        settings(&["--url=http://"], env),
        Err(SettingsError::BadUrl { .. })
    ));
    assert_eq!(
        settings(&["--url=https://hub.example.org/hub/api//"], env)
            .unwrap()
            .hub
            .base_url,
        "https://hub.example.org/hub/api"
    );
}

#[test]
fn output_and_log_formats_take_text_or_json() {
    assert!(
        settings(&["--once", "--output=json"], HUB)
            .unwrap()
            .json_output
    );
    assert!(!settings(&["--output=text"], HUB).unwrap().json_output);
    assert_eq!(
        settings(&["--output=json"], HUB).unwrap_err(),
        SettingsError::OutputNeedsOnce
    );
    assert!(matches!(
        settings(&["--once", "--output=yaml"], HUB),
        Err(SettingsError::BadChoice {
            flag: "--output",
            ..
        })
    ));
    assert_eq!(
        settings(&["--log-format=JSON"], HUB).unwrap().log_format,
        LogFormat::Json
    );
    assert!(matches!(
        settings(&["--log-format=xml"], HUB),
        Err(SettingsError::BadChoice {
            flag: "--log-format",
            ..
        })
    ));
}

#[test]
fn userinfo_in_the_url_is_refused_without_showing_the_password() {
    let env = &[("JUPYTERHUB_API_TOKEN", "t")];
    let err = settings(&["--url=http://admin:pa55word@hub:8081/hub/api"], env).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SettingsError::BadUrl { .. }), "{text}");
    assert!(
        !text.contains("pa55word") && !text.contains("admin"),
        "{text}"
    );
    assert!(text.contains("***@hub:8081"), "{text}");
}

#[test]
fn a_query_or_fragment_in_the_url_is_refused() {
    let env = &[("JUPYTERHUB_API_TOKEN", "t")];
    for url in [
        "--url=http://hub:8081/hub/api?token=x",
        "--url=http://hub:8081/hub/api#users",
    ] {
        let err = settings(&[url], env).unwrap_err();
        assert!(err.to_string().contains("query"), "{url}: {err}");
    }
}

#[test]
fn retries_and_their_delay_are_flags() {
    let s = settings(&[], HUB).unwrap();
    assert_eq!(s.retry, RetryPolicy::default());
    let s = settings(&["--retries=0", "--retry-delay=0.25"], HUB).unwrap();
    assert_eq!(s.retry.retries, 0);
    assert_eq!(s.retry.base_delay, Duration::from_millis(250));
    assert!(matches!(
        settings(&["--retries=21"], HUB),
        Err(SettingsError::OutOfRange {
            flag: "--retries",
            ..
        })
    ));
    assert!(matches!(
        settings(&["--retry-delay=-1"], HUB),
        Err(SettingsError::NotSeconds {
            flag: "--retry-delay",
            ..
        })
    ));
}

#[test]
fn request_timeout_from_env() {
    let mut env = HUB.to_vec();
    env.push(("JUPYTERHUB_REQUEST_TIMEOUT", "5"));
    assert_eq!(
        settings(&[], &env).unwrap().hub.request_timeout,
        Duration::from_secs(5)
    );
    for bad in ["soon", "0", "-1", "1e300", "NaN"] {
        env.pop();
        env.push(("JUPYTERHUB_REQUEST_TIMEOUT", bad));
        assert!(
            matches!(
                settings(&[], &env),
                Err(SettingsError::BadEnv {
                    name: "JUPYTERHUB_REQUEST_TIMEOUT",
                    ..
                })
            ),
            "{bad}"
        );
    }
}

#[test]
fn unreadable_certificates_fail_at_start() {
    let err = settings(
        &["--ssl-enabled", "--internal-certs-location=/nonexistent"],
        HUB,
    )
    .unwrap_err();
    assert!(matches!(err, SettingsError::Tls(_)), "{err}");
    assert!(err.to_string().contains("/nonexistent/hub-ca/hub-ca.crt"));
}

#[test]
fn https_urls_trust_the_system_bundle_or_ssl_cert_file() {
    let url = "--url=https://hub.example.org/hub/api";
    let bundle = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tls/test-ca.pem"
    );
    let s = settings(
        &[url],
        &[("JUPYTERHUB_API_TOKEN", "t"), ("SSL_CERT_FILE", bundle)],
    )
    .unwrap();
    assert!(s.hub.tls.is_some());
    let err = settings(
        &[url],
        &[
            ("JUPYTERHUB_API_TOKEN", "t"),
            ("SSL_CERT_FILE", "/nonexistent.pem"),
        ],
    )
    .unwrap_err();
    assert!(matches!(err, SettingsError::SystemRoots(_)), "{err}");
    assert!(settings(
        &["--url=http://hub/hub/api"],
        &[("JUPYTERHUB_API_TOKEN", "t")]
    )
    .unwrap()
    .hub
    .tls
    .is_none());
}

#[test]
fn log_level() {
    assert_eq!(
        settings(&["--log-level=DEBUG"], HUB).unwrap().log_level,
        LogLevel::Debug
    );
    assert!(matches!(
        settings(&["--log-level=loud"], HUB),
        Err(SettingsError::BadLogLevel(_))
    ));
}

mod file;
mod served;

#[test]
fn activity_server_needs_a_proxy_url_and_takes_its_timeout() {
    let asking = ["--activity=server", "--proxy-url=http://proxy-public/"];
    let s = settings(&asking, HUB).unwrap();
    assert_eq!(s.policy.activity, Activity::Server);
    assert!(!s.policy.activity_connections);
    let proxy = s.hub.proxy.expect("a proxy to ask through");
    assert_eq!(proxy.url, "http://proxy-public");
    assert_eq!(proxy.timeout, Duration::from_secs(5));
    let s = settings(
        &[
            &asking[..],
            &["--activity-timeout=0.5", "--activity-connections"],
        ]
        .concat(),
        HUB,
    )
    .unwrap();
    assert_eq!(s.hub.proxy.unwrap().timeout, Duration::from_millis(500));
    assert!(s.policy.activity_connections);
    assert_eq!(
        settings(&["--activity=server"], HUB).unwrap_err(),
        SettingsError::MissingProxyUrl
    );
    assert!(SettingsError::MissingProxyUrl
        .to_string()
        .contains("http://proxy-public"));
    assert!(matches!(
        settings(&[&asking[..], &["--activity-timeout=0"]].concat(), HUB),
        Err(SettingsError::NotSeconds {
            flag: "--activity-timeout",
            ..
        })
    ));
    assert!(matches!(
        settings(&["--activity=kernels"], HUB),
        Err(SettingsError::BadChoice {
            flag: "--activity",
            ..
        })
    ));
}

#[test]
fn the_hub_asks_nothing_by_default_and_an_unused_proxy_url_is_a_warning() {
    let s = settings(&[], HUB).unwrap();
    assert_eq!(s.policy.activity, Activity::Hub);
    assert!(s.hub.proxy.is_none());
    let s = settings(&["--proxy-url=http://proxy-public"], HUB).unwrap();
    assert!(s.hub.proxy.is_none());
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("--proxy-url") && w.contains("ignored")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn an_https_proxy_is_checked_with_the_system_roots_though_the_hub_is_http() {
    let s = settings(
        &["--activity=server", "--proxy-url=https://hub.example.org"],
        HUB,
    )
    .unwrap();
    assert!(s.hub.tls.is_some(), "an https proxy needs TLS roots");
}
mod notify;
