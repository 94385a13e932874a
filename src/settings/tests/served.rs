//! Where /metrics and /health are served, and who may read them.

use super::*;

#[test]
fn dry_run_metrics_and_health_settings() {
    let s = settings(
        &[
            "--dry-run",
            "--metrics-bind=127.0.0.1:9090",
            "--health-failures=5",
        ],
        HUB,
    )
    .unwrap();
    assert!(s.dry_run);
    assert_eq!(s.metrics.unwrap().addr, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(s.health_failures, 5);
    let defaults = settings(&[], HUB).unwrap();
    assert!(!defaults.dry_run && defaults.metrics.is_none() && defaults.health_failures == 3);
    assert!(matches!(
        settings(&["--health-failures=0"], HUB),
        Err(SettingsError::OutOfRange {
            flag: "--health-failures",
            ..
        })
    ));
    assert!(matches!(
        settings(&["--metrics-bind=somewhere"], HUB),
        Err(SettingsError::MetricsBind(_))
    ));
}

#[test]
fn a_managed_service_with_a_url_serves_metrics_there_and_under_its_prefix() {
    let mut env = HUB.to_vec();
    env.push(("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"));
    env.push(("JUPYTERHUB_SERVICE_PREFIX", "/services/idle-culler/"));
    let managed = settings(&[], &env).unwrap();
    assert_eq!(
        managed.metrics.unwrap().addr,
        "127.0.0.1:10101".parse().unwrap()
    );
    assert_eq!(
        managed.service_prefix.as_deref(),
        Some("/services/idle-culler/")
    );
    let mut env = HUB.to_vec();
    env.push(("JUPYTERHUB_SERVICE_URL", "https://culler:8443"));
    env.push(("JUPYTERHUB_SERVICE_PREFIX", "/services/idle-culler/"));
    let unservable = settings(&[], &env).unwrap();
    assert!(unservable.metrics.is_none(), "metrics never stop culling");
    assert!(
        unservable
            .warnings
            .iter()
            .any(|w| w.contains("serving no /metrics")),
        "{:?}",
        unservable.warnings
    );
}

#[test]
fn a_managed_service_without_a_url_serves_no_metrics() {
    // The hub sets JUPYTERHUB_SERVICE_URL for every managed service (a
    // random loopback port when it has no url), the prefix only with a
    // url.
    let mut env = HUB.to_vec();
    env.push(("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:43817/"));
    let managed = settings(&[], &env).unwrap();
    assert!(managed.metrics.is_none(), "{:?}", managed.metrics);
    assert!(managed.warnings.is_empty(), "{:?}", managed.warnings);
    // --metrics-bind still serves, wherever the culler runs.
    let asked = settings(&["--metrics-bind=127.0.0.1:0"], &env).unwrap();
    assert!(asked.metrics.is_some());
    // A blank prefix is no prefix.
    env.push(("JUPYTERHUB_SERVICE_PREFIX", "  "));
    assert!(settings(&[], &env).unwrap().metrics.is_none());
}

#[test]
fn metrics_need_a_token_unless_only_this_machine_can_reach_them() {
    let service = [
        HUB[0],
        HUB[1],
        ("JUPYTERHUB_SERVICE_PREFIX", "/services/idle-culler/"),
        ("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101/"),
    ];
    // On by default, wherever the endpoint is.
    assert!(settings(&[], &service).unwrap().metrics_auth);
    assert!(
        settings(&["--metrics-bind=0.0.0.0:9090"], HUB)
            .unwrap()
            .metrics_auth
    );
    // Off for this machine only.
    for bind in ["127.0.0.1:9090", "localhost:9090", "[::1]:9090"] {
        let s = settings(
            &["--metrics-auth=false", &format!("--metrics-bind={bind}")],
            HUB,
        )
        .unwrap();
        assert!(!s.metrics_auth, "{bind}");
    }
    // Not where others reach it, even the hub's loopback service URL:
    // the hub's proxy forwards anyone's requests there.
    for (args, env) in [
        (
            &["--metrics-auth=false", "--metrics-bind=0.0.0.0:9090"][..],
            HUB,
        ),
        (&["--metrics-auth=false", "--metrics-bind=:9090"][..], HUB),
        (&["--metrics-auth=false"][..], &service[..]),
    ] {
        let err = settings(args, env).unwrap_err();
        assert!(
            matches!(err, SettingsError::OpenMetrics(_)),
            "{args:?}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains("loopback --metrics-bind"), "{text}");
        assert!(text.contains("read:metrics"), "{text}");
    }
    // Without an endpoint there is nothing to open.
    assert!(
        !settings(&["--metrics-auth=false"], HUB)
            .unwrap()
            .metrics_auth
    );
}
